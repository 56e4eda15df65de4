"""The job queue's state: run folders in state `queued`, their order, where each trains, and the
queue's settings. The worker process that trains them lives in `fer.jobs.worker`.

Whatever queues a run (the dashboard, `fer train --queue`, `fer suite run`: see `fer.jobs.submit`),
it waits here until the runs folder's worker starts it with `train_command`. Order: priority
(higher first), then queue time; the head of the queue is never overtaken, so a large job is not
starved. The queue can be paused, runs moved up or down, and stopped runs queued again.

A run's `target` (in its status) says where it trains: "local" (this machine's worker), or a Ray
cluster: "ray" (a local Ray instance), "ray:auto" (the cluster this machine joined) or
"ray:ADDRESS" (see `fer.jobs.ray`). This module imports no PyTorch, so `fer queue` answers at once.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from fer.core.files import read_json, utc_now, write_json
from fer.runs.store import RESUMABLE_STATES, default_runs_dir, read_status, run_folders, status_int
from fer.runs.writer import request_cancel, write_status

LOCAL = "local"
RAY_STORAGE = ("streamed", "shared")  # how Ray runs' files travel (fer.jobs.ray); the first is the default
# {"slots": N (CPU slots), "paused": bool, "auto_resume": bool, "ray_storage": "streamed"|"shared"}: read at every
# poll, so changes apply live (ray_storage to the Ray runs submitted from then on).
SETTINGS_NAME = ".worker.json"


def queue_root(runs_dir: Optional[Path]) -> Path:
    """The runs folder a queue call works on (default: FER_RUNS_DIR, else checkpoints/)."""
    return Path(runs_dir or default_runs_dir())


def statuses(root: Path) -> Dict[Path, Dict[str, Any]]:
    """Every run folder's status, read once."""
    return {p: read_status(p) for p in run_folders(root)}


def queue_key(status: Dict[str, Any], path: Path) -> tuple:
    """Sort key of a queued run: priority (higher first), then when it was queued (to the ns)."""
    return -status_int(status, "priority"), status_int(status, "queued_ns"), path.name


def queued_runs(runs_dir: Optional[Path] = None) -> List[Path]:
    """Queued run folders in queue order."""
    found = statuses(queue_root(runs_dir))
    queued = [p for p, status in found.items() if status.get("state") == "queued"]
    return sorted(queued, key=lambda p: queue_key(found[p], p))


def train_command(run_dir: Path) -> List[str]:
    """How a queued run is trained, by the local worker and by a Ray task alike."""
    return [sys.executable, "-m", "fer", "train", "--run", str(run_dir), "--quiet"]


# --- targets -------------------------------------------------------------------------------------------------------

def ray_target(address: Optional[str]) -> str:
    """The target for `--ray [ADDRESS]`: "ray" (a local Ray instance), "ray:auto" or "ray:ADDRESS"."""
    address = (address or "").strip()
    return f"ray:{address}" if address else "ray"


def ray_address(target: str) -> Optional[str]:
    """The Ray address of a target ("" for a local instance), or None when it is not a Ray target."""
    target = target or LOCAL
    if target == "ray":
        return ""
    return target[len("ray:"):] if target.startswith("ray:") else None


def describe_target(target: Optional[str]) -> str:
    """A target in words: "this machine", "a local Ray instance", "the Ray cluster at …"."""
    address = ray_address(target or LOCAL)
    if address is None:
        return "this machine"
    return "a local Ray instance" if not address else \
        ("the Ray cluster this machine belongs to" if address == "auto" else f"the Ray cluster at {address}")


# --- settings ------------------------------------------------------------------------------------------------------

def settings(runs_dir: Optional[Path] = None) -> Dict[str, Any]:
    """The worker's settings for this runs folder."""
    return read_json(queue_root(runs_dir) / SETTINGS_NAME, {}) or {}


def _update_settings(runs_dir: Optional[Path], **changes: Any) -> None:
    root = queue_root(runs_dir)
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


def set_ray_storage(runs_dir: Optional[Path], mode: str) -> None:
    """How Ray runs reach the runs folder: "streamed" (nothing shared but Ray) or "shared" (a shared filesystem)."""
    if mode not in RAY_STORAGE:
        raise ValueError(f"ray storage is one of {', '.join(RAY_STORAGE)}, not {mode[:40]!r}")
    _update_settings(runs_dir, ray_storage=mode)


# --- changing the queue --------------------------------------------------------------------------------------------

def set_priority(run_dir: Path, priority: int) -> None:
    """A queued run's priority: higher runs start first (default 0)."""
    if read_status(run_dir).get("state") != "queued":
        raise ValueError(f"{Path(run_dir).name} is not queued")
    if not write_status(Path(run_dir), "queued", expect=("queued",), priority=int(priority)):
        raise ValueError(f"{Path(run_dir).name} is not queued")


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
    write_status(run_dir, "queued", expect=("queued",), priority=status_int(other, "priority"),
                 queued_ns=status_int(other, "queued_ns") + nudge)


def requeue(run_dir: Path, target: Optional[str] = None) -> None:
    """Queue a stopped run again, on `target` or where it was headed before (it continues from last.pt)."""
    state = read_status(run_dir).get("state")
    if state not in RESUMABLE_STATES:
        raise ValueError(f"{Path(run_dir).name} is {state}; only {', '.join(RESUMABLE_STATES)} runs resume")
    where = {} if target is None else {"target": target}
    if not write_status(Path(run_dir), "queued", expect=RESUMABLE_STATES, requeued_at=utc_now(),
                        queued_ns=time.time_ns(), slots=None, waiting=None, **where):
        raise ValueError(f"{Path(run_dir).name} changed state meanwhile; look again before resuming it")


def cancel(run_dir: Path) -> str:
    """Take a queued run off the queue, or ask a running one to stop after its batch; returns what happened."""
    # Compare-and-set: if the worker's trainer claimed the run a moment ago, this is a stop request instead.
    if write_status(Path(run_dir), "cancelled", expect=("queued",), finished_at=utc_now(), waiting=None):
        return "cancelled (it was queued)"
    request_cancel(Path(run_dir))
    return "cancel requested; it stops after the current batch"


def describe_job(status: Dict[str, Any], paused: bool = False) -> str:
    """A job's state in words: queued, waiting for 2 free GPUs, running on GPU 2, ..."""
    state = status.get("state", "unknown")
    slots = status.get("slots") or []
    target = status.get("target") or LOCAL
    if state == "queued":
        if paused:
            return "queued (the queue is paused)"
        return status.get("waiting") or ("queued" if target == LOCAL else f"queued for {describe_target(target)}")
    if target != LOCAL and state == "running":
        node = status.get("node") or status.get("host")  # a streamed run's node; a shared one's trainer host
        return f"running on {describe_target(target)}" + (f" (node {node})" if node else "")
    if state == "running" and slots:
        kinds = {s.split(":")[0] for s in slots}
        ids = ", ".join(s.split(":")[1] for s in slots)
        where = ("GPU " if len(slots) == 1 else "GPUs ") if kinds == {"gpu"} else \
            ("CPU slot " if len(slots) == 1 else "CPU slots ")
        return f"running on {where}{ids}"
    return state
