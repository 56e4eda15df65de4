"""Training a run: `validate` (every setting checked once, before a run folder exists), `fit` (create_run
and train), the small `loops`, `optim` (optimizers and schedulers, KacıFANN in `kaci`), `transfer`
(freezing), the `recorder` (the loop's only link to its folder), `tracking` (optional W&B / MLflow /
TensorBoard), `distributed` and `rank` (DDP), `evaluate` (scoring a run) and `blendshape_run` (the
MediaPipe-feature trainer). Imports the layers below it, never jobs or cli.
"""
