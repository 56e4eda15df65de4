"""Training throughput of the engine (`fer train`) against a minimal hand-written PyTorch loop, same model.

The baseline is the smallest loop that trains the model: the run's training faces held as one normalised
float tensor on the device, a random permutation per epoch, slices of `--batch-size`, AdamW, cross-entropy,
no augmentation, no validation, no logging (`hand loop`), and the same with channels-last memory.
The engine trains the same faces (the run's own training split) through `fer.training.train`, as
`fer train` does, on each data path:
- `resident`: the split as one uint8 tensor on the device, batched augmentation (the default where it fits);
- `dataloader`: a torch DataLoader over the faces (the path for data that does not fit or plugin presets).
Both with augmentation off (the ratio to the hand loop) and with the default preset (`standard`) beside it.
`--compile` adds the channels-last hand loop and the resident engine run (augmentation off) with the model
under `torch.compile` (`train.compile=true`), to see whether compiling pays on this device.

Engine epochs are timed as its run records them (`seconds` in metrics.jsonl: the training pass, without the
validation and checkpoints that follow each epoch); those and the whole run's wall time are both reported.
Rounds are interleaved (every variant once per round) and the ratios are taken within a round, so a noisy
neighbour on the machine hits both sides of a ratio. Steady state is the median of epochs 2..N.

    python benchmarks/train_throughput.py --data $FER_DATA [--limit 4096] [--epochs 3] [--rounds 2]
        [--device cpu|cuda] [--threads 2] [--amp off|bf16|fp16] [--model plain_cnn] [--compile] [--json FILE]
"""
import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from fer.config import RunConfig, apply
from fer.core.device import amp_dtype, describe_device
from fer.data import RunData
from fer.data.preprocess import to_model_input
from fer.models import create_model
from fer.training.fit import train
from fer.training.loops import autocast

ENGINE_VARIANTS = (("resident", "none"), ("dataloader", "none"), ("resident", "standard"),
                   ("dataloader", "standard"))


def run_config(args: argparse.Namespace, runs_dir: str, loader: str = "auto", augmentation: str = "none",
               compiled: bool = False) -> RunConfig:
    """The benchmark's run: the given model, data path and augmentation, fp32 unless told, a small test split."""
    return apply(RunConfig(), {
        "name": f"throughput-{loader}-{augmentation}", "runs_dir": runs_dir, "augmentation": augmentation,
        "train.compile": compiled,
        "data.path": args.data, "data.limit": args.limit, "data.test_limit": 256, "data.loader": loader,
        "model.name": args.model, "train.epochs": args.epochs, "train.batch_size": args.batch_size,
        "train.device": args.device, "train.amp": args.amp, "train.seed": 0})


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer measures it (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def hand_loop(faces: torch.Tensor, labels: torch.Tensor, args: argparse.Namespace, spec,
              channels_last: bool, compiled: bool = False) -> dict:
    """The baseline: seconds per epoch of the minimal loop over the same faces."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(args.model).to(device, memory_format=memory_format)
    forward = torch.compile(model) if compiled else model
    x_all = to_model_input(faces.to(device), spec).contiguous(memory_format=memory_format)  # normalised once
    y_all = labels.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    criterion = torch.nn.CrossEntropyLoss()
    dtype = amp_dtype(args.amp, device)
    start = time.perf_counter()
    seconds = []
    for _ in range(args.epochs):
        synchronize(device)
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(y_all), device=device)
        for i in range(0, len(order), args.batch_size):
            batch = order[i:i + args.batch_size]
            with autocast(device, dtype):
                loss = criterion(forward(x_all[batch]).float(), y_all[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        synchronize(device)
        seconds.append(time.perf_counter() - t0)
    return {"seconds": seconds, "images": len(y_all), "wall": time.perf_counter() - start}


def engine(args: argparse.Namespace, runs_dir: str, loader: str, augmentation: str, compiled: bool = False) -> dict:
    """Seconds per epoch of one `fer train` run, as its metrics.jsonl records them, and the run's wall time."""
    start = time.perf_counter()
    run_dir = train(run_config(args, runs_dir, loader, augmentation, compiled))
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    log = (run_dir / "train.log").read_text()
    source = next((line.split("training batches: ", 1)[1] for line in log.splitlines()
                   if "training batches: " in line), "?")
    images = round(rows[0]["images_per_s"] * rows[0]["seconds"])
    return {"seconds": [r["seconds"] for r in rows], "images": images, "wall": wall, "source": source}


def rates(result: dict) -> tuple:
    """(first epoch, steady state) images per second: steady is the median of epochs 2..N."""
    per_epoch = [result["images"] / s for s in result["seconds"]]
    return per_epoch[0], statistics.median(per_epoch[1:] or per_epoch)


def measure(args: argparse.Namespace) -> tuple:
    """Every variant once per round, interleaved: {variant: [result per round]}."""
    cfg = run_config(args, "")
    run_data = RunData.from_config(cfg)
    index, _ = run_data.split("train")
    faces = torch.from_numpy(run_data.data.images[index]).unsqueeze(1)
    labels = torch.from_numpy(run_data.data.labels[index].astype("int64"))
    spec = cfg.preprocessing()
    results: dict = {}
    with tempfile.TemporaryDirectory() as runs_dir:
        for round_no in range(args.rounds):
            for channels_last in (False, True):
                name = "hand loop" + (", channels-last" if channels_last else "")
                results.setdefault(name, []).append(hand_loop(faces, labels, args, spec, channels_last))
            for loader, augmentation in ENGINE_VARIANTS:
                name = f"fer train, {loader}, augmentation {augmentation}"
                results.setdefault(name, []).append(engine(args, runs_dir, loader, augmentation))
            if args.compile:
                results.setdefault("hand loop, channels-last, compiled", []).append(
                    hand_loop(faces, labels, args, spec, True, compiled=True))
                results.setdefault("fer train, resident, augmentation none, compiled", []).append(
                    engine(args, runs_dir, "resident", "none", compiled=True))
            print(f"round {round_no + 1}/{args.rounds} done", flush=True)
    return results, len(labels)


def report(args: argparse.Namespace, results: dict, images: int) -> None:
    """A markdown table: first and steady images/s, the ratios to the hand loop and first/steady."""
    device = torch.device(args.device)
    baseline, channels_last = results["hand loop"], results["hand loop, channels-last"]
    print(f"\n# {date.today()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores, "
          f"{torch.get_num_threads()} torch threads | {describe_device(device)} | torch {torch.__version__} | "
          f"{args.model}, batch {args.batch_size}, amp {args.amp}, {images:,} training faces, {args.epochs} epochs, "
          f"{args.rounds} rounds (medians)")
    print("| variant | first epoch, img/s | steady state, img/s | steady vs hand loop | vs channels-last hand loop | "
          "first vs steady | run wall, s |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in results.items():
        first = statistics.median(rates(r)[0] for r in runs)
        steady = statistics.median(rates(r)[1] for r in runs)
        vs_hand = statistics.median(rates(r)[1] / rates(b)[1] for r, b in zip(runs, baseline))
        vs_cl = statistics.median(rates(r)[1] / rates(b)[1] for r, b in zip(runs, channels_last))
        first_ratio = statistics.median(rates(r)[0] / rates(r)[1] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        print(f"| {name} | {first:,.0f} | {steady:,.0f} | {vs_hand:.2f}× | {vs_cl:.2f}× | {first_ratio:.2f} | "
              f"{wall:,.1f} |")
    sources = {r["source"] for runs in results.values() for r in runs if "source" in r}
    print("\ntraining batches, as the runs logged them: " + "; ".join(sorted(sources)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.environ.get("FER_DATA", "data"),
                        help="fer2013.csv or the image-folder root")
    parser.add_argument("--limit", type=int, default=4096, help="training faces (data.limit; 0 = the whole split)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"])
    parser.add_argument("--model", default=RunConfig().model.name)
    parser.add_argument("--compile", action="store_true", help="also the compiled variants (torch.compile)")
    parser.add_argument("--json", help="also write every round's images/s per epoch to this file")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is reported apart from the steady state)")
    args.data = str(Path(args.data).resolve())
    torch.set_num_threads(args.threads)
    results, images = measure(args)
    report(args, results, images)
    if args.json:
        rounds = {name: [[round(r["images"] / s, 1) for s in r["seconds"]] for r in runs]
                  for name, runs in results.items()}
        Path(args.json).write_text(json.dumps({"images_per_s_by_round_and_epoch": rounds}, indent=1))


if __name__ == "__main__":
    main()
