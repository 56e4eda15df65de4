"""`fer sweep`: Optuna hyperparameter sweeps whose trials are ordinary runs (see fer.jobs.sweeps).

    fer sweep --config base.yaml --space space.yaml --trials 20 --jobs 2 --pruner median --name lr-search
    fer sweep --name lr-search --trials 30          # continue the stored study up to 30 trials
    fer sweep report lr-search                     # best trials, importances, the command for the best
    fer sweep list
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from fer.cli.catalog import catalog
from fer.cli.common import add_ray_option
from fer.core.errors import UserError


def _cmd_sweep(args: argparse.Namespace) -> int:
    from fer.jobs.queue import LOCAL, describe_target, ray_target
    from fer.jobs.sweeps import SweepSettings, list_sweeps, load_study, open_study, run_sweep
    from fer.training.presets import config_path

    if args.action == "list":
        names = list_sweeps(args.runs_dir)
        print("\n".join(names) if names else f"no sweeps in {args.runs_dir or 'checkpoints/'}sweeps/")
        return 0
    name = args.name or args.sweep_name or (Path(args.space).stem if args.space else None)
    if not name:
        raise UserError("name the sweep: fer sweep report NAME, or --name NAME")
    if args.action == "report":
        return _report(load_study(name, args.runs_dir, args.storage), args)
    if not args.trials:
        raise UserError("--trials N: how many trials the study should have in all")
    target = LOCAL if args.ray is None else ray_target(args.ray)
    settings = SweepSettings(name=name, trials=args.trials, jobs=args.jobs, pruner=args.pruner,
                             startup_trials=args.startup_trials, warmup_epochs=args.warmup_epochs, seed=args.seed,
                             target=target)
    config = config_path(str(args.config)) if args.config else None  # a file, or a preset's name (quick, …)
    study = open_study(settings, config, args.space, args.set, args.runs_dir, args.storage)
    print(f"sweep {name}: {len(study.trials)} trial(s) so far, running up to {args.trials} ({args.jobs} at a time "
          f"on {describe_target(target)}, pruner {args.pruner})", flush=True)
    try:
        counts = run_sweep(study, settings, args.runs_dir, on_event=None if args.quiet else
                           (lambda line: print(line, flush=True)))
    except KeyboardInterrupt:
        print(f"\nsweep {name}: driver stopped; its trials' runs go on in the queue. Continue (and adopt them) with: "
              f"fer sweep --name {name} --trials {args.trials}")
        return 130
    print(f"sweep {name}: " + ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) + "\n")
    return _report(study, args)


def _report(study, args: argparse.Namespace) -> int:
    import pandas as pd

    from fer.jobs.sweeps import importances, reproduce_command, summary, trials_table

    facts = summary(study)
    found = importances(study)
    table = trials_table(study)
    if getattr(args, "format", "table") == "json":
        print(json.dumps({**facts, "importances": found, "table": json.loads(table.to_json(orient="records"))},
                         indent=2, default=str))
        return 0
    states = ", ".join(f"{n} {s}" for s, n in sorted(facts["states"].items()))
    print(f"sweep {facts['name']}: {facts['trials']} trials ({states or 'none yet'})")
    if not table.empty:
        shown = table.drop(columns=["started", "finished"]).sort_values("value", ascending=False, na_position="last")
        print("\nbest trials (value = best validation accuracy):")
        print(shown.head(args.top).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    if found:
        print("\nparameter importance (fANOVA over completed trials):")
        print(pd.Series(found).to_string(float_format=lambda v: f"{v:.3f}"))
    else:
        print("\nparameter importance: needs at least two completed trials whose parameters and scores differ")
    command = reproduce_command(study, args.runs_dir)
    if command:
        print(f"\nthe best trial again (add --epochs N for a longer run):\n{command}")
    return 0


def add_parsers(sub) -> None:
    """Register `fer sweep` on the CLI's subparsers."""
    p = sub.add_parser("sweep", help="Optuna hyperparameter sweeps: each trial a run, poor trials pruned",
                       description="fer sweep [run]: create or continue the study NAME and train trials until it has "
                                   "--trials of them. fer sweep report NAME: best trials, fANOVA importances and the "
                                   "command that reproduces the best. fer sweep list: the sweeps in the runs folder.")
    p.add_argument("action", nargs="?", default="run", choices=["run", "report", "list"])
    p.add_argument("sweep_name", nargs="?", metavar="NAME", help="the sweep (for report; or use --name)")
    p.add_argument("--name", help="the sweep's name (default: the space file's name)")
    p.add_argument("--config", type=Path, help="base YAML/JSON config of every trial, or a preset's name (quick, …)")
    p.add_argument("--space", type=Path, help="search space YAML: config keys -> {low, high[, log, step]} or choices")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override in the base config")
    p.add_argument("--trials", type=int, help="the study's total number of trials (more than it has continues it)")
    p.add_argument("--jobs", type=int, default=1, help="trials training at once (default 1)")
    pruners = catalog()["pruners"]
    p.add_argument("--pruner", default="median", choices=sorted(pruners),
                   help="; ".join(f"{n}: {title}" for n, title in sorted(pruners.items())))
    p.add_argument("--startup-trials", type=int, default=5, help="finished trials before median pruning starts")
    p.add_argument("--warmup-epochs", type=int, default=0, help="epochs each trial trains before it can be pruned")
    p.add_argument("--seed", type=int, help="TPE seed (leave unset when several machines share the study)")
    p.add_argument("--storage", help="an Optuna RDB URL (e.g. postgresql://… shared by many machines); "
                                     "default: SQLite in <runs>/sweeps/NAME.db")
    add_ray_option(p)
    p.add_argument("--top", type=int, default=10, help="trials shown in the report")
    p.add_argument("--format", choices=["table", "json"], default="table", help="the report's format")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    p.set_defaults(func=_cmd_sweep)
