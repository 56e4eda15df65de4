"""The run store: one folder per run, the contract between training and every viewer.

    checkpoints/<run_id>/
        config.json        the resolved RunConfig
        status.json        queued | running (epoch/batch progress) | completed | failed | cancelled
        metrics.jsonl      one JSON row per finished epoch, appended as training goes
        train.log          the log
        last.pt, best.pt   checkpoints (latest epoch; best validation accuracy)
        eval_<split>.json  accuracy, macro-F1, per-class scores, confusion matrix
        predictions_<split>.csv   per-image true label, prediction and probabilities
        CANCEL             present when a cancel was requested

Training writes these files; viewers (CLI, dashboard) only read them.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd

from fer.config import flatten

STATES = ("queued", "running", "completed", "failed", "cancelled", "interrupted")


def default_runs_dir() -> Path:
    """`FER_RUNS_DIR` when set, else `checkpoints/` in the working directory."""
    return Path(os.environ.get("FER_RUNS_DIR") or "checkpoints")


def new_run_id(name: str) -> str:
    """Sortable and unique: UTC time to the second, the run name, and a random suffix."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40].strip("-") or "run"
    return f"{stamp}-{safe}-{secrets.token_hex(2)}"


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file + rename, so a reader never sees a torn file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2, default=str)
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    """Parsed JSON, or `default` when the file is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_status(run_dir: Path, state: str, **fields: Any) -> Dict[str, Any]:
    """Merge `fields` into status.json and set its state."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    status = read_json(run_dir / "status.json", {}) or {}
    status.update(fields, state=state, updated_at=utc_now(), pid=os.getpid(), host=socket.gethostname())
    write_json_atomic(run_dir / "status.json", status)
    return status


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host; an exited but unreaped (zombie) process does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # e.g. a worker whose parent (Streamlit) never waits for it
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def read_status(run_dir: Path) -> Dict[str, Any]:
    """status.json; a 'running' run whose process died on this host reads as 'interrupted'."""
    status = read_json(Path(run_dir) / "status.json", {}) or {}
    if status.get("state") == "running" and status.get("host") == socket.gethostname() \
            and status.get("pid") and not pid_alive(int(status["pid"])):
        status["state"] = "interrupted"
    return status


def append_metrics(run_dir: Path, row: Dict[str, Any]) -> None:
    """Append one epoch's metrics as a JSON line (flushed, so viewers see it at once)."""
    with open(run_dir / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()


def read_metric_rows(run_dir: Path) -> List[Dict[str, Any]]:
    """Per-epoch metrics as dicts (empty when none yet); a torn last line is ignored."""
    rows: List[Dict[str, Any]] = []
    try:
        for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass
    except OSError:
        pass
    return rows


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """Per-epoch metrics as a DataFrame (empty when none yet)."""
    return pd.DataFrame(read_metric_rows(run_dir))


def truncate_metrics(run_dir: Path, last_epoch: int) -> None:
    """Drop rows after `last_epoch` (when resuming from a checkpoint older than the log)."""
    df = read_metrics(run_dir)
    if df.empty:
        return
    kept = df[df["epoch"] <= last_epoch]
    with open(run_dir / "metrics.jsonl", "w") as fh:
        for row in kept.to_dict(orient="records"):
            fh.write(json.dumps(row) + "\n")


def resolve_run(ref: str | Path, runs_dir: Optional[Path] = None) -> Path:
    """A run folder from a path, a run id, or a unique prefix/suffix of one."""
    path = Path(ref)
    if (path / "config.json").is_file():
        return path
    root = Path(runs_dir or default_runs_dir())
    if (root / str(ref) / "config.json").is_file():
        return root / str(ref)
    if str(ref) == "default":
        from fer.default_model import DEFAULT_RUN_DIR
        if (DEFAULT_RUN_DIR / "config.json").is_file():
            return DEFAULT_RUN_DIR
    matches = [p for p in root.glob("*") if (p / "config.json").is_file() and str(ref) in p.name] \
        if root.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise FileNotFoundError(f"no run {str(ref)!r} in {root}")
    raise ValueError(f"{str(ref)!r} matches several runs: {', '.join(sorted(p.name for p in matches))}")


def request_cancel(run_dir: Path) -> None:
    """Ask a running job to stop after its current batch (it saves state and marks itself cancelled)."""
    (Path(run_dir) / "CANCEL").write_text(utc_now())


def run_summary(run_dir: Path) -> Dict[str, Any]:
    """One leaderboard row: identity, status, flattened config and final metrics."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", {}) or {}
    status = read_status(run_dir)
    # Plain Python over the rows: a DataFrame per run would dominate a 1,000-run leaderboard.
    metrics = read_metric_rows(run_dir)
    scored = [m for m in metrics if isinstance(m.get("val_acc"), (int, float))]
    best = max(scored, key=lambda m: m["val_acc"]) if scored else None
    row: Dict[str, Any] = {"run_id": run_dir.name, "path": str(run_dir), "name": config.get("name"),
                           "tags": ",".join(config.get("tags", [])), "status": status.get("state", "unknown"),
                           "model": config.get("model", {}).get("name"),
                           "optimizer": config.get("optim", {}).get("name"),
                           "scheduler": config.get("sched", {}).get("name"),
                           "augmentation": config.get("augmentation"),
                           "epochs_done": max((int(m.get("epoch", 0)) for m in metrics), default=0),
                           "best_val_acc": float(best["val_acc"]) if best else None,
                           "final_train_acc": metrics[-1].get("train_acc") if metrics else None,
                           "train_seconds": float(sum(m.get("seconds") or 0 for m in metrics)) if metrics else None}
    # Overfitting signal: train minus validation accuracy at the best (checkpointed) epoch.
    row["best_epoch"] = int(best["epoch"]) if best else None
    row["train_val_gap"] = float(best["train_acc"] - best["val_acc"]) \
        if best and isinstance(best.get("train_acc"), (int, float)) else None
    test = read_json(run_dir / f"eval_{config.get('data', {}).get('test_split', 'PublicTest')}.json")
    row["test_split"] = test.get("split") if test else None
    row["test_acc"] = test.get("accuracy") if test else None
    row["test_macro_f1"] = test.get("macro_f1") if test else None
    row["created_at"] = status.get("created_at")
    row.update({f"config.{k}": v for k, v in flatten(config).items()})
    return row


def list_runs(runs_dir: Optional[Path] = None, include_default: bool = False) -> pd.DataFrame:
    """The leaderboard: one row per run folder, best test accuracy first, then validation accuracy.

    `include_default` adds the model shipped in the package (source "built-in").
    """
    root = Path(runs_dir or default_runs_dir())
    dirs = sorted(p for p in root.glob("*") if (p / "config.json").is_file()) if root.is_dir() else []
    rows = [{**run_summary(p), "source": "local"} for p in dirs]
    if include_default:
        from fer.default_model import DEFAULT_RUN_DIR
        if (DEFAULT_RUN_DIR / "config.json").is_file():
            rows.append({**run_summary(DEFAULT_RUN_DIR), "run_id": "default", "source": "built-in"})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["run_id", "name", "status", "model", "best_val_acc", "test_acc"])
    return df.sort_values(["test_acc", "best_val_acc", "run_id"], ascending=[False, False, False],
                          na_position="last").reset_index(drop=True)

