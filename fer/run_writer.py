"""The one writer of run folders: every file in a run folder is created, changed or removed here.

Training (through `fer.recorder.RunRecorder`), the job queue, blendshape runs, `fer eval` and the
user's edits (rename, retag, delete) all call these functions; viewers only read (`fer.runs`).
Whole files are written by `fer.files.atomic_write` (temp file, fsync, rename), so a reader or a
crash never sees half of one; metrics and the log grow by appended lines.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from fer.config import RunConfig
from fer.files import atomic_write, write_json, write_text
from fer.runs import STATES, read_json, read_jsonl, read_status, utc_now

CANCEL_FILE = "CANCEL"


# --- creating a run ----------------------------------------------------------------------------------------------

def new_run_id(name: str) -> str:
    """Sortable and unique: UTC time to the second, the run name, and a random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40].strip("-") or "run"
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def create_run(cfg: RunConfig, root: Path, state: str = "queued", **status: Any) -> Path:
    """A new run folder under `root` with config.json and status.json (default: queued)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / new_run_id(cfg.name)
    run_dir.mkdir()
    write_text(run_dir / "config.json", cfg.to_json())
    # queued_ns orders the queue: runs created within one second keep the order they were created in.
    write_status(run_dir, state, created_at=utc_now(), queued_ns=time.time_ns(), epochs=cfg.train.epochs, **status)
    return run_dir


# --- status, metrics, log ----------------------------------------------------------------------------------------

def write_status(run_dir: Path, state: str, **fields: Any) -> Dict[str, Any]:
    """Merge `fields` into status.json, set its state, and stamp the writing process and time."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    run_dir = Path(run_dir)
    status = read_json(run_dir / "status.json", {}) or {}
    status.update(fields, state=state, updated_at=utc_now(), pid=os.getpid(), host=socket.gethostname())
    write_json(run_dir / "status.json", status)
    return status


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
    """Write a checkpoint payload (see fer.checkpoint) as `name`, atomically."""
    import torch  # only checkpoint writes need it; the queue and the CLI's light commands stay torch-free

    atomic_write(Path(run_dir) / name, lambda fh: torch.save(payload, fh))


def save_arrays(run_dir: Path, name: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Write numpy arrays as an .npz (loadable with allow_pickle=False)."""
    atomic_write(Path(run_dir) / name, lambda fh: np.savez(fh, **arrays))


def record_evaluation(run_dir: Path, metrics: Dict[str, Any], predictions: pd.DataFrame) -> None:
    """eval_<split>.json and predictions_<split>.csv for one evaluated split."""
    split = metrics["split"]
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


# --- requests and the user's edits -------------------------------------------------------------------------------

def tracker_dir(run_dir: Path) -> Path:
    """The run's folder for experiment trackers' own files (W&B offline runs, TensorBoard events)."""
    folder = Path(run_dir) / "trackers"
    folder.mkdir(exist_ok=True)
    return folder


def request_cancel(run_dir: Path) -> None:
    """Ask a running job to stop after its current batch (it saves state and marks itself cancelled)."""
    write_text(Path(run_dir) / CANCEL_FILE, utc_now())


def clear_cancel(run_dir: Path) -> None:
    """Remove a pending cancel request."""
    (Path(run_dir) / CANCEL_FILE).unlink(missing_ok=True)


def _edit_config(run_dir: Path, **changes: Any) -> None:
    config = read_json(run_dir / "config.json")
    config.update(changes)
    write_json(run_dir / "config.json", config)


def rename_run(run_dir: Path, name: str) -> None:
    """Change a run's display name (its folder and id stay)."""
    if not name.strip():
        raise ValueError("a run name cannot be empty")
    _edit_config(Path(run_dir), name=name.strip())


def set_tags(run_dir: Path, tags: Sequence[str]) -> None:
    """Replace a run's tags."""
    _edit_config(Path(run_dir), tags=[t.strip() for t in tags if t.strip()])


def delete_run(run_dir: Path) -> None:
    """Delete a run folder; a running or queued run must be cancelled first."""
    run_dir = Path(run_dir)
    state = read_status(run_dir).get("state")
    if state in ("running", "queued"):
        raise ValueError(f"{run_dir.name} is {state}: cancel it before deleting")
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir} is not a run folder")
    shutil.rmtree(run_dir)

