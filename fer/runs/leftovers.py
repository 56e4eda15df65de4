"""What a killed writer leaves in a run folder, tidied: temp files of atomic writes and the space reserve.

`atomic_write` writes `.NAME.XXXX.tmp` then renames it over NAME; a kill -9 in between leaves the temp
file for good (a checkpoint's is ~10-100 MB). Tidying runs only while no process trains the run (its
training lock is free, or the caller is that process, before it writes). A temp checkpoint that is
complete, newer than the file it was meant to replace, and whose epoch the metrics already record was
killed between its fsync and its rename: it is moved into place rather than thrown away.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from fer.runs.store import read_metrics
from fer.runs.writer import RESERVE_FILE, lock_held, own_run

_TEMP = re.compile(r"^\.(?P<target>.+)\.[A-Za-z0-9_]{6,}\.tmp$")  # tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")


@dataclass
class Tidied:
    """What tidying did: files removed (bytes freed) and checkpoints recovered."""

    removed: List[str] = field(default_factory=list)
    recovered: List[str] = field(default_factory=list)
    freed_bytes: int = 0


def tidy_run(run_dir: Path, *, owner: bool = False, min_age_s: float = 0.0) -> Tidied:
    """Remove stale temp files and the space reserve; recover complete checkpoints (see the module doc).

    `owner=True` when the caller holds the run's training lock (a trainer, before it writes anything);
    otherwise nothing is touched while another process trains the run. `min_age_s`: leave files younger
    than this (a listing tidies only what no writer can still be writing: an atomic write takes seconds).
    """
    run_dir, done = own_run(Path(run_dir)), Tidied()
    if not owner and lock_held(run_dir):
        return done
    oldest = time.time() - min_age_s
    for temp in sorted(run_dir.iterdir()):
        match = _TEMP.match(temp.name)
        if not match or not temp.is_file() or temp.is_symlink() or temp.stat().st_mtime > oldest:
            continue
        target = run_dir / match["target"]
        if target.suffix == ".pt" and _worth_keeping(temp, target, run_dir):
            temp.replace(target)
            done.recovered.append(target.name)
            continue
        done.freed_bytes += temp.stat().st_size
        temp.unlink()
        done.removed.append(temp.name)
    reserve = run_dir / RESERVE_FILE
    if reserve.is_file() and not owner and reserve.stat().st_mtime <= oldest:
        done.freed_bytes += reserve.stat().st_size
        reserve.unlink()
        done.removed.append(reserve.name)
    return done


def _worth_keeping(temp: Path, target: Path, run_dir: Path) -> bool:
    """A complete checkpoint of an epoch the metrics record, newer than the one in place."""
    from fer.runs.checkpoint import CheckpointError, load_checkpoint  # PyTorch, only when there is one

    try:
        epoch = int(load_checkpoint(temp).get("epoch") or 0)
    except (CheckpointError, TypeError, ValueError):
        return False  # torn: the kill came before its fsync
    try:
        current = int(load_checkpoint(target).get("epoch") or 0) if target.is_file() else -1
    except (CheckpointError, TypeError, ValueError):
        current = -1
    metrics = read_metrics(run_dir)
    recorded = set(metrics["epoch"]) if len(metrics) and "epoch" in metrics else set()
    return epoch > current and epoch in recorded
