"""`fer train`, `fer eval`, `fer suite`, `fer blendshapes` and `fer data`: the commands that need PyTorch.

`fer.cli.main` imports this module only when one of these commands (or the full help) is asked for.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional

import pandas as pd

from fer.data.augment import AUGMENTATIONS
from fer.training.blendshape_run import train_blendshape_run
from fer.config import load_config
from fer.data import load_fer2013
from fer.data.stats import summarize
from fer.training.evaluate import calibrate_run, evaluate_run
from fer.jobs.submit import run_suite, submit
from fer.models import MODELS
from fer.training.optim import OPTIMIZERS, SCHEDULERS
from fer.jobs.queue import RESUMABLE_STATES
from fer.core.quiet import native_stderr_silenced
from fer.jobs.queue import LOCAL, ray_target
from fer.runs.store import read_config, read_status, resolve_run
from fer.jobs.suites import STUDIES, SUITES, study_table, suite_report
from fer.training.fit import train
from fer.training.validate import check_config



def _shortcut_overrides(args: argparse.Namespace) -> List[str]:
    """--model/--optimizer/... as the --set items they stand for."""
    shortcuts = {"model.name": args.model, "optim.name": args.optimizer, "sched.name": args.scheduler,
                 "augmentation": args.augmentation, "train.epochs": args.epochs, "train.gpus": args.nproc}
    return [f"{k}={v}" for k, v in shortcuts.items() if v is not None]


def _existing_run(args: argparse.Namespace) -> Path:
    """The run folder named by --run (a queued run) or --resume (a stopped one); errors are ValueErrors."""
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
    return run_dir


def _cmd_train(args: argparse.Namespace) -> int:
    if args.run or args.resume:
        run_dir = train(run_dir=_existing_run(args), progress=not args.quiet)
    else:
        cfg = load_config(args.config, list(args.set) + _shortcut_overrides(args))
        if args.runs_dir:
            cfg.runs_dir = str(args.runs_dir)
        if args.queue:
            run_dir = submit(check_config(cfg))
            print(f"{run_dir}: queued; the background worker trains it (watch it with fer runs or the dashboard)")
            return 0
        run_dir = train(cfg, progress=not args.quiet)
    status = read_status(run_dir)
    print(f"{run_dir}: {status.get('state')}"
          + (f", test accuracy {status['test_acc']:.4f}" if status.get("test_acc") is not None else ""))
    return 0 if status.get("state") == "completed" else 1


def _cmd_eval(args: argparse.Namespace) -> int:
    result = evaluate_run(resolve_run(args.run, args.runs_dir), args.split, args.checkpoint, args.data)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['split']} ({result['n']} images, {args.checkpoint}.pt epoch {result['epoch']}): "
          f"accuracy {result['accuracy']:.4f}, macro-F1 {result['macro_f1']:.4f}")
    if result.get("temperature", 1.0) != 1.0:
        print(f"calibration: expected calibration error {result['ece']:.4f} with temperature "
              f"{result['temperature']:.3f} (fitted on validation), {result['ece_uncalibrated']:.4f} without")
    else:
        print(f"calibration: expected calibration error {result['ece']:.4f} (no temperature fitted)")
    per_class = pd.DataFrame(result["per_class"]).T
    print(per_class.to_string(float_format=lambda v: f"{v:.3f}"))
    cm = pd.DataFrame(result["confusion_matrix"], index=result["class_names"], columns=result["class_names"])
    cm.index.name = "true \\ pred"
    print(cm.to_string())
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    results = calibrate_run(resolve_run(args.run, args.runs_dir), args.data)
    for split, result in results.items():
        print(f"{result['split']}: temperature {result['temperature']:.3f}; expected calibration error "
              f"{result['ece_uncalibrated']:.4f} -> {result['ece']:.4f}")
    return 0


def _cmd_suite_list(args: argparse.Namespace) -> int:
    width = max(map(len, SUITES.names())) + 1
    for name in SUITES.names():
        info = SUITES.info(name)
        variants = ", ".join(v.name for v in SUITES.get(name)(30))
        print(f"{name:{width}s} {info['title']}\n{'':{width}s} variants: {variants}")
        if info.get("reported"):
            print(f"{'':{width}s} reported: {info['reported']}")
    return 0


def _cmd_suite_run(args: argparse.Namespace) -> int:
    finished = []

    def progress(run_dir: Path, status: dict) -> None:
        finished.append(run_dir)
        if not args.quiet:
            test = f", test accuracy {status['test_acc']:.4f}" if status.get("test_acc") is not None else ""
            print(f"[{len(finished)}] {run_dir.name}: {status.get('state')}{test}", flush=True)

    target = LOCAL if args.ray is None else ray_target(args.ray)
    states = run_suite(args.name, args.repeats, args.epochs or 0, args.set, args.config, args.runs_dir,
                       args.jobs, progress, target, args.variant)
    failed = [run_dir for run_dir, state in states.items() if state != "completed"]
    for run_dir in failed:
        print(f"{run_dir}: {states[run_dir]} (see its train.log)", file=sys.stderr)
    adapted = {tag[len("adapted:"):] for run_dir in states for tag in read_config(run_dir).tags
               if tag.startswith("adapted:")}
    if "test_split=PublicTest" in adapted:
        print("note: the data lacks the suite's test split (PrivateTest), so these runs test on PublicTest (and "
              "PublicTest left the training pool); tagged adapted:test_split=PublicTest")
    departures = sorted(adapted - {"test_split=PublicTest"})
    if departures:
        print(f"note: these runs depart from the study by {'; '.join(departures)} (tagged adapted:…)")
    print(f"suite {args.name}: {len(states) - len(failed)} of {len(states)} runs completed\n")
    _print_report(suite_report(args.name, args.runs_dir), "table")
    return 1 if failed else 0


def _print_report(report: pd.DataFrame, fmt: str) -> None:
    if fmt == "csv":
        print(report.to_csv(index=False), end="")
    elif fmt == "json":
        print(report.to_json(orient="records", indent=2))
    elif report.empty:
        print("no completed runs of this suite yet")
    else:
        print(report.to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _cmd_suite_report(args: argparse.Namespace) -> int:
    _print_report(suite_report(args.name, args.runs_dir), args.format)
    study = SUITES.info(args.name).get("study")
    if study and args.format == "table":
        print(f"\nStudy {study.upper()} ({STUDIES.get(study).title}): reported vs ours")
        _print_study_table(study, args.runs_dir)
    return 0


def _print_study_table(key: str, runs_dir: Optional[Path]) -> None:
    reports = {name: suite_report(name, runs_dir) for name in STUDIES.get(key).suites}
    table = study_table(key, reports)
    table = table.drop(columns=["suite"]).astype(object)
    print(table.where(table.notna(), "–").to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def _cmd_blendshapes_train(args: argparse.Namespace) -> int:
    with native_stderr_silenced(restore=False):  # MediaPipe's LiteRT log lines; the command ends after this
        run_dir = train_blendshape_run(args.path, args.name, args.runs_dir, args.C, args.limit, tags=args.tag)
    status = read_status(run_dir)
    print(f"{run_dir}: {status.get('state')}, best val accuracy {status['best_val_acc']:.4f}, "
          f"test accuracy {status['test_acc']:.4f}")
    return 0


def _cmd_data_stats(args: argparse.Namespace) -> int:
    data = load_fer2013(args.path, use_cache=not args.no_cache)
    summary = summarize(data)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    counts = pd.DataFrame(summary["counts"]).T
    print(f"{summary['origin']}: {summary['n_images']} images ({data.report.summary()})\n")
    print(counts.to_string())
    print("\nimbalance ratio (largest / smallest class): "
          + ", ".join(f"{s} {r:.1f}" for s, r in summary["imbalance_ratio"].items()))
    px = summary["pixels"]
    print(f"pixels ({px['split']}): mean {px['mean']:.1f} std {px['std']:.1f} "
          f"(0-1 scale: {px['mean_01']:.4f} / {px['std_01']:.4f})")
    leak = summary["leakage"]
    print(f"exact duplicates: {leak['duplicate_images']} images in {leak['duplicate_groups']} groups; "
          f"{leak['cross_split_groups']} groups cross splits {leak['cross_split_pairs']}; "
          f"{leak['conflicting_label_groups']} groups disagree on the label")
    return 0


def add_ray_option(p: argparse.ArgumentParser) -> None:
    """--ray [ADDRESS]: run on a Ray cluster instead of this machine."""
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run each run as a task on a Ray cluster: ADDRESS of its head (host:6379 or ray://host:10001), "
                        "auto for the cluster this machine joined with `ray start`, nothing for a local Ray instance; "
                        "the runs folder must be on a filesystem every node shares (pip install 'fer-studio[ray]')")


def add_parsers(sub) -> None:
    """Register these commands on the CLI's subparsers."""
    p = sub.add_parser("train", help="train a model (a new run, a queued one with --run, or --resume one)",
                       description="Config = defaults, then --config FILE (YAML/JSON), then --set key=value "
                                   "(e.g. --set optim.lr=0.01 --set model.kwargs.widths=[32,64]).")
    p.add_argument("--config", type=Path, help="YAML or JSON config file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--model", choices=MODELS.names(), help="shortcut for --set model.name=...")
    p.add_argument("--optimizer", choices=OPTIMIZERS.names(), help="shortcut for --set optim.name=...")
    p.add_argument("--scheduler", choices=SCHEDULERS.names(), help="shortcut for --set sched.name=...")
    p.add_argument("--augmentation", choices=AUGMENTATIONS.names(), help="shortcut for --set augmentation=...")
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=...")
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

    p = sub.add_parser("eval", help="evaluate a run's checkpoint on a split")
    p.add_argument("run", help="run id (or unique part of one) or run folder")
    p.add_argument("--split", default="test",
                   help="test (the run's test split), val, train, or a FER2013 split name")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
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
    p = sub.add_parser("suite", help="experiment suites: the studies' ablation ladders")
    suite_sub = p.add_subparsers(dest="suite_command", required=True)
    p = suite_sub.add_parser("list", help="the suites and their variants")
    p.set_defaults(func=_cmd_suite_list)
    p = suite_sub.add_parser("run", help="train every variant of a suite (× repeats)",
                             description="Config per run = defaults, --config, the variant, --set, --epochs.")
    p.add_argument("name", choices=SUITES.names())
    p.add_argument("--repeats", type=int, default=1, help="seeds per variant (train.seed, +1, ...)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME",
                   help="run only this variant (repeatable; default: every variant of the suite)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: the config's train.epochs)")
    p.add_argument("--config", type=Path, help="base YAML/JSON config under every variant")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument("--jobs", type=int,
                   help="runs at once, each in its own process (sets the background worker's slots)")
    add_ray_option(p)
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_suite_run)
    p = suite_sub.add_parser("report", help="mean ± std per variant over repeats, with the train-val gap")
    p.add_argument("name", choices=SUITES.names())
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=_cmd_suite_report)

    p = sub.add_parser("blendshapes", help="MediaPipe blendshape + landmark features and a linear classifier")
    bs_sub = p.add_subparsers(dest="blendshapes_command", required=True)
    p = bs_sub.add_parser("train", help="extract features, choose C on validation, write a run folder")
    p.add_argument("path", nargs="?", help="fer2013.csv or image-folder root (default: FER_DATA or data/)")
    p.add_argument("--name", default="mediapipe-blendshapes")
    p.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="regularisation values to try")
    p.add_argument("--limit", type=int, default=0, help="cap train and val (stratified); 0 = all")
    p.add_argument("--tag", action="append", default=[])
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_blendshapes_train)

    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("stats", help="counts, imbalance, pixel statistics and duplicate/leakage report")
    p.add_argument("path", nargs="?", help="fer2013.csv or image-folder root (default: FER_DATA or data/)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="decode the source again, ignoring the cache")
    p.set_defaults(func=_cmd_data_stats)
