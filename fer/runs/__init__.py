"""The run folder, the contract between training and every viewer.

`store` reads run folders (status, metrics, progress, the leaderboard); `writer` is the only module
that writes them; `checkpoint` builds and safely loads self-describing checkpoints; `compare` turns
several runs into tables and curves; `release` packages a finished run as the model that ships in
`shipped/`. Imports `fer.core`, `fer.metrics`, `fer.config`, `fer.models` and `fer.data` only.
"""
