"""The job queue: run folders in state `queued`, and one detached worker per runs folder that trains them.

Whatever queues a run (the dashboard, `fer train --queue`, `fer suite run`: see `fer.jobs`), the worker
starts queued runs in queue order, each as `fer train --run RUN` in its own process, up to `slots` at a
time (CPU threads are shared out between parallel jobs), and leaves once the queue has been empty for a
few seconds (a quick next submission reuses it). It runs in its own session, so closing the browser or
reloading the page does not stop it. This module imports no torch, so `fer worker` and `fer cancel`
start in a fraction of a second.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from fer.files import write_json
from fer.run_writer import request_cancel, write_status
from fer.runs import FINISHED_STATES, default_runs_dir, pid_alive, read_json, read_status, utc_now

LOCK_NAME = ".worker.lock"
LOG_NAME = ".worker.log"
SETTINGS_NAME = ".worker.json"  # {"slots": N}: read by the worker at every poll, so it can change live


def _root(runs_dir: Optional[Path]) -> Path:
    return Path(runs_dir or default_runs_dir())


def queued_runs(runs_dir: Optional[Path] = None) -> List[Path]:
    """Queued run folders in queue order: when each was queued (to the nanosecond), so a suite keeps its order."""
    root = _root(runs_dir)
    if not root.is_dir():
        return []
    statuses = {p: read_status(p) for p in root.glob("*") if (p / "config.json").is_file()}
    queued = [p for p, status in statuses.items() if status.get("state") == "queued"]
    return sorted(queued, key=lambda p: (statuses[p].get("queued_ns") or 0, p.name))


def worker_pid(runs_dir: Optional[Path] = None) -> Optional[int]:
    """The live worker's process id, or None."""
    try:
        pid = int((_root(runs_dir) / LOCK_NAME).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def worker_slots(runs_dir: Optional[Path] = None) -> int:
    """How many jobs the worker runs at once (default 1)."""
    settings = read_json(_root(runs_dir) / SETTINGS_NAME, {}) or {}
    return max(1, int(settings.get("slots", 1)))


def set_worker_slots(runs_dir: Optional[Path], slots: int) -> None:
    """Let the worker run `slots` jobs at once (it picks the change up at its next poll)."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    root = _root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / SETTINGS_NAME, {"slots": int(slots)})


def ensure_worker(runs_dir: Optional[Path] = None) -> int:
    """Start a detached worker for `runs_dir` unless one is alive; returns its pid."""
    root = _root(runs_dir)
    pid = worker_pid(root)
    if pid:
        return pid
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOG_NAME, "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fer", "worker", "--runs-dir", str(root)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # survives the Streamlit session and page reloads
    _write_lock(root / LOCK_NAME, proc.pid)  # claim the queue for it now, so a quick second call sees it
    return proc.pid


def _write_lock(lock: Path, pid: int) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(f"{pid} {utc_now()}\n")
    return True


def resume(run_dir: Path) -> None:
    """Queue a cancelled, interrupted or failed run again; it continues from last.pt."""
    state = read_status(run_dir).get("state")
    if state not in ("cancelled", "interrupted", "failed"):
        raise ValueError(f"{Path(run_dir).name} is {state}; only cancelled, interrupted or failed runs resume")
    write_status(Path(run_dir), "queued", requeued_at=utc_now(), queued_ns=time.time_ns())
    ensure_worker(Path(run_dir).parent)


def cancel(run_dir: Path) -> str:
    """Take a queued run off the queue, or ask a running one to stop after its batch; returns what happened."""
    if read_status(run_dir).get("state") == "queued":
        write_status(Path(run_dir), "cancelled", finished_at=utc_now())
        return "cancelled (it was queued)"
    request_cancel(Path(run_dir))
    return "cancel requested; it stops after the current batch"


def wait(run_dirs: Sequence[Path], poll_s: float = 0.5,
         on_finish: Optional[Callable[[Path, Dict], None]] = None) -> Dict[Path, str]:
    """Block until every run has finished (completed, failed, cancelled or interrupted); their states.

    A worker that died with runs still queued is started again, so waiting never hangs on it.
    """
    pending = [Path(r) for r in run_dirs]
    states: Dict[Path, str] = {}
    while pending:
        for run_dir in list(pending):
            status = read_status(run_dir)
            if status.get("state") in FINISHED_STATES:
                states[run_dir] = status["state"]
                pending.remove(run_dir)
                if on_finish is not None:
                    on_finish(run_dir, status)
        if pending:
            if any(read_status(r).get("state") == "queued" for r in pending):
                ensure_worker(pending[0].parent)
            time.sleep(poll_s)
    return {Path(r): states[Path(r)] for r in run_dirs}


def _acquire(lock: Path) -> bool:
    """Take the worker lock: free, stale (dead pid), or already written for this process by `ensure_worker`."""
    if _write_lock(lock, os.getpid()):
        return True
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = 0
    if pid == os.getpid():
        return True
    if pid and pid_alive(pid):
        return False
    lock.unlink(missing_ok=True)  # stale: its worker died
    return _write_lock(lock, os.getpid())


def _start_job(run_dir: Path, slots: int) -> subprocess.Popen:
    env = dict(os.environ)
    if slots > 1:  # parallel CPU jobs would oversubscribe the cores: share them out
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // slots))
    return subprocess.Popen([sys.executable, "-m", "fer", "train", "--run", str(run_dir), "--quiet"],
                            stdin=subprocess.DEVNULL, env=env)


def run_worker(runs_dir: Optional[Path] = None, poll_s: float = 0.5, idle_exit_s: float = 5.0) -> int:
    """Train queued runs, up to `worker_slots` at a time, until none is left for `idle_exit_s`; returns the count."""
    root = _root(runs_dir)
    lock = root / LOCK_NAME
    if not _acquire(lock):
        return 0
    running: Dict[Path, subprocess.Popen] = {}
    done, idle_since = 0, None
    try:
        while True:
            for run_dir, proc in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[run_dir]
                done += 1
                if read_status(run_dir).get("state") == "queued":  # it could not even start: do not loop on it
                    write_status(run_dir, "failed", error="the training process exited before starting")
            slots = worker_slots(root)
            waiting = [q for q in queued_runs(root) if q not in running]
            while waiting and len(running) < slots:
                run_dir = waiting.pop(0)
                running[run_dir] = _start_job(run_dir, slots)
            if running or waiting:
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_exit_s:
                lock.unlink(missing_ok=True)
                time.sleep(poll_s)
                # A run submitted while this worker was leaving saw its lock: take it after all.
                if not queued_runs(root) or not _acquire(lock):
                    return done
                idle_since = None
            time.sleep(poll_s)
    finally:
        if lock.is_file() and lock.read_text().split()[:1] == [str(os.getpid())]:
            lock.unlink(missing_ok=True)
