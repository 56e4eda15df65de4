"""The one writer of run folders: every file in a run folder is created, changed or removed here.

Training (through `fer.training.recorder.RunRecorder`), the job queue, blendshape runs, `fer eval` and the
user's edits (rename, retag, delete) all call these functions; viewers only read (`fer.runs.store`).
Whole files are written by `fer.core.files.atomic_write` (temp file, fsync, rename), so a reader or a
crash never sees half of one; metrics and the log grow by appended lines.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Dict, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from fer.config import RunConfig
from fer.core.constants import file_safe_split
from fer.core.errors import UserError
from fer.core.files import atomic_write, is_disk_full, read_json, utc_now, write_json, write_text
from fer.core.text import check_name, check_tags
from fer.runs.identity import AUDIT_FILE, RUN_FORMAT, run_identity
from fer.runs.store import STATES, inside_package, read_jsonl, read_status

if TYPE_CHECKING:  # only evaluation, which has its table already, passes one in
    import pandas as pd

CANCEL_FILE = "CANCEL"
RESERVE_FILE = ".space-reserve"  # ballast freed on a full disk, so the failure itself can still be written
RESERVE_BYTES = 256 * 1024
NOT_MIRRORED = ("config.json", "status.json", CANCEL_FILE)  # the driver's own: never taken from a node
STATUS_LOCK = ".status.lock"  # flock around every read-check-write of status.json
TRAIN_LOCK = ".train.lock"  # flock held by the process training the run (the OS drops it when that dies)


class RunBusy(UserError):
    """The run is being trained by another process right now."""


# --- who trains a run ---------------------------------------------------------------------------------------------

@contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's training lock for the block; RunBusy when another process holds it.

    Two `fer train --resume` of one run, or a resume racing the worker, would write one folder at
    once: the second is refused before it touches anything.
    """
    fh = open(Path(run_dir) / TRAIN_LOCK, "a+")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        status = read_status(run_dir)
        raise RunBusy(f"{Path(run_dir).name} is being trained by another process "
                      f"(pid {status.get('pid', '?')} on {status.get('host', '?')}); it cannot be trained twice at once")
    try:
        yield
    finally:
        fh.close()


def is_training(run_dir: Path) -> bool:
    """Whether a live process holds the run's training lock (or its status says it runs)."""
    return read_status(run_dir).get("state") == "running" or lock_held(run_dir)


def lock_held(run_dir: Path) -> bool:
    """Whether a live process holds the run's training lock."""
    try:
        fh = open(Path(run_dir) / TRAIN_LOCK, "r")
    except OSError:
        return False
    with fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except OSError:
            return True


# --- creating a run ----------------------------------------------------------------------------------------------

def new_run_id(name: str) -> str:
    """Sortable and unique: UTC time to the second, the run name, and a random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    # ASCII letters and digits only: the id is a folder name on any OS and in any shell.
    safe = "".join(c if (c.isascii() and c.isalnum()) or c in "-_" else "-" for c in name)[:40].strip("-") or "run"
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def create_run(cfg: RunConfig, root: Path, state: str = "queued", **status: Any) -> Path:
    """A new run folder under `root` with config.json and status.json (default: queued)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / new_run_id(cfg.name)
    # Built under a hidden name and renamed into place: a full disk or a kill leaves no half-made run.
    building = root / f".new-{run_dir.name}"
    try:
        building.mkdir()
        write_text(building / "config.json", cfg.to_json())
        # queued_ns orders the queue: runs created within one second keep the order they were created in.
        write_status(building, state, format=RUN_FORMAT, run_id=run_dir.name, created_at=utc_now(),
                     queued_ns=time.time_ns(), epochs=cfg.train.epochs, **status)
        building.rename(run_dir)
    except OSError as e:
        shutil.rmtree(building, ignore_errors=True)
        if is_disk_full(e):
            raise OSError(e.errno, f"no space left on device in {root}: the run was not created") from None
        raise
    return run_dir


class NotARun(UserError, ValueError):
    """A folder fer did not write (or a symbolic link): fer never writes into it or deletes it."""


def own_run(run_dir: Path) -> Path:
    """`run_dir` when it is fer's own run folder (an older one is stamped now); NotARun otherwise."""
    run_dir = Path(run_dir)
    identity = run_identity(run_dir)
    if identity == "foreign":
        raise NotARun(f"{run_dir.name} is not a run folder fer wrote (or it is a link): fer leaves it alone")
    if identity == "legacy":  # written before runs carried the stamp: proven by its files, stamped once
        status = read_json(run_dir / "status.json", {})
        write_json(run_dir / "status.json", {**status, "format": RUN_FORMAT, "run_id": run_dir.name})
    return run_dir


def reserve_space(run_dir: Path) -> None:
    """Set aside a little disk for the run's last words (status, log line) should the disk fill up."""
    try:
        with open(Path(run_dir) / RESERVE_FILE, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
    except OSError:
        release_space(run_dir)  # no room even for this: the run will say so when it fails


def release_space(run_dir: Path) -> None:
    """Give the reserved space back (on a full disk, or when the run stops)."""
    (Path(run_dir) / RESERVE_FILE).unlink(missing_ok=True)


# --- status, metrics, log ----------------------------------------------------------------------------------------

class StateChanged(UserError, ValueError):
    """The run is no longer in the state a change was meant for (someone else changed it first)."""


@contextmanager
def status_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's status lock: every read-check-write of status.json happens under it."""
    with open(Path(run_dir) / STATUS_LOCK, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield  # closing the file drops the lock


def write_status(run_dir: Path, state: str, expect: Optional[Collection[str]] = None,
                 **fields: Any) -> Optional[Dict[str, Any]]:
    """Merge `fields` into status.json, set its state, and stamp the writing process and time.

    With `expect`, a compare-and-set: nothing is written (None is returned) unless the run is in one of
    those states now, so a worker's "queued" never overwrites a cancel that got there first.
    """
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    run_dir = Path(run_dir)
    if "format" not in fields:  # every write but the one that creates the run: only into fer's own folders
        own_run(run_dir)
    with status_lock(run_dir):
        if expect is not None and read_status(run_dir).get("state") not in expect:
            return None
        status = read_json(run_dir / "status.json", {}) or {}
        status.update(fields, state=state, updated_at=utc_now(), pid=os.getpid(), host=socket.gethostname())
        write_json(run_dir / "status.json", status)
        return status


def claim_run(run_dir: Path, start_from: Collection[str]) -> None:
    """Mark the run running for this process if it is in one of `start_from`; StateChanged otherwise.

    The trainer claims its run before loading anything. A cancel that got in first wins (the run is not
    started); one that comes after finds it running and leaves a CANCEL request the loop sees. A request
    older than the claim is dropped with it, under the same lock, so it cannot stop a fresh start.
    """
    own_run(run_dir)
    with status_lock(run_dir):
        state = read_status(run_dir).get("state")
        if state not in start_from:
            raise StateChanged(f"{Path(run_dir).name} is {state} now, so it was not started")
        clear_cancel(run_dir)
        status = read_json(Path(run_dir) / "status.json", {}) or {}
        status.update(state="running", phase="starting", waiting=None, error=None, finished_at=None,
                      updated_at=utc_now(), pid=os.getpid(), host=socket.gethostname())
        write_json(Path(run_dir) / "status.json", status)


def _append_line(path: Path, row: Mapping[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(dict(row)) + "\n")
        fh.flush()  # viewers see it at once


def append_metrics(run_dir: Path, row: Mapping[str, Any]) -> None:
    """Append one epoch's metrics as a JSON line."""
    _append_line(Path(run_dir) / "metrics.jsonl", row)


def append_batch_loss(run_dir: Path, row: Mapping[str, Any]) -> None:
    """Append a point of the smoothed training loss (epoch, batch, loss) to batches.jsonl."""
    _append_line(Path(run_dir) / "batches.jsonl", row)


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Keep only rows up to `last_epoch` in metrics.jsonl and batches.jsonl (a resumed run redoes the rest)."""
    for name in ("metrics.jsonl", "batches.jsonl"):
        rows = read_jsonl(Path(run_dir) / name)
        kept = [r for r in rows if int(r.get("epoch", 0)) <= last_epoch]
        if len(kept) != len(rows):
            write_text(Path(run_dir) / name, "".join(json.dumps(r) + "\n" for r in kept))


class _TqdmHandler(logging.Handler):
    """Log lines that do not break an active tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm  # only when echoing to a terminal

        tqdm.write(self.format(record), file=sys.stderr)


def open_log(run_dir: Path, echo: bool = False) -> logging.Logger:
    """A logger appending to the run's train.log (and echoing to stderr when `echo`)."""
    run_dir = Path(run_dir)
    logger = logging.getLogger(f"fer.run.{run_dir.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    close_log(logger)
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(fh)
    if echo:
        sh = _TqdmHandler()
        sh.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(sh)
    return logger


def close_log(logger: logging.Logger) -> None:
    """Close and detach the logger's handlers."""
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


# --- model files and evaluations ---------------------------------------------------------------------------------

def save_checkpoint(run_dir: Path, name: str, payload: Dict[str, Any]) -> None:
    """Write a checkpoint payload (see fer.runs.checkpoint) as `name`, atomically."""
    import torch  # only checkpoint writes need it; the queue and the CLI's light commands stay torch-free

    atomic_write(Path(run_dir) / name, lambda fh: torch.save(payload, fh))


def save_arrays(run_dir: Path, name: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write numpy arrays as an .npz (loadable with allow_pickle=False)."""
    atomic_write(Path(run_dir) / name, lambda fh: np.savez(fh, **arrays))


def save_model_export(run_dir: Path, name: str, data: bytes) -> Path:
    """Write an exported model (e.g. ONNX) beside the run's checkpoints, atomically; never inside the package."""
    if inside_package(Path(run_dir)):
        raise UserError("the shipped model's folder is read-only: pass an output path")
    path = Path(run_dir) / name
    atomic_write(path, lambda fh: fh.write(data))
    return path


def record_evaluation(run_dir: Path, metrics: Dict[str, Any], predictions: pd.DataFrame) -> None:
    """eval_<split>.json and predictions_<split>.csv for one evaluated split."""
    if inside_package(run_dir):
        raise PermissionError(f"{run_dir} is inside the installed package, which fer never writes to "
                              "(evaluations of the shipped model go to fer.runs.store.evaluation_dir)")
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    split = metrics["split"]
    if not file_safe_split(str(split)):
        raise ValueError(f"not a split name: {split!r}")
    write_json(Path(run_dir) / f"eval_{split}.json", metrics)
    atomic_write(Path(run_dir) / f"predictions_{split}.csv",
                 lambda fh: fh.write(predictions.to_csv(index=False).encode("utf-8")))


def export_run(run_dir: Path, dest: Path, files: Iterable[str], extra_texts: Mapping[str, str]) -> Path:
    """Copy `files` of a run into a fresh folder `dest`, plus extra text files (a card, the run id)."""
    run_dir, dest = Path(run_dir), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in files:
        if (run_dir / name).is_file():
            atomic_write(dest / name, lambda fh, src=run_dir / name: fh.write(src.read_bytes()))
    for name, text in extra_texts.items():
        write_text(dest / name, text)
    return dest


def write_mirrored(run_dir: Path, name: str, data: bytes, offset: Optional[int] = None) -> None:
    """Write a run file that a Ray node sent (`fer.jobs.ray_stream`): whole and atomically, or, with
    `offset`, an appended file (metrics, log) from that byte on, so a record sent twice lands once."""
    own_run(run_dir)
    parts = name.split("/")  # as sent: PurePosixPath would hide "." and "//"
    if not name or name in NOT_MIRRORED or \
            any(part in ("", ".", "..") or part.startswith(".") for part in parts):
        raise ValueError(f"not a file a node may write: {name[:80]!r}")
    path = Path(run_dir).joinpath(*parts)
    if any(p.is_symlink() for p in [path, *path.parents[:len(parts) - 1]]):
        raise ValueError(f"{name[:80]!r} is a link in {Path(run_dir).name}: not written")
    path.parent.mkdir(parents=True, exist_ok=True)
    if offset is None:
        atomic_write(path, lambda fh: fh.write(data))
        return
    size = path.stat().st_size if path.exists() else 0
    if offset > size:
        raise ValueError(f"{name} is {size} bytes here, so bytes from {offset} on cannot follow it")
    with open(path, "r+b" if path.exists() else "wb") as fh:
        fh.truncate(offset)
        fh.seek(offset)
        fh.write(data)


# --- requests and the user's edits -------------------------------------------------------------------------------

def tracker_dir(run_dir: Path) -> Path:
    """The run's folder for experiment trackers' own files (W&B offline runs, TensorBoard events)."""
    folder = Path(run_dir) / "trackers"
    folder.mkdir(exist_ok=True)
    return folder


def request_cancel(run_dir: Path, prune: str = "") -> None:
    """Ask a running job to stop after its current batch (it saves state and marks itself cancelled).

    With `prune` (why), a sweep stops a poor trial: the run then marks itself `pruned` instead.
    """
    own_run(run_dir)
    with status_lock(run_dir):  # ordered with the trainer's claim: after it, never cleared by it
        write_json(Path(run_dir) / CANCEL_FILE, {"at": utc_now(), **({"pruned": prune} if prune else {})})


def prune_reason(run_dir: Path) -> str:
    """Why a sweep pruned the run (from its stop request), or "" when it was a plain cancel."""
    request = read_json(Path(run_dir) / CANCEL_FILE, {})
    return str(request.get("pruned") or "") if isinstance(request, dict) else ""


def clear_cancel(run_dir: Path) -> None:
    """Remove a pending cancel request."""
    (Path(run_dir) / CANCEL_FILE).unlink(missing_ok=True)


def _edit_config(run_dir: Path, **changes: Any) -> None:
    own_run(run_dir)
    if is_training(run_dir):
        raise ValueError(f"{run_dir.name} is training: edit it once it has stopped")
    config = read_json(run_dir / "config.json")
    if not isinstance(config, dict):
        raise ValueError(f"{run_dir.name}: config.json is unreadable, so the run cannot be edited")
    config.update(changes)
    write_json(run_dir / "config.json", config)


def rename_run(run_dir: Path, name: str) -> None:
    """Change a run's display name (its folder and id stay); plain printable text only."""
    _edit_config(Path(run_dir), name=check_name(name))


def set_tags(run_dir: Path, tags: Sequence[str]) -> None:
    """Replace a run's tags (no commas, printable, at most 32 of up to 64 characters)."""
    _edit_config(Path(run_dir), tags=check_tags(tags))


def append_audit(root: Path, who: str, role: str, action: str, target: str, **detail: Any) -> None:
    """One line of the runs folder's audit log: who did what to which run, and when."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _append_line(root / AUDIT_FILE, {"at": utc_now(), "who": who, "role": role, "action": action, "target": target,
                                     **detail})
