"""`fer train`, `fer eval`, `fer calibrate` and `fer blendshapes train`: training runs and scoring them."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Tuple

from fer.cli.catalog import catalog
from fer.config import load_config
from fer.core.errors import UserError
from fer.core.quiet import native_stderr_silenced
from fer.runs.store import RESUMABLE_STATES, read_config, read_status, resolve_run

# What trains (PyTorch, the models, MediaPipe) is imported by the command that uses it: `--help` answers at once.


def _shortcut_overrides(args: argparse.Namespace) -> List[str]:
    """--model/--optimizer/... as the --set items they stand for."""
    shortcuts = {"model.name": args.model, "optim.name": args.optimizer, "sched.name": args.scheduler,
                 "augmentation": args.augmentation, "train.epochs": args.epochs, "train.gpus": args.nproc}
    items = [f"{k}={v}" for k, v in shortcuts.items() if v is not None]
    if getattr(args, "teacher", None):
        items.append(f"distill.teacher={json.dumps(args.teacher)}")
    return items


def _existing_run(args: argparse.Namespace) -> Tuple[Path, Tuple[str, ...]]:
    """The run folder named by --run (a queued run) or --resume (a stopped one), and the states it may start from."""
    ref, wanted, flag = (args.run, ("queued",), "--run") if args.run else (args.resume, RESUMABLE_STATES, "--resume")
    if args.config or args.set or _shortcut_overrides(args) or args.queue:
        raise ValueError(f"fer train {flag} trains a run with its saved config.json; "
                         "--config/--set/--model.../--queue are not allowed with it")
    run_dir = resolve_run(ref, args.runs_dir)
    state = read_status(run_dir).get("state")
    if state not in wanted:
        hint = {"queued": f"it starts with: fer train --run {run_dir.name}",
                "running": "it is training now", "completed": "it has finished"}.get(state, "")
        raise ValueError(f"{run_dir.name} is {state}: {flag} takes a {' or '.join(wanted)} run"
                         + (f" ({hint})" if hint else ""))
    return run_dir, wanted  # checked again, atomically, when the trainer claims the run


def _cmd_train(args: argparse.Namespace) -> int:
    from fer.jobs.submit import submit
    from fer.training.fit import create_run, train
    from fer.training.presets import config_path
    from fer.training.validate import check_config

    if args.run or args.resume:
        run_dir, start_from = _existing_run(args)
    else:
        config = config_path(str(args.config)) if args.config else None
        cfg = load_config(config, list(args.set) + _shortcut_overrides(args))
        if args.runs_dir:
            cfg.runs_dir = str(args.runs_dir)
        if args.queue:
            run_dir = submit(check_config(cfg))
            print(f"{run_dir}: queued; the background worker trains it (watch it with fer runs or the dashboard)")
            return 0
        # Marked, so the dashboard's job card says it belongs to a terminal, not to the queue.
        run_dir, start_from = create_run(check_config(cfg), launched_from="terminal"), ("queued",)
    try:
        train(run_dir=run_dir, progress=not args.quiet, start_from=start_from)
    except UserError:
        raise  # fer's own one-line errors (a run cancelled before it started, …)
    except Exception as e:  # noqa: BLE001 - a full disk, a CUDA error, a bug: one line here, the traceback in the log
        error = read_status(run_dir).get("error") or f"{type(e).__name__}: {e}"
        print(f"fer train: error: {run_dir.name} failed: {' '.join(str(error).split())[:400]} "
              f"(the traceback is in {run_dir / 'train.log'})", file=sys.stderr)
        return 1
    status = read_status(run_dir)
    print(f"{run_dir}: {status.get('state')}"
          + (f", test accuracy {status['test_acc']:.4f}" if status.get("test_acc") is not None else ""))
    return 0 if status.get("state") == "completed" else 1


def _what_was_scored(run: Path, checkpoint: str, epoch: object) -> str:
    """'best.pt epoch 12', or for an ensemble its member runs (its checkpoint's epoch is a placeholder)."""
    model = read_config(run).model
    if model.name == "ensemble":
        members = list(model.kwargs.get("runs") or [])
        return f"ensemble of {len(members)} runs: {', '.join(members)}"
    return f"{checkpoint}.pt epoch {epoch}"


def _cmd_eval(args: argparse.Namespace) -> int:
    import pandas as pd

    from fer.training.evaluate import evaluate_run

    run = resolve_run(args.run, args.runs_dir)
    result = evaluate_run(run, args.split, args.checkpoint, args.data, args.tta)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    with_tta = "" if args.tta == "none" else f", {args.tta} TTA, not recorded"
    scored = _what_was_scored(run, args.checkpoint, result["epoch"])
    print(f"{result['split']} ({result['n']} images, {scored}{with_tta}): "
          f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}")
    dedup = result.get("deduplicated") or {}
    if dedup.get("removed") and dedup.get("accuracy") is not None:
        print(f"without the {dedup['removed']} faces that are copies of Training faces ({dedup['n']} left): "
              f"accuracy {dedup['accuracy']:.4f}, macro-F1 {dedup['macro_f1']:.4f}")
    if result.get("temperature", 1.0) != 1.0:
        print(f"calibration: expected calibration error {result['ece']:.4f} with temperature "
              f"{result['temperature']:.3f} (fitted on validation), {result['ece_uncalibrated']:.4f} without")
    else:
        print(f"calibration: expected calibration error {result['ece']:.4f} (no temperature fitted)")
    per_class = pd.DataFrame(result["per_class"]).T
    if "support" in per_class:  # a count of faces, never 467.000
        per_class["support"] = per_class["support"].astype(int)
    print(per_class.to_string(float_format=lambda v: f"{v:.3f}"))
    cm = pd.DataFrame(result["confusion_matrix"], index=result["class_names"], columns=result["class_names"])
    cm.index.name = "true \\ pred"
    print(cm.to_string())
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from fer.training.evaluate import calibrate_run

    results = calibrate_run(resolve_run(args.run, args.runs_dir), args.data)
    for split, result in results.items():
        print(f"{result['split']}: temperature {result['temperature']:.3f}; expected calibration error "
              f"{result['ece_uncalibrated']:.4f} -> {result['ece']:.4f}")
    return 0


def _cmd_blendshapes_train(args: argparse.Namespace) -> int:
    from fer.jobs.submit import submit
    from fer.training.blendshape_run import blendshape_config
    from fer.training.fit import train
    from fer.training.validate import check_config

    cfg = blendshape_config(args.path, args.name, args.C, args.limit, 0, args.tag)
    if args.runs_dir:
        cfg.runs_dir = str(args.runs_dir)
    if args.queue:  # checked now, trained by the worker like every queued run
        run_dir = submit(check_config(cfg))
        print(f"{run_dir}: queued; the background worker trains it (watch it with fer runs or the dashboard)")
        return 0
    with native_stderr_silenced(restore=False):  # MediaPipe's LiteRT log lines; the command ends after this
        run_dir = train(cfg)
    status = read_status(run_dir)
    if status.get("state") != "completed":
        print(f"{run_dir}: {status.get('state')}: {status.get('error', '')}")
        return 1
    print(f"{run_dir}: {status.get('state')}, best val accuracy {status['best_val_acc']:.4f}, "
          f"test accuracy {status['test_acc']:.4f}")
    return 0


def add_parsers(sub) -> None:
    """Register `fer train`, `fer eval`, `fer calibrate` and `fer blendshapes`."""
    _add_train_parser(sub)
    _add_eval_parsers(sub)
    _add_blendshapes_parser(sub)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train", help="train a model (a new run, a queued one with --run, or --resume one)",
                       description="Config = defaults, then --config FILE (YAML/JSON), then --set key=value "
                                   "(e.g. --set optim.lr=0.01 --set model.kwargs.widths=[32,64]).")
    p.add_argument("--config", type=Path, help="YAML or JSON config file, or a preset's name (quick, default-model, gpu, …)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--model", choices=catalog()["models"], help="shortcut for --set model.name=...")
    p.add_argument("--optimizer", choices=catalog()["optimizers"], help="shortcut for --set optim.name=...")
    p.add_argument("--scheduler", choices=catalog()["schedulers"], help="shortcut for --set sched.name=...")
    p.add_argument("--augmentation", choices=catalog()["augmentations"], help="shortcut for --set augmentation=...")
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=...")
    p.add_argument("--teacher", action="append", metavar="RUN",
                   help="distil from this run (default = the shipped model); repeat for an ensemble of teachers; "
                        "shortcut for --set distill.teacher=[...]")
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train on N devices at once (GPUs, or CPU processes): one DistributedDataParallel job "
                        "through torchrun; shortcut for --set train.gpus=N")
    start = p.add_mutually_exclusive_group()
    start.add_argument("--run", metavar="RUN", help="train a queued run (what the background worker does)")
    start.add_argument("--resume", metavar="RUN", help="continue a cancelled, interrupted or failed run from last.pt")
    p.add_argument("--queue", action="store_true",
                   help="queue the new run for the background worker instead of training it here")
    p.add_argument("--runs-dir", type=Path, help="where runs live (default: FER_RUNS_DIR or checkpoints/)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log echo")
    p.set_defaults(func=_cmd_train)


def _add_eval_parsers(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a run's checkpoint on a split")
    p.add_argument("run", help="run id (or unique part of one) or run folder")
    p.add_argument("--split", default="test",
                   help="test (the run's test split), val, train, or a FER2013 split name")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--tta", choices=catalog()["tta_modes"], default="none",
                   help="test-time augmentation (default none: the model itself, as recorded in the run; "
                        "flip or tencrop are printed, not recorded)")
    p.add_argument("--data", help="data source (default: the run's data.path, FER_DATA or data/)")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_eval)
    p = sub.add_parser("calibrate", help="fit a run's temperature on its validation split (runs trained before "
                                         "calibration existed; new runs get one when they finish)")
    p.add_argument("run", help="run id (or unique part of one) or run folder")
    p.add_argument("--data", help="data source (default: the run's data.path, FER_DATA or data/)")
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_calibrate)


def _add_blendshapes_parser(sub) -> None:
    p = sub.add_parser("blendshapes", help="MediaPipe blendshape + landmark features and a linear classifier")
    bs_sub = p.add_subparsers(dest="blendshapes_command", required=True)
    p = bs_sub.add_parser("train", help="extract features, choose C on validation, write a run folder")
    p.add_argument("path", nargs="?", help="fer2013.csv or image-folder root (default: FER_DATA or data/)")
    p.add_argument("--name", default="mediapipe-blendshapes")
    p.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="regularisation values to try")
    p.add_argument("--limit", type=int, default=0, help="cap train and val (stratified); 0 = all")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--queue", action="store_true",
                   help="queue the run for the background worker instead of training it here")
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_blendshapes_train)
