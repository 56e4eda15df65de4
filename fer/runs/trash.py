"""Deleting runs undoably: a deleted run moves into its runs folder's trash, restorable until the
retention period (the server's `trash_days`) empties it. Only fer's own run folders are ever moved.
"""
from __future__ import annotations

import os
import shutil
from datetime import datetime, timezone
from pathlib import Path

from fer.core.files import read_json, utc_now, write_json
from fer.runs.identity import TRASH_DIR
from fer.runs.store import read_status
from fer.runs.writer import is_training, own_run, status_lock


def delete_run(run_dir: Path) -> Path:
    """Move a run into its runs folder's trash (restorable); a running or queued run must be cancelled first."""
    run_dir = own_run(Path(run_dir))
    state = read_status(run_dir).get("state")
    if state in ("running", "queued") or is_training(run_dir):
        raise ValueError(f"{run_dir.name} is {state if state in ('running', 'queued') else 'training'}: "
                         "cancel it before deleting")
    trash = run_dir.parent / TRASH_DIR
    trash.mkdir(exist_ok=True)
    target = trash / run_dir.name
    with status_lock(run_dir):  # no resume or start slips in between the check above and the move
        if read_status(run_dir).get("state") in ("running", "queued"):
            raise ValueError(f"{run_dir.name} was queued again meanwhile: cancel it before deleting")
        write_json(run_dir / "status.json", {**read_json(run_dir / "status.json", {}), "deleted_at": utc_now()})
        if target.exists():  # deleted before, restored, deleted again: the older copy goes for good
            shutil.rmtree(target)
        os.rename(run_dir, target)  # one rename: the run is either listed or in the trash, never half of each
    return target


def restore_run(root: Path, run_id: str) -> Path:
    """Bring a run back from the trash of runs folder `root`."""
    root, name = Path(root), Path(run_id).name
    source = root / TRASH_DIR / name
    if not source.is_dir() or source.is_symlink() or name in ("", ".", ".."):
        raise ValueError(f"no run {run_id!r} in the trash")
    if (root / name).exists():
        raise ValueError(f"a run folder {name} exists again: it cannot be restored over it")
    os.rename(source, root / name)
    status = read_json(root / name / "status.json", {})
    status.pop("deleted_at", None)
    write_json(root / name / "status.json", status)
    return root / name


def empty_trash(root: Path, older_than_days: float) -> int:
    """Remove trashed runs deleted more than `older_than_days` ago; how many went."""
    trash, removed = Path(root) / TRASH_DIR, 0
    cutoff = datetime.now(timezone.utc).timestamp() - older_than_days * 86400
    for folder in (trash.iterdir() if trash.is_dir() else ()):
        deleted = (read_json(folder / "status.json", {}) or {}).get("deleted_at")
        try:
            when = datetime.fromisoformat(deleted).timestamp()
        except (TypeError, ValueError):
            when = folder.stat().st_mtime
        if folder.is_dir() and not folder.is_symlink() and when < cutoff:
            shutil.rmtree(folder)
            removed += 1
    return removed
