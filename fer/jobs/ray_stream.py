"""Streamed Ray runs: a cluster whose nodes share nothing with the runs folder but Ray itself.

The runs folder's worker (the Ray driver) stays the one writer of every run folder:
- it loads a run's faces once per data source and puts them in Ray's object store (`ray.put`);
- it sends the task a snapshot of the run folder (config, status and, on a resume, `last.pt`, `best.pt`,
  metrics and log), which the task lays out in a node-local scratch folder;
- the task stages the faces there (`fer.data.staged`), trains with `fer train --run SCRATCH` in a child
  process, and every half second yields what changed in the scratch folder (`FolderMirror`): appended
  lines of metrics, batch losses and the log, whole new files (checkpoints, evaluations, predictions),
  and the status. Ray streams those records to the driver as they are yielded (a generator task), and the
  driver writes them into the real run folder through `fer.runs.writer`;
- a cancel goes to the task through a small actor (`RunControl`): the task leaves a CANCEL request in its
  scratch folder, so the trainer stops after its batch and saves, exactly as a local run does.
While a task runs, the driver holds the run's training lock, so nothing on this machine trains the run
twice; if the driver dies, Ray ends its tasks with it and the run reads `interrupted` (its driver's pid
is gone), resumable from the last `last.pt` that reached the runs folder.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from fer.core.files import read_json, sha256_of
from fer.jobs.queue import train_command
from fer.runs.store import FINISHED_STATES, read_config, read_status
from fer.runs.writer import CANCEL_FILE, request_cancel, training_lock, write_mirrored, write_status

MIRROR_EVERY_S = 0.5  # how often the task looks for changes in its scratch folder
APPENDED = ("metrics.jsonl", "batches.jsonl", "train.log")  # files that only grow: sent as new bytes
UNFINISHED = ("queued", "running", "interrupted")
# Fields of the node's status copy that the driver keeps its own values of (the queue's, the folder's, its own).
NODE_ONLY_FIELDS = ("pid", "host", "updated_at", "format", "run_id", "target", "slots", "ray_storage", "created_at",
                    "queued_ns", "priority", "requeued_at", "auto_resumes", "node", "node_pid", "node_sha256",
                    "streamed_bytes", "stream_mismatch")
STAGED_NAME = "faces.npz"
log = logging.getLogger(__name__)


def run_files(folder: Path) -> Dict[str, Tuple[int, int, int]]:
    """Relative path -> (size, mtime, inode) of the files a run folder holds for its viewers (no hidden files)."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith(".") or name == CANCEL_FILE:
                continue
            path = Path(dirpath) / name
            try:
                st = path.stat()
            except OSError:  # replaced a moment ago: the next look finds the new one
                continue
            found[path.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return found


def file_hashes(folder: Path) -> Dict[str, str]:
    """SHA-256 of each model file and evaluation the folder holds (the status and growing files change)."""
    return {name: sha256_of(folder / name) for name in run_files(folder)
            if name not in APPENDED and name not in ("status.json", "config.json")}


def snapshot(run_dir: Path) -> Dict[str, bytes]:
    """The run folder's files as bytes: what a task needs to start or resume the run on any node."""
    return {name: (Path(run_dir) / name).read_bytes() for name in run_files(Path(run_dir))}


class FolderMirror:
    """What changed in a folder since the last look, as records for `apply_records`.

    Appended files travel as their new complete lines (with the offset they start at); one rewritten
    (a resumed run trims its metrics) travels whole from offset 0; any other file travels whole; the
    status travels as its fields, last, so a viewer never sees `completed` before the files it announces.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.seen = run_files(folder)  # the snapshot the driver already has
        # name -> (inode, bytes sent): appends go on in place; a rewrite (a new inode) travels whole
        self.offsets = {name: (self.seen[name][2], self.seen[name][0]) for name in APPENDED if name in self.seen}

    def changes(self) -> List[Dict[str, Any]]:
        """Records of everything new since the last call."""
        records, status = [], None
        for name, stat in run_files(self.folder).items():
            if self.seen.get(name) == stat:
                continue
            path = self.folder / name
            try:
                if name == "status.json":
                    status = read_json(path, None)
                elif name in APPENDED:
                    records.extend(self._appended(name, path, stat))
                    continue
                else:
                    records.append({"file": name, "data": path.read_bytes()})
            except OSError:  # replaced while read: sent at the next look
                continue
            self.seen[name] = stat
        if isinstance(status, dict):
            records.append({"status": status})
        return records

    def _appended(self, name: str, path: Path, stat: Tuple[int, int, int]) -> List[Dict[str, Any]]:
        inode, start = self.offsets.get(name, (stat[2], 0))
        if inode != stat[2] or stat[0] < start:  # rewritten (a resumed run trims its metrics): send it whole
            start = 0
        with open(path, "rb") as fh:
            fh.seek(start)
            data = fh.read(stat[0] - start)
        whole = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next look
        if len(whole) == len(data):
            self.seen[name] = stat
        if not whole and (stat[2], start) == self.offsets.get(name):
            return []
        self.offsets[name] = (stat[2], start + len(whole))
        return [{"file": name, "offset": start, "data": whole}]


def die_with_parent() -> None:
    """In the child: get SIGKILL when the Ray worker dies (Linux), as the run would on a dead node.

    Otherwise a worker killed by Ray (its memory monitor, a forced cancel) leaves an orphan training
    on resources Ray has already handed to someone else.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RunControl:
    """A Ray actor the driver creates: the runs it asked to stop, which their tasks look up."""

    def __init__(self) -> None:
        self.stopping: set = set()

    def cancel(self, run_id: str) -> None:
        self.stopping.add(run_id)

    def cancelled(self, run_id: str) -> bool:
        return run_id in self.stopping


def train_streamed(run_id: str, files: Dict[str, bytes], faces: Any, key: str, control: Any) -> Iterator[Dict]:
    """The Ray task (a generator): train the run in a scratch folder on this node, yielding its changes."""
    import ray

    from fer.data.staged import STAGED_DATA_ENV, save_staged

    node = f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
    scratch_root = Path(tempfile.mkdtemp(prefix="fer-ray-"))
    try:
        scratch = scratch_root / run_id
        for name, data in files.items():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            (scratch / name).write_bytes(data)
        if ray.get(control.cancelled.remote(run_id)):
            yield {"skipped": "cancelled", "node": node}
            return
        save_staged(faces, scratch_root / STAGED_NAME, key)
        del faces  # the object store keeps its copy; the trainer reads the staged file
        mirror = FolderMirror(scratch)
        env = dict(os.environ, **{STAGED_DATA_ENV: str(scratch_root / STAGED_NAME)})
        yield from _supervise(scratch, env, mirror, control, run_id, node)
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)


def _supervise(scratch: Path, env: Dict[str, str], mirror: FolderMirror, control: Any, run_id: str,
               node: str) -> Iterator[Dict]:
    import ray

    proc = subprocess.Popen(train_command(scratch), stdin=subprocess.DEVNULL, env=env, preexec_fn=die_with_parent)
    asked = False
    try:
        while proc.poll() is None:
            time.sleep(MIRROR_EVERY_S)
            if not asked and ray.get(control.cancelled.remote(run_id)):
                request_cancel(scratch)  # the trainer stops after its batch, saves, and says cancelled
                asked = True
            records = mirror.changes()
            if records:
                yield {"records": records, "node": node}
        yield {"records": mirror.changes(), "node": node, "returncode": proc.returncode,
               "sha256": file_hashes(scratch)}
    except BaseException:  # ray.cancel (KeyboardInterrupt) or the generator closed: stop the trainer
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise


def apply_records(run_dir: Path, records: List[Dict[str, Any]], node: str,
                  extra: Optional[Dict[str, Any]] = None) -> int:
    """Write a task's records into the run folder (as its one writer; `extra` goes into a status written);
    how many bytes they carried."""
    moved = 0
    for record in records:
        try:
            moved += _apply(run_dir, record, node, extra or {})
        except (ValueError, KeyError, TypeError, OSError) as e:  # one bad record never stops the others
            log.warning("%s: a record from %s was not written: %s", run_dir.name, node, e)
    return moved


def _apply(run_dir: Path, record: Dict[str, Any], node: str, extra: Dict[str, Any]) -> int:
    if "status" in record:
        fields = {k: v for k, v in record["status"].items() if k not in NODE_ONLY_FIELDS}
        state = fields.pop("state", None)
        if state and state != "queued":  # the node's copy starts queued; the driver's already is
            write_status(run_dir, state, expect=UNFINISHED, **{**fields, **extra, "node": node,
                                                               "node_pid": record["status"].get("pid")})
        return len(json.dumps(record["status"]))
    write_mirrored(run_dir, record["file"], record["data"], record.get("offset"))
    return len(record["data"])


class StreamedRuns:
    """The driver's side of streamed runs: faces in the object store, tasks, cancels, records written back."""

    def __init__(self, ray: Any) -> None:
        self.ray = ray
        self.control = ray.remote(num_cpus=0)(RunControl).remote()
        # No retries: a retry would train the run twice; a lost task leaves it interrupted and resumable.
        self.task = ray.remote(max_retries=0, num_returns="streaming")(train_streamed)
        self.faces: Dict[str, Any] = {}  # staged key -> ObjectRef of the FaceData
        self.locks: Dict[Path, ExitStack] = {}  # the training lock of each run a node trains
        self.moved: Dict[Path, int] = {}
        self.held: Dict[Path, Tuple[Dict[str, Any], str]] = {}  # a finishing status, written once the task ends

    def submit(self, run_dir: Path, need: Dict[str, float]) -> Any:
        """Start the run's task; its ObjectRefGenerator."""
        from fer.data.ferplus import load_run_data
        from fer.data.staged import staged_key

        cfg = read_config(run_dir)
        key = staged_key(cfg)
        if key not in self.faces:  # one copy per data source, shared by every run that uses it
            self.faces[key] = self.ray.put(load_run_data(cfg))
        with ExitStack() as lock:
            lock.enter_context(training_lock(run_dir))  # RunBusy when something here trains it already
            stream = self.task.options(**need).remote(run_dir.name, snapshot(run_dir), self.faces[key], key,
                                                      self.control)
            self.locks[run_dir] = lock.pop_all()  # held until `release`; a refused submit lets go at once
        self.moved[run_dir] = 0
        return stream

    def cancel(self, run_dir: Path) -> None:
        """Ask the run's task to stop after its batch."""
        self.control.cancel.remote(run_dir.name)

    def pump(self, run_dir: Path, stream: Any) -> Optional[Dict[str, Any]]:
        """Write the records that have arrived; the task's last word once it has ended, else None.

        A status that finishes the run is held back until the task has ended (`release`), so a run never
        reads completed before its files are all here and checked. A task that died (its node lost, its
        worker killed) raises its Ray error here.
        """
        while True:
            ready, _ = self.ray.wait([stream], timeout=0)
            if not ready:
                return None
            try:
                ref = next(stream)
            except StopIteration:
                return {}
            message = self.ray.get(ref)
            node, records = message.get("node", "?"), message.get("records", [])
            self.moved[run_dir] += apply_records(run_dir, [r for r in records if "status" not in r], node)
            statuses = [r for r in records if "status" in r]
            if statuses and statuses[-1]["status"].get("state") in FINISHED_STATES:
                self.held[run_dir] = (statuses[-1], node)
            elif statuses:
                self.moved[run_dir] += apply_records(run_dir, statuses[-1:], node)
            if "returncode" in message or "skipped" in message:
                return message

    def release(self, run_dir: Path, last: Dict[str, Any]) -> None:
        """Once the run's task has ended: check the node's hashes against the files here, write the run's
        final status, then let go of its training lock."""
        lock = self.locks.pop(run_dir, None)
        moved = self.moved.pop(run_dir, 0)
        fields: Dict[str, Any] = {"streamed_bytes": moved}
        if last.get("sha256"):
            fields["node_sha256"] = last["sha256"]
            differ = [name for name, digest in last["sha256"].items()
                      if not (run_dir / name).is_file() or sha256_of(run_dir / name) != digest]
            if differ:  # never expected: a record lost on the way
                log.warning("%s: %s differ from the node's files", run_dir.name, ", ".join(differ))
                fields["stream_mismatch"] = differ
        held = self.held.pop(run_dir, None)
        if held is not None:
            apply_records(run_dir, [held[0]], held[1], fields)
        elif (state := read_status(run_dir).get("state")) in UNFINISHED:
            write_status(run_dir, state, expect=(state,), **fields)
        if lock is not None:
            lock.close()
        log.info("%s: its task ended; %s bytes of records came back", run_dir.name, f"{moved:,}")

