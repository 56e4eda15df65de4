"""What handing runs to Ray costs: the same small runs through the local worker, then as tasks on a
local Ray instance in each Ray storage mode (`shared`: the task writes the run folder; `streamed`: the
faces go through the object store and every record comes back to the worker), in one invocation, with
the same parallelism (`--jobs` slots locally; Ray gets the machine's CPUs and each task asks for one).
For streamed runs it also reports the bytes of records that came back per run and per epoch (the
runs' `streamed_bytes`: metrics, log, batch losses, status, and each epoch's `last.pt`/`best.pt`).

Per run it records, by polling status.json every 50 ms: the start latency (from when a slot was free
for it, i.e. its queueing or the end of an earlier run, until it reads `running`: the worker or Ray
starting `fer train --run`, which includes that process importing PyTorch and loading the data),
training (running → finished), and the batch's wall time. The first run's latency includes starting
the worker (and, for Ray, starting a local Ray instance); the rest show the per-run dispatch cost.

    python benchmarks/ray_overhead.py --data $FER_DATA [--runs 6] [--jobs 2] [--limit 300] [--epochs 2]
"""
import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from fer.config import load_config
from fer.jobs.queue import LOCAL, ray_target, set_ray_storage, set_worker_slots
from fer.jobs.submit import submit_all
from fer.runs.store import FINISHED_STATES, read_status
from fer.training.validate import check_config


def batch(data: str, root: Path, target: str, args: argparse.Namespace, storage: str = "") -> dict:
    """Queue `args.runs` identical runs on `target`, wait for them, and time each phase."""
    sets = [f"data.path={data}", f"data.limit={args.limit}", f"data.test_limit={args.limit}",
            f"train.epochs={args.epochs}",
            "train.batch_size=32", "model.kwargs={widths: [16, 32, 64], hidden: 64}"]
    configs = [load_config(None, sets + [f"name=bench-{i}"]) for i in range(args.runs)]
    set_worker_slots(root, args.jobs)
    if storage:
        set_ray_storage(root, storage)
    start = time.monotonic()
    runs = submit_all([check_config(c) for c in configs], root, target)
    queued = {r: time.monotonic() for r in runs}
    running, done = {}, {}
    while len(done) < len(runs):
        for r in runs:
            state = read_status(r).get("state")
            if r not in running and state in ("running", *FINISHED_STATES):
                running[r] = time.monotonic()
            if r not in done and state in FINISHED_STATES:
                done[r] = time.monotonic()
                if state != "completed":
                    raise RuntimeError(f"{r.name} ended {state}: {read_status(r).get('error')}")
        time.sleep(0.05)
    # A run can start once it is queued and one of the `jobs` slots is free: the first `jobs` runs at
    # once, each later one when the (i - jobs)-th earlier run has ended.
    order = sorted(runs, key=lambda r: running[r])
    ends = sorted(done[r] for r in order)
    latency = [running[r] - max(queued[r], ends[i - args.jobs] if i >= args.jobs else queued[r])
               for i, r in enumerate(order)]
    moved = [read_status(r).get("streamed_bytes") for r in runs]
    streamed = {"streamed_bytes_per_run": round(statistics.mean(moved)),
                "streamed_bytes_per_epoch": round(statistics.mean(moved) / args.epochs)} if all(moved) else {}
    return {"target": target + (f" ({storage})" if storage else ""), "runs": len(runs),
            "wall_s": round(time.monotonic() - start, 2), **streamed,
            "start_first_s": round(latency[0], 2), "start_rest_mean_s": round(statistics.mean(latency[1:]), 2),
            "train_mean_s": round(statistics.mean(done[r] - running[r] for r in runs), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--jobs", type=int, default=2, help="local slots (match the CPUs Ray sees)")
    parser.add_argument("--limit", type=int, default=300, help="training faces per run (stratified sample)")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        local = batch(args.data, Path(tmp) / "local", LOCAL, args)
        shared = batch(args.data, Path(tmp) / "shared", ray_target(None), args, "shared")
        streamed = batch(args.data, Path(tmp) / "streamed", ray_target(None), args, "streamed")
    report = {"local": local, "ray_shared": shared, "ray_streamed": streamed}
    for name, ray in (("shared", shared), ("streamed", streamed)):
        report[f"{name}_overhead_per_run_s"] = round(ray["start_rest_mean_s"] - local["start_rest_mean_s"], 2)
        report[f"{name}_wall_overhead_per_run_s"] = round((ray["wall_s"] - local["wall_s"]) / args.runs, 2)
    report.update({"machine": f"{os.cpu_count()}-core {platform.machine()}, Python {platform.python_version()}",
                   "date": date.today().isoformat(),
                   "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
