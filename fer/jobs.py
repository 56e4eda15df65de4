"""Background training jobs: a queue of `queued` run folders and one detached worker per runs folder.

The dashboard (or anyone) calls `submit(cfg)`: the run folder is created as `queued` and a worker
process is started unless one is already alive. The worker trains queued runs one at a time, oldest
first, each with `fer train --resume RUN` in its own process, and exits when the queue is empty. It
runs in its own session, so closing the browser or reloading the page does not stop it.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from fer.config import RunConfig
from fer.runs import default_runs_dir, pid_alive, read_status, request_cancel, utc_now, write_status

LOCK_NAME = ".worker.lock"
LOG_NAME = ".worker.log"


def _root(runs_dir: Optional[Path]) -> Path:
    return Path(runs_dir or default_runs_dir())


def queued_runs(runs_dir: Optional[Path] = None) -> List[Path]:
    """Queued run folders, oldest first (run ids start with their creation time)."""
    root = _root(runs_dir)
    return sorted(p for p in root.glob("*") if (p / "config.json").is_file()
                  and read_status(p).get("state") == "queued") if root.is_dir() else []


def worker_pid(runs_dir: Optional[Path] = None) -> Optional[int]:
    """The live worker's process id, or None."""
    try:
        pid = int((_root(runs_dir) / LOCK_NAME).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


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


def submit(cfg: RunConfig, runs_dir: Optional[Path] = None) -> Path:
    """Queue a new run and make sure a worker will train it."""
    from fer.train import create_run

    run_dir = create_run(cfg, runs_dir)
    ensure_worker(run_dir.parent)
    return run_dir


def submit_suite(name: str, epochs: int = 0, repeats: int = 1, overrides: Sequence[str] = (),
                 runs_dir: Optional[Path] = None) -> List[Path]:
    """Queue every run of a suite."""
    from fer.suites import suite_configs
    from fer.train import create_run

    run_dirs = [create_run(cfg, runs_dir) for cfg in suite_configs(name, repeats, epochs, overrides)]
    if run_dirs:
        ensure_worker(run_dirs[0].parent)
    return run_dirs


def resume(run_dir: Path) -> None:
    """Queue a cancelled, interrupted or failed run again; it continues from last.pt."""
    state = read_status(run_dir).get("state")
    if state not in ("cancelled", "interrupted", "failed"):
        raise ValueError(f"{Path(run_dir).name} is {state}; only cancelled, interrupted or failed runs resume")
    write_status(Path(run_dir), "queued", requeued_at=utc_now())
    ensure_worker(Path(run_dir).parent)


def cancel(run_dir: Path) -> None:
    """Stop a running job after its current batch, or take a queued one off the queue."""
    if read_status(run_dir).get("state") == "queued":
        write_status(Path(run_dir), "cancelled", finished_at=utc_now())
    else:
        request_cancel(Path(run_dir))


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


def run_worker(runs_dir: Optional[Path] = None, poll_s: float = 1.0) -> int:
    """Train queued runs one at a time until none is left; returns how many were run."""
    root = _root(runs_dir)
    lock = root / LOCK_NAME
    if not _acquire(lock):
        return 0
    done = 0
    try:
        while True:
            queue = queued_runs(root)
            if not queue:
                lock.unlink(missing_ok=True)
                time.sleep(poll_s)
                # A run submitted while this worker was leaving saw its lock: take it after all.
                if not queued_runs(root) or not _acquire(lock):
                    return done
                continue
            subprocess.run([sys.executable, "-m", "fer", "train", "--resume", str(queue[0]), "--quiet"],
                           stdin=subprocess.DEVNULL)
            if read_status(queue[0]).get("state") == "queued":  # it could not even start: do not loop on it
                write_status(queue[0], "failed", error="the training process exited before starting")
            done += 1
    finally:
        if lock.is_file() and lock.read_text().split()[:1] == [str(os.getpid())]:
            lock.unlink(missing_ok=True)
