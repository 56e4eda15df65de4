"""Background work: `submit` (queue checked configs and suites), the `queue` (its order and state in
the run folders), the `worker` process that trains queued runs on the machine's slots, `ray` (runs as
tasks on a Ray cluster) with `ray_stream` (runs on nodes that share no filesystem: faces out through the
object store, records streamed back to the worker, the one writer), `machine` (GPU and CPU figures), experiment `suites/` and Optuna `sweeps/`.
Imports the layers below it; `queue`, `worker`, `ray` and `ray_stream` import no PyTorch, so queue commands start at once.
"""
