"""Which folders are fer's own runs, and what happened to them (the audit log, the trash).

A run folder is recognised by what the run writer wrote, never by "it has a config.json": its status
carries fer's format and the run's own id. Folders written before that stamp existed are recognised
by their full set of run files (a config that fer can read back and a status fer wrote), and the run
writer stamps them at its next write. Anything else is *foreign*: listed, never written or deleted.
A symbolic link is never a run: writing through it would write wherever it points.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

from fer.config import ConfigError, RunConfig, from_dict
from fer.core.files import read_json

RUN_FORMAT = "fer-run/1"  # status.json's "format": the stamp of a folder the run writer made
STATUS_STAMPS = ("updated_at", "pid", "host", "state")  # what every status fer writes holds
AUDIT_FILE = ".audit.jsonl"  # who launched, cancelled, edited or deleted what, and when
TRASH_DIR = ".trash"  # deleted runs, restorable until the server's retention ends


def run_identity(path: Path) -> str:
    """"run" (stamped by the run writer), "legacy" (an older fer run, provably), or "foreign"."""
    path = Path(path)
    if path.is_symlink() or not path.is_dir():
        return "foreign"
    status = read_json(path / "status.json", None)
    if isinstance(status, dict) and status.get("format") == RUN_FORMAT and status.get("run_id") == path.name:
        return "run"
    if not isinstance(status, dict) or not all(k in status for k in STATUS_STAMPS):
        return "foreign"
    try:
        from_dict(RunConfig, read_json(path / "config.json", None))
    except (ConfigError, TypeError):
        return "foreign"
    return "legacy"


def is_fer_run(path: Path) -> bool:
    """Whether fer may write to (and delete) this folder: its own run, stamped or provably older."""
    return run_identity(path) in ("run", "legacy")


def read_audit(root: Path, limit: int = 200) -> List[Dict[str, Any]]:
    """The newest `limit` audit records of a runs folder, newest first (torn lines skipped)."""
    try:
        lines = (Path(root) / AUDIT_FILE).read_text(errors="replace").splitlines()[-limit:]
    except OSError:
        return []
    records = []
    for line in reversed(lines):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def trashed_runs(root: Path) -> List[Dict[str, Any]]:
    """Runs in the trash, newest deletion first: their folder name, run name and when they were deleted."""
    trash = Path(root) / TRASH_DIR
    if not trash.is_dir():
        return []
    found = []
    for folder in trash.iterdir():
        if folder.is_dir() and not folder.is_symlink():
            status = read_json(folder / "status.json", {}) or {}
            config = read_json(folder / "config.json", {}) or {}
            found.append({"run_id": folder.name, "name": config.get("name") if isinstance(config, dict) else None,
                          "deleted_at": status.get("deleted_at") if isinstance(status, dict) else None,
                          "path": str(folder)})
    return sorted(found, key=lambda r: str(r["deleted_at"]), reverse=True)
