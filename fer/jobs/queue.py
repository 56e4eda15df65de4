"""The job queue: run folders in state `queued`, and one detached worker per runs folder that trains them.

Whatever queues a run (the dashboard, `fer train --queue`, `fer suite run`: see `fer.jobs.submit`), the worker
starts it as `fer train --run RUN` in its own process on free **slots**: one per visible GPU (the job
gets CUDA_VISIBLE_DEVICES pinned to its GPUs), or on a CPU-only machine `slots` CPU slots (each job's
processes get their share of the cores). A run with `train.gpus = k` waits until k slots are free and
trains as one DistributedDataParallel job on them. Order: priority (higher first), then queue time;
the head of the queue is never overtaken, so a large job is not starved. The queue can be paused,
runs moved up or down, and interrupted runs (whose process died) resumed by hand or automatically.
A run queued with a Ray target (status `target`, see fer.jobs.ray) is not trained here: the
worker submits it to that Ray cluster as a task, and the same queue order, pause and cancel apply.

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

from fer.core.files import write_json, write_text
from fer.jobs.machine import visible_gpus
from fer.jobs.ray import LOCAL, RayRuns, describe_target
from fer.runs.writer import request_cancel, write_status
from fer.runs.store import FINISHED_STATES, default_runs_dir, read_status
from fer.core.files import pid_alive, read_json, utc_now

LOCK_NAME = ".worker.lock"  # the worker's pid, for `worker_pid`
FLOCK_NAME = ".worker.flock"  # held (flock) by the one live worker
LOG_NAME = ".worker.log"
# {"slots": N (CPU slots), "paused": bool, "auto_resume": bool}: read at every poll, so changes apply live.
SETTINGS_NAME = ".worker.json"
MAX_AUTO_RESUMES = 3  # an interrupted run is resumed automatically at most this often


def _root(runs_dir: Optional[Path]) -> Path:
    return Path(runs_dir or default_runs_dir())


def _statuses(root: Path) -> Dict[Path, Dict[str, Any]]:
    return {p: read_status(p) for p in root.glob("*") if (p / "config.json").is_file()} if root.is_dir() else {}


def _queue_key(status: Dict[str, Any], path: Path) -> tuple:
    return -_int(status.get("priority")), _int(status.get("queued_ns")), path.name


def _int(value: Any) -> int:
    """A status number; a hand-edited or damaged value counts as 0 rather than stopping the queue."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def queued_runs(runs_dir: Optional[Path] = None) -> List[Path]:
    """Queued run folders in queue order: priority (higher first), then when each was queued (to the ns)."""
    statuses = _statuses(_root(runs_dir))
    queued = [p for p, status in statuses.items() if status.get("state") == "queued"]
    return sorted(queued, key=lambda p: _queue_key(statuses[p], p))


# --- settings ------------------------------------------------------------------------------------------------------

def settings(runs_dir: Optional[Path] = None) -> Dict[str, Any]:
    """The worker's settings for this runs folder."""
    return read_json(_root(runs_dir) / SETTINGS_NAME, {}) or {}


def _update_settings(runs_dir: Optional[Path], **changes: Any) -> None:
    root = _root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    write_json(root / SETTINGS_NAME, {**settings(root), **changes})


def set_worker_slots(runs_dir: Optional[Path], slots: int) -> None:
    """Run up to `slots` jobs at once on a CPU-only machine (on a GPU machine: one slot per GPU, at most `slots`)."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    _update_settings(runs_dir, slots=int(slots))


def set_paused(runs_dir: Optional[Path], paused: bool) -> None:
    """Pause the queue (running jobs go on; no new one starts) or let it go again."""
    _update_settings(runs_dir, paused=bool(paused))


def set_auto_resume(runs_dir: Optional[Path], enabled: bool) -> None:
    """Whether the worker queues interrupted runs again by itself."""
    _update_settings(runs_dir, auto_resume=bool(enabled))


def machine_slots(runs_dir: Optional[Path] = None) -> List[str]:
    """The worker's slots: "gpu:<id>" per visible GPU, else "cpu:<i>" (the setting, FER_SLOTS, or 1)."""
    chosen = settings(runs_dir).get("slots") or int(os.environ.get("FER_SLOTS") or 0) or None
    gpus = visible_gpus()
    if gpus:
        return [f"gpu:{g}" for g in gpus[:chosen or len(gpus)]]
    return [f"cpu:{i}" for i in range(max(1, chosen or 1))]


# --- the queue -----------------------------------------------------------------------------------------------------

def set_priority(run_dir: Path, priority: int) -> None:
    """A queued run's priority: higher runs start first (default 0)."""
    if read_status(run_dir).get("state") != "queued":
        raise ValueError(f"{Path(run_dir).name} is not queued")
    write_status(Path(run_dir), "queued", priority=int(priority))


def move(run_dir: Path, where: str) -> None:
    """Move a queued run "up", "down" or to the "top" of the queue."""
    run_dir = Path(run_dir)
    order = queued_runs(run_dir.parent)
    if run_dir not in order:
        raise ValueError(f"{run_dir.name} is not queued")
    i = order.index(run_dir)
    target = {"up": i - 1, "down": i + 1, "top": 0}[where]
    if target == i or not 0 <= target < len(order):
        return
    other = read_status(order[target])
    # Take the neighbour's place: its priority, and a queue time just before (or after) its own.
    nudge = -1 if target < i else 1
    write_status(run_dir, "queued", priority=int(other.get("priority") or 0),
                 queued_ns=int(other.get("queued_ns") or 0) + nudge)


RESUMABLE_STATES = ("cancelled", "interrupted", "failed", "pruned")


def resume(run_dir: Path, target: Optional[str] = None) -> None:
    """Queue a stopped run again (retry), on `target` or where it was headed before; it continues from last.pt."""
    state = read_status(run_dir).get("state")
    if state not in RESUMABLE_STATES:
        raise ValueError(f"{Path(run_dir).name} is {state}; only {', '.join(RESUMABLE_STATES)} runs resume")
    where = {} if target is None else {"target": target}
    write_status(Path(run_dir), "queued", requeued_at=utc_now(), queued_ns=time.time_ns(), slots=None, waiting=None,
                 **where)
    ensure_worker(Path(run_dir).parent)


def cancel(run_dir: Path) -> str:
    """Take a queued run off the queue, or ask a running one to stop after its batch; returns what happened."""
    if read_status(run_dir).get("state") == "queued":
        write_status(Path(run_dir), "cancelled", finished_at=utc_now(), waiting=None)
        return "cancelled (it was queued)"
    request_cancel(Path(run_dir))
    return "cancel requested; it stops after the current batch"


def describe_job(status: Dict[str, Any], paused: bool = False) -> str:
    """A job's state in words: queued, waiting for 2 free GPUs, running on GPU 2, ..."""
    state = status.get("state", "unknown")
    slots = status.get("slots") or []
    if state == "queued":
        if paused:
            return "queued (the queue is paused)"
        where = status.get("target") or LOCAL
        return status.get("waiting") or ("queued" if where == LOCAL else f"queued for {describe_target(where)}")
    target = status.get("target") or LOCAL
    if target != LOCAL and state == "running":
        return f"running on {describe_target(target)}" + (f" (node {status['host']})" if status.get("host") else "")
    if state == "running" and slots:
        kinds = {s.split(":")[0] for s in slots}
        ids = ", ".join(s.split(":")[1] for s in slots)
        where = ("GPU " if len(slots) == 1 else "GPUs ") if kinds == {"gpu"} else \
            ("CPU slot " if len(slots) == 1 else "CPU slots ")
        return f"running on {where}{ids}"
    return state


# --- the worker ----------------------------------------------------------------------------------------------------

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
    write_text(lock, f"{os.getpid()} {utc_now()}\n")


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
            if read_status(run_dir).get("state") == "queued":  # it could not even start: do not loop on it
                write_status(run_dir, "failed", error="the training process exited before starting")

    def busy_slots(self, statuses: Dict[Path, Dict[str, Any]]) -> set:
        """Slots held by this worker's jobs and by live jobs an earlier (killed) worker started."""
        busy = set()
        for run_dir, status in statuses.items():
            if run_dir in self.running or status.get("state") == "running":
                busy.update(status.get("slots") or [])
        return busy

    def auto_resume(self, statuses: Dict[Path, Dict[str, Any]]) -> None:
        for run_dir, status in statuses.items():
            if status.get("state") == "interrupted" and _int(status.get("auto_resumes")) < MAX_AUTO_RESUMES:
                write_status(run_dir, "queued", requeued_at=utc_now(), queued_ns=time.time_ns(), slots=None,
                             auto_resumes=_int(status.get("auto_resumes")) + 1)

    def start_ready(self, statuses: Dict[Path, Dict[str, Any]], all_slots: List[str]) -> None:
        free = [s for s in all_slots if s not in self.busy_slots(statuses)]
        queue = sorted((p for p, s in statuses.items() if s.get("state") == "queued" and p not in self.running
                        and (s.get("target") or LOCAL) == LOCAL), key=lambda p: _queue_key(statuses[p], p))
        for run_dir in queue:
            config = read_json(run_dir / "config.json", {})
            train = config.get("train") if isinstance(config, dict) else None
            wanted = max(1, _int(train.get("gpus") if isinstance(train, dict) else 1))
            if wanted > len(all_slots):
                write_status(run_dir, "failed", finished_at=utc_now(),
                             error=f"train.gpus={wanted}, but the worker has {len(all_slots)} slot(s) on this machine")
                continue
            if wanted > len(free):  # the head waits; later runs do not overtake it
                kind = "GPUs" if all_slots[0].startswith("gpu:") else "slots"
                waiting = f"waiting for {wanted} free {kind} ({len(free)} free)"
                if statuses[run_dir].get("waiting") != waiting:
                    write_status(run_dir, "queued", waiting=waiting)
                return
            slots, free = free[:wanted], free[wanted:]
            write_status(run_dir, "queued", slots=slots, waiting=None)  # the job keeps them in its status
            self.running[run_dir] = subprocess.Popen(
                [sys.executable, "-m", "fer", "train", "--run", str(run_dir), "--quiet"],
                stdin=subprocess.DEVNULL, env=_job_env(slots, all_slots))


def run_worker(runs_dir: Optional[Path] = None, poll_s: float = 0.5, idle_exit_s: float = 5.0) -> int:
    """Train queued runs on the machine's slots until none is left for `idle_exit_s`; returns how many ran."""
    root = _root(runs_dir)
    root.mkdir(parents=True, exist_ok=True)
    lock = root / LOCK_NAME
    claim = _claim(root)
    if claim is None:
        return 0
    _announce(lock)
    worker, idle_since = _Worker(root), None
    try:
        while True:
            worker.reap()
            statuses = _statuses(root)
            options = settings(root)
            if options.get("auto_resume"):
                worker.auto_resume(statuses)
                statuses = _statuses(root)
            if not options.get("paused"):
                worker.start_ready(statuses, machine_slots(root))
            if worker.ray.busy() or any(s.get("state") == "queued" and (s.get("target") or LOCAL) != LOCAL
                                        for s in statuses.values()):
                worker.done += worker.ray.poll(_statuses(root), _queue_key, bool(options.get("paused")))
            waiting = any(s.get("state") == "queued" for s in statuses.values())
            if worker.busy() or waiting:
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
