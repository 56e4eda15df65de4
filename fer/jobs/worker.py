"""The worker: one detached process per runs folder that trains its queued runs.

It starts each queued run as `train_command(run)` in its own process on free **slots**: one per
visible GPU (the job gets CUDA_VISIBLE_DEVICES pinned to its GPUs), or on a CPU-only machine `slots`
CPU slots (each job's processes get their share of the cores). A run with `train.gpus = k` waits
until k slots are free and trains as one DistributedDataParallel job on them. A run queued for a Ray
cluster is handed to that cluster as a task instead (`fer.jobs.ray`); the same order, pause and
cancel apply.

The worker runs in its own session (closing the browser does not stop it) and leaves once the queue
has been empty for a few seconds. Jobs outlive a killed worker; a new worker counts the slots they
hold. This module imports no PyTorch, so `fer worker`, `fer queue` and `fer cancel` start at once.
"""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any, Callable, Dict, List, Optional, Sequence

from fer.config import ConfigError
from fer.core.files import pid_alive, process_start, utc_now, write_text
from fer.jobs.machine import visible_gpus
from fer.jobs.queue import (LOCAL, RAY_STORAGE, queue_key, queue_root, queued_runs, requeue, settings, statuses,
                            train_command)
from fer.jobs.ray import RayRuns
from fer.runs.leftovers import tidy_run
from fer.runs.store import FINISHED_STATES, read_config, read_status, status_int
from fer.runs.writer import write_status

LOCK_NAME = ".worker.lock"  # the worker's pid, for `worker_pid`
FLOCK_NAME = ".worker.flock"  # held (flock) by the one live worker
LOG_NAME = ".worker.log"
MAX_AUTO_RESUMES = 3  # an interrupted run is resumed automatically at most this often


def machine_slots(runs_dir: Optional[Path] = None) -> List[str]:
    """The worker's slots: "gpu:<id>" per visible GPU, else "cpu:<i>" (the setting, FER_SLOTS, or 1)."""
    chosen = settings(runs_dir).get("slots") or int(os.environ.get("FER_SLOTS") or 0) or None
    gpus = visible_gpus()
    if gpus:
        return [f"gpu:{g}" for g in gpus[:chosen or len(gpus)]]
    return [f"cpu:{i}" for i in range(max(1, chosen or 1))]


def worker_pid(runs_dir: Optional[Path] = None) -> Optional[int]:
    """The live worker's process id, or None.

    The lock names the worker by pid *and* start time, so a dead worker's pid reused by another
    process does not pass for a live worker.
    """
    try:
        fields = (queue_root(runs_dir) / LOCK_NAME).read_text().split()
        pid, started = int(fields[0]), float(fields[1])
    except (OSError, ValueError, IndexError):  # missing, torn, or written before start times were kept
        return None
    alive = pid_alive(pid) and (now := process_start(pid)) is not None and abs(now - started) < 1.0
    return pid if alive else None


def revive_worker(runs_dir: Optional[Path] = None, has_queued: Optional[bool] = None) -> Optional[int]:
    """Start a worker if runs are queued and none is alive (it was killed, or the machine restarted).

    `has_queued`: whether runs are queued, when the caller has just listed them (the Train page's board),
    so the statuses are not read twice.
    """
    root = queue_root(runs_dir)
    pid = worker_pid(root)
    if pid:
        return pid
    if not (queued_runs(root) if has_queued is None else has_queued):
        return None
    return ensure_worker(root)


def ensure_worker(runs_dir: Optional[Path] = None) -> int:
    """Start a detached worker for `runs_dir` unless one is alive; returns its pid."""
    root = queue_root(runs_dir)
    pid = worker_pid(root)
    if pid:
        return pid
    root.mkdir(parents=True, exist_ok=True)
    with open(root / LOG_NAME, "a") as log:
        proc = subprocess.Popen([sys.executable, "-m", "fer", "worker", "--runs-dir", str(root)],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # survives the Streamlit session and page reloads
    (root / LOCK_NAME).unlink(missing_ok=True)  # a dead worker's (worker_pid found it stale)
    _write_lock(root / LOCK_NAME, proc.pid)  # claim the queue for it now, so a quick second call sees it
    return proc.pid


def resume(run_dir: Path, target: Optional[str] = None) -> None:
    """Queue a stopped run again (retry) and make sure a worker will train it; it continues from last.pt."""
    requeue(run_dir, target)
    ensure_worker(Path(run_dir).parent)


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


def _write_lock(lock: Path, pid: int) -> bool:
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as fh:
        fh.write(_lock_line(pid))
    return True


def _lock_line(pid: int) -> str:
    return f"{pid} {process_start(pid) or 0} {utc_now()}\n"


def _claim(root: Path, wait_s: float = 3.0) -> Optional[IO[str]]:
    """The worker's exclusive lock on the runs folder, or None when another worker holds it.

    An flock, so the OS releases it when the worker dies, even by kill -9, and two workers starting
    at once cannot both win. It waits a little: a worker that is just leaving still holds it.
    """
    fh = open(root / FLOCK_NAME, "a+")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except OSError:
            if time.monotonic() >= deadline:
                fh.close()
                return None
            time.sleep(0.1)


def _announce(lock: Path) -> None:
    """Name this process as the worker (what `worker_pid` reads)."""
    write_text(lock, _lock_line(os.getpid()))


def _job_env(slots: List[str], all_slots: List[str]) -> Dict[str, str]:
    env = dict(os.environ)
    gpus = [s.split(":")[1] for s in slots if s.startswith("gpu:")]
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    else:  # each process of the job gets the cores of one slot
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // len(all_slots)))
    return env


class _Worker:
    """The worker's state between polls: its own jobs and the slots they hold."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: Dict[Path, subprocess.Popen] = {}
        self.ray = RayRuns()  # runs queued for a Ray cluster go there
        self.tidied: set = set()  # stopped runs whose leftovers this worker has cleared
        self.done = 0

    def busy(self) -> bool:
        """Whether a job it started (here or on Ray) has not ended yet."""
        return bool(self.running) or self.ray.busy()

    def reap(self) -> None:
        for run_dir, proc in list(self.running.items()):
            if proc.poll() is None:
                continue
            del self.running[run_dir]
            self.done += 1
            # Still queued: it could not even start (never loop on it); a run it found cancelled stays so.
            write_status(run_dir, "failed", expect=("queued",), error="the training process exited before starting")

    def busy_slots(self, found: Dict[Path, Dict[str, Any]]) -> set:
        """Slots held by this worker's jobs and by live jobs an earlier (killed) worker started."""
        busy = set()
        for run_dir, status in found.items():
            if run_dir in self.running or status.get("state") == "running":
                busy.update(status.get("slots") or [])
        return busy

    def auto_resume(self, found: Dict[Path, Dict[str, Any]]) -> None:
        for run_dir, status in found.items():
            if status.get("state") == "interrupted" and status_int(status, "auto_resumes") < MAX_AUTO_RESUMES:
                write_status(run_dir, "queued", expect=("interrupted",), requeued_at=utc_now(),
                             queued_ns=time.time_ns(), slots=None, auto_resumes=status_int(status, "auto_resumes") + 1)

    def start_ready(self, found: Dict[Path, Dict[str, Any]], all_slots: List[str]) -> None:
        free = [s for s in all_slots if s not in self.busy_slots(found)]
        queue = sorted((p for p, s in found.items() if s.get("state") == "queued" and p not in self.running
                        and (s.get("target") or LOCAL) == LOCAL), key=lambda p: queue_key(found[p], p))
        for run_dir in queue:
            try:
                wanted = max(1, read_config(run_dir).train.gpus)
            except ConfigError as e:  # a hand-edited config.json: fail the run, never the queue
                write_status(run_dir, "failed", expect=("queued",), finished_at=utc_now(),
                             error=f"config.json is unusable: {e}")
                continue
            if wanted > len(all_slots):
                write_status(run_dir, "failed", expect=("queued",), finished_at=utc_now(),
                             error=f"train.gpus={wanted}, but the worker has {len(all_slots)} slot(s) on this machine")
                continue
            if wanted > len(free):  # the head waits; later runs do not overtake it
                kind = "GPUs" if all_slots[0].startswith("gpu:") else "slots"
                waiting = f"waiting for {wanted} free {kind} ({len(free)} free)"
                if found[run_dir].get("waiting") != waiting:
                    write_status(run_dir, "queued", expect=("queued",), waiting=waiting)
                return
            if not write_status(run_dir, "queued", expect=("queued",), slots=free[:wanted], waiting=None):
                continue  # cancelled (or moved elsewhere) since the listing: not started
            slots, free = free[:wanted], free[wanted:]
            self.running[run_dir] = subprocess.Popen(train_command(run_dir), stdin=subprocess.DEVNULL,
                                                     env=_job_env(slots, all_slots))

    def tidy(self, found: Dict[Path, Dict[str, Any]]) -> None:
        """Clear what killed trainers left in stopped runs (temp files, the space reserve), once per run."""
        for run_dir, status in found.items():
            if status.get("state") in FINISHED_STATES and run_dir not in self.tidied and run_dir not in self.running:
                self.tidied.add(run_dir)
                try:
                    tidy_run(run_dir)
                except (OSError, ValueError):  # a folder that vanished or stopped being a run meanwhile
                    pass

    def poll(self) -> bool:
        """One round: reap, resume, start local jobs, steer Ray's; whether anything is running or queued."""
        self.reap()
        found = statuses(self.root)
        self.tidy(found)
        options = settings(self.root)
        if options.get("auto_resume"):
            self.auto_resume(found)
            found = statuses(self.root)
        if not options.get("paused"):
            self.start_ready(found, machine_slots(self.root))
        if self.ray.busy() or any(s.get("state") == "queued" and (s.get("target") or LOCAL) != LOCAL
                                  for s in found.values()):
            self.done += self.ray.poll(statuses(self.root), bool(options.get("paused")),
                                       options.get("ray_storage") or RAY_STORAGE[0])
        return self.busy() or any(s.get("state") == "queued" for s in found.values())


def run_worker(runs_dir: Optional[Path] = None, poll_s: float = 0.5, idle_exit_s: float = 5.0) -> int:
    """Train queued runs on the machine's slots until none is left for `idle_exit_s`; returns how many ran."""
    root = queue_root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK_NAME
    claim = _claim(root)
    if claim is None:
        return 0
    _announce(lock)
    worker, idle_since = _Worker(root), None
    try:
        while True:
            if worker.poll():
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= idle_exit_s:
                lock.unlink(missing_ok=True)
                time.sleep(poll_s)
                # A run submitted while this worker was leaving saw no worker: stay for it (a worker
                # started for it waits on the flock, then finds it held and leaves).
                if not queued_runs(root):
                    return worker.done
                _announce(lock)
                idle_since = None
            time.sleep(poll_s)
    finally:
        worker.ray.close()
        if lock.is_file() and lock.read_text().split()[:1] == [str(os.getpid())]:
            lock.unlink(missing_ok=True)
        claim.close()
