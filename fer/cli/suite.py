"""`fer suite list | run | report`: experiment suites, the FER2013 studies' ladders among them."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from fer.cli.catalog import catalog
from fer.cli.common import add_ray_option, print_report


def _cmd_suite_list(args: argparse.Namespace) -> int:
    suites = catalog()["suites"]  # the listing without importing what builds the runs
    width = max(map(len, suites)) + 1
    for name, info in sorted(suites.items()):
        print(f"{name:{width}s} {info['title']}\n{'':{width}s} variants: {', '.join(info['variants'])}")
        if info.get("reported"):
            print(f"{'':{width}s} reported: {info['reported']}")
    return 0


def _cmd_suite_run(args: argparse.Namespace) -> int:
    from fer.jobs.queue import LOCAL, ray_target
    from fer.jobs.submit import run_suite
    from fer.jobs.suites import suite_report
    from fer.runs.store import read_config
    from fer.training.presets import config_path

    finished = []

    def progress(run_dir: Path, status: dict) -> None:
        finished.append(run_dir)
        if not args.quiet:
            test = f", test accuracy {status['test_acc']:.4f}" if status.get("test_acc") is not None else ""
            print(f"[{len(finished)}] {run_dir.name}: {status.get('state')}{test}", flush=True)

    target = LOCAL if args.ray is None else ray_target(args.ray)
    config = config_path(str(args.config)) if args.config else None  # a file, or a preset's name (quick, …)
    states = run_suite(args.name, args.repeats, args.epochs or 0, args.set, config, args.runs_dir,
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
    print_report(suite_report(args.name, args.runs_dir), "table")
    return 1 if failed else 0


def _cmd_suite_report(args: argparse.Namespace) -> int:
    from fer.jobs.suites import STUDIES, SUITES, suite_report

    print_report(suite_report(args.name, args.runs_dir), args.format)
    study = SUITES.info(args.name).get("study")
    if study and args.format == "table":
        print(f"\nStudy {study.upper()} ({STUDIES.get(study).title}): reported vs ours")
        _print_study_table(study, args.runs_dir)
    return 0


def _cmd_suite_ensemble(args: argparse.Namespace) -> int:
    from fer.jobs.suites.ensemble import suite_ensemble

    table = suite_ensemble(args.name, args.runs_dir, args.variant, args.data)
    print_report(table, args.format)
    return 0


def _cmd_suite_curves(args: argparse.Namespace) -> int:
    from fer.jobs.suites import suite_curves

    print_report(suite_curves(args.name, args.runs_dir, [args.metric], args.variant), args.format)
    return 0


def _print_study_table(key: str, runs_dir: Optional[Path]) -> None:
    from fer.jobs.suites import STUDIES, study_table, suite_report

    reports = {name: suite_report(name, runs_dir) for name in STUDIES.get(key).suites}
    table = study_table(key, reports)
    table = table.drop(columns=["suite"]).astype(object)
    print(table.where(table.notna(), "–").to_string(index=False, float_format=lambda v: f"{v:.4f}"))


def add_parsers(sub) -> None:
    """Register `fer suite` and its subcommands."""
    p = sub.add_parser("suite", help="experiment suites: the studies' ablation ladders")
    suite_sub = p.add_subparsers(dest="suite_command", required=True)
    p = suite_sub.add_parser("list", help="the suites and their variants")
    p.set_defaults(func=_cmd_suite_list)
    p = suite_sub.add_parser("run", help="train every variant of a suite (× repeats)",
                             description="Config per run = defaults, --config, the variant, --set, --epochs.")
    p.add_argument("name", choices=sorted(catalog()["suites"]))
    p.add_argument("--repeats", type=int, default=1, help="seeds per variant (train.seed, +1, ...)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME",
                   help="run only this variant (repeatable; default: every variant of the suite)")
    p.add_argument("--epochs", type=int, help="epochs per run (default: a study suite trains as long as the study; "
                                              "other suites the config's train.epochs)")
    p.add_argument("--config", type=Path, help="base YAML/JSON config under every variant, or a preset's name")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every run")
    p.add_argument("--jobs", type=int,
                   help="runs at once, each in its own process (sets the background worker's slots)")
    add_ray_option(p)
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_suite_run)
    p = suite_sub.add_parser("report", help="mean ± std per variant over repeats, with the train-val gap")
    p.add_argument("name", choices=sorted(catalog()["suites"]))
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=_cmd_suite_report)
    p = suite_sub.add_parser("curves", help="mean ± std learning curves per variant over its seeds (per epoch)")
    p.add_argument("name", choices=sorted(catalog()["suites"]))
    p.add_argument("--metric", choices=["val_acc", "train_acc", "val_loss", "train_loss", "val_macro_f1"],
                   default="val_acc")
    p.add_argument("--variant", action="append", default=[], metavar="NAME", help="only this variant (repeatable)")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=_cmd_suite_curves)
    p = suite_sub.add_parser("ensemble", help="the best run of each variant (on validation), averaged, scored "
                                              "beside its members on the test split")
    p.add_argument("name", choices=sorted(catalog()["suites"]))
    p.add_argument("--variant", action="append", default=[], metavar="NAME",
                   help="only this variant's best run (repeatable; default: every variant with a completed run)")
    p.add_argument("--data", help="where the FER2013 data is here (default: where the runs trained)")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=_cmd_suite_ensemble)
