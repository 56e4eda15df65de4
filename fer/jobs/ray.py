"""Runs on a Ray cluster: the queue's worker hands each Ray-targeted run to Ray as a task.

A run queued with a Ray target (`fer suite run --ray`, `fer sweep --ray`, the Train page) sits in the
one queue like any other. The runs folder's worker connects to Ray as a driver and submits it as a
task on whichever node Ray picks, with the run's GPUs (or CPU cores) reserved. How the run's files
travel is the runs folder's `ray_storage` setting (`fer queue ray-storage`), stored in each run's status:
- "streamed" (the default): the nodes need nothing but Ray and fer-studio. The faces go through Ray's
  object store and the task streams every record back to the worker, which writes the run folder
  (`fer.jobs.ray_stream`);
- "shared": the task runs `fer train --run RUN` on the run folder itself, so the runs folder and the
  data must be at the same path on every node (a shared filesystem); fewer copies.
Either way the leaderboard and curves update live as for local runs.

Targets, as stored in a run's status (`target`): "ray" starts a local Ray instance in the worker,
"ray:auto" joins the cluster this machine belongs to (`ray start`), "ray:ADDRESS" a given head
("10.0.0.5:6379", or a Ray Client "ray://head:10001"). Ray is an optional extra: nothing here
imports it until a Ray run is dispatched.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from fer.config import ConfigError, RunConfig
from fer.core.errors import UserError
from fer.core.extras import require
from fer.core.files import read_json, utc_now
from fer.jobs.queue import LOCAL, RAY_STORAGE, describe_target, queue_key, ray_address, train_command
from fer.jobs.ray_stream import StreamedRuns, die_with_parent
from fer.runs.store import FINISHED_STATES, read_config, read_status
from fer.runs.writer import CANCEL_FILE, lock_held, write_status

CONNECT_TIMEOUT_S = 120.0  # joining a cluster that does not answer by then fails its runs
UNFINISHED = ("queued", "running", "interrupted")  # what a task's end may still overwrite (a dead trainer reads interrupted)
SETTLE_GRACE_S = 30.0  # how long a dead task's training process may take to let go of its run
log = logging.getLogger(__name__)


class RayUnavailable(UserError):
    """Ray is not installed, or its cluster cannot be reached."""


def require_ray():
    """The `ray` module, or RayUnavailable saying how to install it."""
    return require("ray", "ray", "running on a Ray cluster needs Ray", RayUnavailable)


def task_resources(cfg: RunConfig, cluster: Dict[str, float]) -> Dict[str, float]:
    """What a run's task asks Ray for: its GPUs where the cluster has some, else CPU cores.

    One core for the training process plus one per data-loader worker; a multi-process (DDP) run on
    a CPU-only cluster needs that for each of its `train.gpus` processes.
    """
    processes = max(1, cfg.train.gpus)
    cores = 1 + max(0, cfg.data.num_workers)
    if cluster.get("GPU", 0) >= 1:
        return {"num_gpus": processes, "num_cpus": cores}
    return {"num_cpus": cores * processes}


def _fits(need: Dict[str, float], held: List[Dict[str, float]], cluster: Dict[str, float]) -> bool:
    """Whether the cluster has room for `need` beside the tasks already submitted."""
    names = {"num_gpus": "GPU", "num_cpus": "CPU"}
    return all(sum(h.get(k, 0) for h in held) + v <= cluster.get(names[k], 0) for k, v in need.items())


def train_on_node(run_dir: str) -> Dict[str, Any]:
    """The Ray task: `fer train --run RUN` in a child process on this node; a Ray cancel stops it cleanly.

    A child process (not `train()` here) so each run gets a fresh CUDA context and frees all of its
    memory, and so the SIGTERM of a cancel reaches a process that saves and marks itself cancelled.
    """
    state = read_status(Path(run_dir)).get("state")
    if state != "queued":  # cancelled (or started elsewhere) while it waited for resources
        return {"skipped": state, "node": socket.gethostname()}
    proc = subprocess.Popen(train_command(Path(run_dir)), stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        return {"returncode": proc.wait(), "node": socket.gethostname()}
    except BaseException:  # ray.cancel raises KeyboardInterrupt here
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise


class RayDispatcher:
    """The worker's link to one Ray cluster: submits runs as tasks, cancels them, and sees them end."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.ray = require_ray()
        address = ray_address(target)
        try:
            if self.ray.is_initialized():  # a connection given up on earlier may have come through since
                self.ray.shutdown()
            # The worker is a long-lived driver: Ray's own log lines go to its log, not to the runs. "local"
            # starts a fresh instance even where `ray start` left a cluster behind (ray:auto joins that one).
            self.ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                          logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise RayUnavailable(f"cannot reach {describe_target(target)}: {e}") from None
        self.remote = self.ray.remote(max_retries=0)(train_on_node)  # a retry would train a run twice
        self.streams: Optional[StreamedRuns] = None  # made with the first streamed run
        self.tasks: Dict[Path, Any] = {}  # run folder -> ObjectRef (shared) or ObjectRefGenerator (streamed)
        self.needs: Dict[Path, Dict[str, float]] = {}
        self.cancelled: set = set()
        # Tasks gone while their `fer train` still held the run's lock: the child dies with its Ray
        # worker a moment later, so its end is written once the lock drops (or the grace runs out).
        self.settling: Dict[Path, Tuple[Dict[str, Any], Optional[str], bool, float]] = {}

    def cluster(self) -> Dict[str, float]:
        """The cluster's total resources (CPU, GPU, …)."""
        return self.ray.cluster_resources()

    def start_ready(self, queue: List[Path], statuses: Dict[Path, Dict[str, Any]], storage: str = RAY_STORAGE[0]) -> None:
        """Submit queued runs, in queue order, while the cluster has room for them; the head waits for room."""
        cluster = self.cluster()
        for run_dir in queue:
            if run_dir in self.tasks:
                continue
            try:
                need = task_resources(read_config(run_dir), cluster)
            except ConfigError as e:  # a hand-edited config.json: fail the run, never the queue
                write_status(run_dir, "failed", expect=("queued",), finished_at=utc_now(),
                             error=f"config.json is unusable: {e}")
                continue
            if not _fits(need, [], cluster):
                write_status(run_dir, "failed", expect=("queued",), finished_at=utc_now(),
                             error=f"it needs {need} but {describe_target(self.target)} has {cluster}")
                continue
            if not _fits(need, list(self.needs.values()), cluster):
                waiting = f"waiting for room on {describe_target(self.target)}"
                if statuses[run_dir].get("waiting") != waiting:
                    write_status(run_dir, "queued", expect=("queued",), waiting=waiting)
                return
            if not write_status(run_dir, "queued", expect=("queued",), slots=None, ray_storage=storage,
                                waiting=f"submitted to {describe_target(self.target)}"):
                continue  # cancelled since the listing
            self._submit(run_dir, need, storage)

    def _submit(self, run_dir: Path, need: Dict[str, float], storage: str) -> None:
        if storage == "shared":
            self.tasks[run_dir] = self.remote.options(**need).remote(str(run_dir))
            self.needs[run_dir] = need
            return
        try:
            if self.streams is None:
                self.streams = StreamedRuns(self.ray)
            self.tasks[run_dir] = self.streams.submit(run_dir, need)
            self.needs[run_dir] = need
        except Exception as e:  # noqa: BLE001 - its data, its lock or Ray refused: the run fails saying why
            write_status(run_dir, "failed", expect=("queued",), finished_at=utc_now(), waiting=None,
                         error=f"it could not be sent to {describe_target(self.target)}: {type(e).__name__}: "
                               f"{' '.join(str(e).split())[:300]}")

    def cancel_requested(self, statuses: Dict[Path, Dict[str, Any]]) -> None:
        """Cancel the Ray task of a run taken off the queue or asked to stop (CANCEL file)."""
        for run_dir, ref in self.tasks.items():
            if run_dir in self.cancelled:
                continue
            state = statuses.get(run_dir, {}).get("state")
            if state == "cancelled" or (run_dir / CANCEL_FILE).exists():
                if self._streamed(run_dir):
                    self.streams.cancel(run_dir)  # the task leaves a CANCEL request beside its trainer
                else:
                    self.ray.cancel(ref)  # a running task SIGTERMs its `fer train`, which saves and stops
                self.cancelled.add(run_dir)

    def reap(self) -> int:
        """Collect finished tasks; a task lost with its node leaves its run `interrupted`. How many ended."""
        for run_dir, (result, error, cancelled, until) in list(self.settling.items()):
            if not lock_held(run_dir) or time.monotonic() > until:
                del self.settling[run_dir]
                self._settle(run_dir, result, error, cancelled)
        ended = self._reap_streamed()
        shared = {r: ref for r, ref in self.tasks.items() if not self._streamed(r)}
        if not shared:
            return ended
        refs = list(shared.values())
        done, _ = self.ray.wait(refs, num_returns=len(refs), timeout=0)
        for run_dir in [r for r, ref in shared.items() if ref in done]:
            ref = self.tasks.pop(run_dir)
            self.needs.pop(run_dir, None)
            ended += 1
            try:
                result = self.ray.get(ref)
                error = None
            except self.ray.exceptions.TaskCancelledError:
                result, error = {}, None
            except self.ray.exceptions.RayError as e:
                result, error = {}, f"the Ray task died ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
            if lock_held(run_dir) and error:
                self.settling[run_dir] = (result, error, run_dir in self.cancelled, time.monotonic() + SETTLE_GRACE_S)
            else:
                self._settle(run_dir, result, error, cancelled=run_dir in self.cancelled)
            self.cancelled.discard(run_dir)
        return ended

    def _streamed(self, run_dir: Path) -> bool:
        """Whether the run's task is a streamed one (its driver side holds the run's training lock)."""
        return self.streams is not None and run_dir in self.streams.locks

    def _reap_streamed(self) -> int:
        """Write what streamed tasks have sent; settle those that ended. How many ended."""
        ended = 0
        for run_dir in [r for r in self.tasks if self._streamed(r)]:
            error = None
            try:
                last = self.streams.pump(run_dir, self.tasks[run_dir])
            except self.ray.exceptions.TaskCancelledError:
                last = {}
            except self.ray.exceptions.RayError as e:
                last, error = {}, f"the Ray task died ({type(e).__name__}: {' '.join(str(e).split())[:300]})"
            if last is None:
                continue
            del self.tasks[run_dir]
            self.needs.pop(run_dir, None)
            self.streams.release(run_dir, last)
            self._settle(run_dir, last, error, cancelled=run_dir in self.cancelled)
            self.cancelled.discard(run_dir)
            ended += 1
        return ended

    def _settle(self, run_dir: Path, result: Dict[str, Any], error: Optional[str], cancelled: bool) -> None:
        """The run's state once its task is gone, where the training process could not write it."""
        status = read_json(run_dir / "status.json", {})
        state = status.get("state") if isinstance(status, dict) else None
        if state in FINISHED_STATES or lock_held(run_dir):  # it wrote its own end, or it still trains
            return
        if cancelled:  # cancelled before its process got going
            write_status(run_dir, "cancelled", expect=UNFINISHED, finished_at=utc_now(), waiting=None)
        elif error:  # the node (or its worker process) died under the run: resumable anywhere
            write_status(run_dir, "interrupted", expect=UNFINISHED, finished_at=utc_now(), error=error, waiting=None)
        elif state == "queued":
            write_status(run_dir, "failed", expect=UNFINISHED, finished_at=utc_now(), waiting=None,
                         error=f"the training process exited before starting (exit code {result.get('returncode')})")
        elif state == "running":  # exited without a last word (killed): as a dead local process reads
            write_status(run_dir, "interrupted", expect=UNFINISHED, finished_at=utc_now(), waiting=None,
                         error=f"the training process on {result.get('node', '?')} ended without finishing")

    def shutdown(self) -> None:
        """Leave the cluster (a local Ray instance stops with it)."""
        self.ray.shutdown()


class _Connection:
    """Joining a Ray cluster on a thread of its own: the worker's loop never waits on the network.

    The thread lives as long as the connection: Ray starts a local instance's processes with a
    parent-death signal, which the kernel sends when the *thread* that started them ends.
    """

    def __init__(self, target: str) -> None:
        self.target, self.started = target, time.monotonic()
        self.dispatcher: Optional[RayDispatcher] = None
        self.error: Optional[str] = None
        self.tried, self.released = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._connect, name=f"ray-connect {target}", daemon=True)
        self.thread.start()

    def _connect(self) -> None:
        try:
            self.dispatcher = RayDispatcher(self.target)
        except Exception as e:  # noqa: BLE001 - any failure to join becomes the runs' error, in one line
            self.error = str(e) if isinstance(e, RayUnavailable) else \
                f"cannot reach {describe_target(self.target)}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
        self.tried.set()
        if self.dispatcher is not None:
            self.released.wait()  # keeps a local instance's processes alive until the worker leaves

    def waited_s(self) -> float:
        """How long the connection has been tried."""
        return time.monotonic() - self.started

    def close(self) -> None:
        """Leave the cluster, then let the thread end."""
        if self.dispatcher is not None:
            self.dispatcher.shutdown()
        self.released.set()


class RayRuns:
    """The queue worker's Ray side: it joins a cluster once a run for one is queued, and leaves when idle.

    The join happens on a thread (`_Connection`) with a time limit, `FER_RAY_CONNECT_TIMEOUT_S` (default
    120 s): meanwhile local jobs keep starting, and the waiting runs' job cards say what they wait for.
    """

    def __init__(self) -> None:
        self.dispatcher: Optional[RayDispatcher] = None
        self.connecting: Optional[_Connection] = None  # a join under way
        self.connection: Optional[_Connection] = None  # the joined cluster's
        self.timeout_s = float(os.environ.get("FER_RAY_CONNECT_TIMEOUT_S") or CONNECT_TIMEOUT_S)

    def busy(self) -> bool:
        """Whether a submitted task has not ended yet."""
        return self.dispatcher is not None and bool(self.dispatcher.tasks or self.dispatcher.settling)

    def poll(self, statuses: Dict[Path, Dict[str, Any]], paused: bool, storage: str = RAY_STORAGE[0]) -> int:
        """Cancel and collect tasks, then hand queued Ray runs (in queue order) to their cluster; how many ended."""
        ended = 0
        if self.dispatcher is not None:
            self.dispatcher.cancel_requested(statuses)
            ended = self.dispatcher.reap()
        queue = sorted((p for p, s in statuses.items() if s.get("state") == "queued"
                        and (s.get("target") or LOCAL) != LOCAL), key=lambda p: queue_key(statuses[p], p))
        if paused or not queue:
            return ended
        if self.dispatcher is None and not self._connected(queue, statuses):
            return ended
        # One driver joins one cluster at a time: runs for another wait until this one's tasks are done.
        mine = [p for p in queue if statuses[p]["target"] == self.dispatcher.target]
        _say_waiting([p for p in queue if statuses[p]["target"] != self.dispatcher.target], statuses,
                     f"waiting: the worker is using {describe_target(self.dispatcher.target)}")
        self.dispatcher.start_ready(mine, statuses, storage)
        if not self.dispatcher.tasks and not self.dispatcher.settling and not mine:
            self.close()
        return ended

    def _connected(self, queue: List[Path], statuses: Dict[Path, Dict[str, Any]]) -> bool:
        """Whether the dispatcher for the head's cluster is ready; starts joining it, or gives up, otherwise."""
        target = statuses[queue[0]]["target"]
        if self.connecting is None or self.connecting.target != target:
            self.connecting = _Connection(target)
        theirs = [p for p in queue if statuses[p]["target"] == target]
        connection = self.connecting
        if not connection.tried.is_set() and connection.waited_s() < self.timeout_s:
            _say_waiting(theirs, statuses, f"connecting to {describe_target(target)} "
                                           f"({int(connection.waited_s() // 5 * 5)} s of at most {self.timeout_s:.0f} s)")
            return False
        self.connecting = None
        if not connection.tried.is_set() or connection.dispatcher is None:  # its runs fail saying why
            error = connection.error or (f"cannot reach {describe_target(target)}: no answer within "
                                         f"{self.timeout_s:.0f} s")
            for run_dir in theirs:
                write_status(run_dir, "failed", expect=("queued",), finished_at=utc_now(), error=error, waiting=None)
            return False
        self.dispatcher, self.connection = connection.dispatcher, connection
        return True

    def close(self) -> None:
        """Leave the cluster (a local Ray instance stops with it)."""
        if self.connection is not None:
            self.connection.close()
        self.dispatcher = self.connection = None


def _say_waiting(runs: List[Path], statuses: Dict[Path, Dict[str, Any]], waiting: str) -> None:
    """Put why they wait on the runs' job cards (written only when it changes)."""
    for run_dir in runs:
        if statuses[run_dir].get("waiting") != waiting:
            write_status(run_dir, "queued", expect=("queued",), waiting=waiting)
