"""`fer ensemble`: trained runs averaged into one run that every page and command can pick."""
from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_ensemble(args: argparse.Namespace) -> int:
    from fer.jobs.submit import submit
    from fer.runs.store import read_status
    from fer.training.ensemble import ensemble_config
    from fer.training.fit import create_run, train
    from fer.training.validate import check_config

    cfg = ensemble_config(args.runs, args.name, args.runs_dir, args.data or "")
    checked = check_config(cfg)  # before any folder exists: members, their splits, the data
    if args.queue:
        run_dir = submit(checked)
        print(f"{run_dir}: queued; the background worker assembles and scores it")
        return 0
    run_dir = train(run_dir=create_run(checked, launched_from="terminal"), progress=not args.quiet)
    status = read_status(run_dir)
    if status.get("state") != "completed":
        print(f"{run_dir}: {status.get('state')}: {status.get('error', '')}")
        return 1
    test = status.get("test_acc")
    print(f"{run_dir}: completed, val accuracy {status['best_val_acc']:.4f}"
          + (f", test accuracy {test:.4f}" if test is not None else "") + " (without test-time augmentation)")
    return 0


def add_parsers(sub) -> None:
    """Register `fer ensemble`."""
    p = sub.add_parser("ensemble", help="average trained runs into one ensemble run (calibrated on validation)",
                       description="Copies the members' weights into one checkpoint (each member's probabilities "
                                   "calibrated, then averaged), fits the ensemble's temperature per TTA mode on "
                                   "validation and scores validation and the test split. The members must share "
                                   "their classes, preprocessing and validation faces (train them with one "
                                   "data.split_seed). Export it with fer export RUN --int8: one ONNX graph.")
    p.add_argument("runs", nargs="+", metavar="RUN", help="member runs (ids, unique parts, folders; default = the "
                                                          "shipped model)")
    p.add_argument("--name", default="ensemble", help="the ensemble run's name")
    p.add_argument("--data", help="FER2013 to calibrate and score on (default: the first member's)")
    p.add_argument("--queue", action="store_true", help="hand it to the background worker")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--quiet", action="store_true", help="no log echo")
    p.set_defaults(func=_cmd_ensemble)
