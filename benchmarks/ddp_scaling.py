"""How training speed scales with processes: `fer train --nproc N` (DistributedDataParallel through
torchrun's launcher) for N = 1, 2, ... on the same run, same data, same global batch.

On a CPU-only machine the processes share the cores (gloo); on a GPU machine each takes a GPU (NCCL):
run it there with `--device cuda --nprocs 1 2 4 8` (up to the number of GPUs). Images/s is the median
of the epochs after the first (which includes start-up), over all processes together.

    python benchmarks/ddp_scaling.py --data $FER_DATA [--nprocs 1 2] [--limit 6000] [--epochs 3]
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

import torch

from fer.runs.store import read_metric_rows, read_status


def run(data: str, runs: Path, nproc: int, args: argparse.Namespace) -> dict:
    """One `fer train` with `nproc` processes; its images/s and wall time."""
    per_process = args.global_batch // nproc
    sets = [f"data.path={data}", f"runs_dir={runs}", f"name=scale-{nproc}", f"train.epochs={args.epochs}",
            f"data.limit={args.limit}", f"train.batch_size={per_process}", f"train.device={args.device}",
            f"model.name={args.model}", "augmentation=standard"]
    cmd = [sys.executable, "-m", "fer", "train", "--quiet", "--nproc", str(nproc)]
    for item in sets:
        cmd += ["--set", item]
    done = subprocess.run(cmd, capture_output=True, text=True)
    run_dir = next(p for p in runs.iterdir() if f"-scale-{nproc}-" in p.name)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    rows = read_metric_rows(run_dir)
    speeds = [r["images_per_s"] for r in rows[1:]] or [rows[0]["images_per_s"]]
    return {"nproc": nproc, "per_process_batch": per_process, "images_per_s": statistics.median(speeds),
            "epoch_s": statistics.median(r["seconds"] for r in rows[1:] or rows),
            "device": read_status(run_dir).get("device"), "test_acc": read_status(run_dir).get("test_acc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--limit", type=int, default=6000, help="training faces (stratified sample)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--global-batch", type=int, default=64, help="faces per step over all processes")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="plain_cnn")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in args.nprocs:
            results.append(run(args.data, Path(tmp), nproc, args))
    base = results[0]["images_per_s"]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"{args.model}, {args.limit} faces, global batch {args.global_batch}, {args.epochs} epochs; "
          f"{os.cpu_count()} cores {platform.processor() or platform.machine()}, {gpu}; torch {torch.__version__}; "
          f"{date.today()}")
    print("| processes | batch per process | images/s (all processes) | speed-up | median epoch s | device |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['nproc']} | {r['per_process_batch']} | {r['images_per_s']:.0f} | {r['images_per_s'] / base:.2f}× | "
              f"{r['epoch_s']:.1f} | {r['device']} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
