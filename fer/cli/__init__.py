"""The `fer` command line (entry point `fer.cli.main:main`), one module per command group.

`main` holds the light commands (runs, cancel, queue, worker), which import no PyTorch; the others
(`train`, `sweep`, `predict`, `video`, with `models` for what predict and video share) are imported
only when one of them, or the full help, is asked for. The top layer: nothing in fer imports it.
"""
