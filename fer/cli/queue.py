"""`fer runs`, `fer cancel`, `fer queue` and `fer worker`: the leaderboard and the job queue.

These only read and write run folders: they and their parser import no PyTorch, so they answer in
a fraction of a second even while a training job loads the CPU.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fer.jobs.queue import (RAY_STORAGE, cancel, describe_job, move, queued_runs, set_auto_resume, set_paused,
                            set_priority, set_ray_storage, set_worker_slots, settings)
from fer.jobs.worker import machine_slots, resume, revive_worker, run_worker, worker_pid
from fer.runs.store import BOARD_COLUMNS, list_runs, read_status, resolve_run

if TYPE_CHECKING:  # pandas comes with the first table printed, never for `fer predict` or --help
    import pandas as pd

ACCURACY_COLUMNS = ("test_acc", "test_macro_f1", "best_val_acc")
# Columns `fer runs` drops, first to last, until the table fits the terminal.
DROP_TO_FIT = ("run_id", "tags", "augmentation", "scheduler", "optimizer", "source", "epochs_done",
               "test_macro_f1", "test_split", "model", "test_n")


def fit_table(df: pd.DataFrame, width: int) -> str:
    """The leaderboard as text no wider than `width` (accuracies as percentages; less vital columns go)."""
    import pandas as pd

    shown = df.copy()
    for column in ACCURACY_COLUMNS:
        if column in shown:
            shown[column] = shown[column].map(lambda v: f"{v:.1%}" if pd.notna(v) else "")
    if "test_n" in shown:
        shown["test_n"] = shown["test_n"].map(lambda v: f"{int(v):,}" if pd.notna(v) else "")
    text = shown.to_string(index=False)
    for column in DROP_TO_FIT:
        if max(map(len, text.splitlines())) <= width:
            break
        if column in shown:
            shown = shown.drop(columns=column)
            text = shown.to_string(index=False)
    return "\n".join(line[:width] for line in text.splitlines())


# A listing tidies only leftovers older than this: no atomic write (a checkpoint's included) takes so long.
LEFTOVER_AGE_S = 600


def _tidy_leftovers(df: pd.DataFrame) -> None:
    """Remove what killed writers left in the listed runs (none is being trained); say what it freed."""
    from fer.runs.identity import run_identity
    from fer.runs.leftovers import tidy_run

    removed, recovered, freed = 0, [], 0
    for path in df.loc[df["source"] == "local", "path"] if "source" in df else ():
        if run_identity(Path(path)) != "run":  # foreign folders are left alone; older runs wait for their writer
            continue
        try:
            done = tidy_run(Path(path), min_age_s=LEFTOVER_AGE_S)
        except OSError:  # a folder that vanished or cannot be written: the listing goes on
            continue
        removed, freed = removed + len(done.removed), freed + done.freed_bytes
        recovered += [f"{Path(path).name}/{name}" for name in done.recovered]
    if removed or recovered:
        print(f"tidied what killed writers left: {removed} file(s), {freed / 1e6:.1f} MB freed"
              + (f"; recovered {', '.join(recovered)}" if recovered else ""), file=sys.stderr)


def _cmd_runs(args: argparse.Namespace) -> int:
    df = list_runs(args.runs_dir, include_default=True)
    _tidy_leftovers(df)
    if args.sort:
        if args.sort not in df.columns:
            print(f"unknown column {args.sort!r}; columns: {', '.join(df.columns)}", file=sys.stderr)
            return 2
        df = df.sort_values(args.sort, ascending=False, na_position="last")
    if not args.all_columns:
        df = df[[c for c in BOARD_COLUMNS if c in df.columns]]
    if args.format == "csv":
        print(df.to_csv(index=False), end="")
    elif args.format == "json":
        print(df.to_json(orient="records", indent=2))
    elif df.empty:
        print(f"no runs in {args.runs_dir or 'checkpoints/'}")
    else:
        print(fit_table(df, shutil.get_terminal_size(fallback=(120, 24)).columns))
        for row in df.dropna(subset=["problem"]).itertuples() if "problem" in df else ():
            print(f"damaged: {row.label}: {row.problem}", file=sys.stderr)
    return 0


def _cmd_cancel(args: argparse.Namespace) -> int:
    run_dir = resolve_run(args.run, args.runs_dir)
    print(f"{run_dir.name}: {cancel(run_dir)}")
    return 0


def _cmd_worker(args: argparse.Namespace) -> int:
    if args.slots:
        set_worker_slots(args.runs_dir, args.slots)
    print(f"worker: trained {run_worker(args.runs_dir)} queued run(s)")
    return 0


def _cmd_queue(args: argparse.Namespace) -> int:
    action = args.action
    if action in ("pause", "go"):
        set_paused(args.runs_dir, action == "pause")
    elif action == "auto-resume":
        if args.run not in ("on", "off"):
            raise ValueError("fer queue auto-resume takes on or off")
        set_auto_resume(args.runs_dir, args.run == "on")
    elif action == "ray-storage":
        set_ray_storage(args.runs_dir, args.run or "")
    elif action in ("up", "down", "top", "priority", "retry"):
        if not args.run:
            raise ValueError(f"fer queue {action} needs a RUN")
        run_dir = resolve_run(args.run, args.runs_dir)
        if action == "priority":
            set_priority(run_dir, int(args.value))
        elif action == "retry":
            resume(run_dir)
        else:
            move(run_dir, action)
    options, board = settings(args.runs_dir), list_runs(args.runs_dir)
    slots = machine_slots(args.runs_dir)
    was, pid = worker_pid(args.runs_dir), revive_worker(args.runs_dir)  # queued runs never wait on a dead worker
    state = ("started (pid " if pid != was else "running (pid ") + f"{pid})" if pid else "idle"
    print(f"worker: {state}; slots: {', '.join(slots)}; queue "
          f"{'paused' if options.get('paused') else 'open'}; auto-resume {'on' if options.get('auto_resume') else 'off'}; "
          f"Ray storage {options.get('ray_storage') or RAY_STORAGE[0]}")
    if board.empty:
        return 0
    labels = dict(zip(board["path"], board["label"]))
    active = [Path(p) for p, s in zip(board["path"], board["status"]) if s == "running"] + queued_runs(args.runs_dir)
    for i, run_dir in enumerate(active, 1):
        status = read_status(run_dir)
        priority = f" (priority {status['priority']})" if status.get("priority") else ""
        print(f"{i:3d}. {labels.get(str(run_dir), run_dir.name)}: "
              f"{describe_job(status, bool(options.get('paused')))}{priority}")
    return 0


def add_parsers(sub) -> None:
    """Register `fer runs`, `fer cancel`, `fer queue` and `fer worker` (no PyTorch import)."""
    p = sub.add_parser("runs", help="the leaderboard of runs")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--sort", help="column to sort by (descending)")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table",
                   help="table fits the terminal; csv and json have every leaderboard column")
    p.add_argument("--all-columns", action="store_true", help="include every flattened config column")
    p.set_defaults(func=_cmd_runs)

    p = sub.add_parser("cancel", help="take a queued run off the queue, or stop a running one after its batch "
                                      "(resume it later with train --resume)")
    p.add_argument("run", help="run id, a unique part of one, its name, or its folder")
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_cancel)

    p = sub.add_parser("queue", help="the job queue: show it, pause it, reorder it, retry a run",
                       description="fer queue [show]: running and queued jobs, in order, with where they run. "
                                   "pause / go: stop starting new jobs, or start again. up / down / top RUN: move "
                                   "a queued run. priority RUN P: higher starts first. retry RUN: queue a failed, "
                                   "cancelled or interrupted run again. auto-resume on|off: queue interrupted runs "
                                   "again by itself. ray-storage streamed|shared: how Ray runs reach this runs "
                                   "folder (streamed: through Ray alone; shared: the nodes see the folder and the "
                                   "data at the same paths).")
    p.add_argument("action", nargs="?", default="show",
                   choices=["show", "pause", "go", "up", "down", "top", "priority", "retry", "auto-resume",
                            "ray-storage"])
    p.add_argument("run", nargs="?", help="the run (for up, down, top, priority, retry); on|off for auto-resume; "
                                                 "streamed|shared for ray-storage")
    p.add_argument("value", nargs="?", help="the priority (for priority)")
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_queue)

    p = sub.add_parser("worker", help="train queued runs (the dashboard and suites start this)")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--slots", type=int, help="slots: jobs at once on a CPU-only machine (default: the runs folder's "
                                             "setting, FER_SLOTS, else 1); on a GPU machine one per GPU, at most N")
    p.set_defaults(func=_cmd_worker)
