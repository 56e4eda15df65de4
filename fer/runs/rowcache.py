"""Leaderboard rows kept between listings, each valid while its run folder's files are unchanged.

Rebuilding a 5,000-run board re-reads every config, status and metrics file (tens of seconds on a busy
machine); with this cache a listing costs one directory scan per run, and only runs whose files
changed are read again. One cache per process, shared by every dashboard session (Streamlit runs
sessions as threads of one process). Rows of queued and running runs are never kept: their state
depends on a live process, not only on files.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, Tuple

Row = Dict[str, Any]
Signature = Tuple[Tuple[str, int, int], ...]
LIVE_STATES = ("queued", "running")


def folder_signature(run_dir: Path) -> Signature:
    """Every file's name, modification time (ns) and size: any write to the run changes it."""
    with os.scandir(run_dir) as entries:
        return tuple(sorted((e.name, s.st_mtime_ns, s.st_size) for e in entries
                            if e.is_file(follow_symlinks=False) for s in (e.stat(follow_symlinks=False),)))


class RowCache:
    """Rows by run folder and signature; bounded, thread-safe."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._rows: Dict[str, Tuple[Signature, Row]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def row(self, run_dir: Path, build: Callable[[Path], Row]) -> Row:
        """The run's row: the kept one if the folder is unchanged, else `build(run_dir)` (kept unless live)."""
        key = str(run_dir)
        try:
            signature = folder_signature(run_dir)
        except OSError:  # vanished or unreadable meanwhile: build says what is wrong
            return build(run_dir)
        with self._lock:
            kept = self._rows.get(key)
        if kept is not None and kept[0] == signature:
            self.hits += 1
            return dict(kept[1])
        self.misses += 1
        row = build(run_dir)
        if row.get("status") not in LIVE_STATES:
            with self._lock:
                if len(self._rows) >= self.max_entries:
                    self._rows.clear()  # rare: more runs than any board shows; start over rather than grow
                self._rows[key] = (signature, dict(row))
        return row


class SharedBuild:
    """One build at a time per key; callers that asked while it ran share the next one (single flight).

    Twenty sessions asking for one board at once cost two builds, not twenty: a caller reuses a result
    only if its build started after the caller asked, so nobody gets a board older than its request.
    """

    def __init__(self) -> None:
        self._locks: Dict[str, threading.Lock] = {}
        self._done: Dict[str, Tuple[float, Any]] = {}  # key -> (when the last build started, its result)
        self._guard = threading.Lock()

    def get(self, key: str, build: Callable[[], Any]) -> Any:
        """`build()`'s result, or that of a build that started after this call."""
        asked = time.monotonic()
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            started, result = self._done.get(key, (-1.0, None))
            if started >= asked:
                return result
            started = time.monotonic()
            result = build()
            with self._guard:
                if len(self._done) > 256:  # one entry per runs folder; a bound all the same
                    self._done.clear()
                self._done[key] = (started, result)
            return result


ROWS = RowCache()
BOARDS = SharedBuild()
