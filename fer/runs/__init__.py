"""The run folder, the contract between training and every viewer.

`store` reads run folders (status, metrics, progress, the leaderboard); `writer` is the only module
that writes them (state changes compare-and-set under the run's status lock); `trash` deletes and
restores runs; `leftovers` clears what a killed writer left; `identity` tells fer's folders from
foreign ones; `checkpoint` builds and safely loads self-describing checkpoints; `compare` turns
several runs into tables and curves; `release` packages a finished run as the model that ships in
`shipped/`. Imports `fer.core`, `fer.metrics`, `fer.config`, `fer.models` and `fer.data` only.
"""
