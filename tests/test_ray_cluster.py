"""A real two-node Ray cluster on this machine whose worker node cannot see the runs folder or the data.

The head (`ray start --head`, no CPUs, so no task runs there) sits beside the runs folder's worker, the Ray
driver. The second node runs inside its own mount namespace (`unshare --mount`) with empty tmpfs mounted
over the runs folder's and the data's parent folders, so a task that touched either path would fail. The
runs are streamed (the default `ray_storage`): faces through the object store, records back to the driver.
"""
from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import psutil
import pytest

from fer.config import load_config
from fer.jobs.queue import ray_target
from fer.jobs.submit import submit_all
from fer.jobs.worker import wait
from fer.runs.checkpoint import load_checkpoint
from fer.runs.store import list_runs, read_metrics, read_status
from fer.training.fit import train
from fer.training.validate import check_config

pytest.importorskip("ray")
RAY = str(Path(sys.executable).with_name("ray"))
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0,
                                                    reason="needs unshare --mount (root)")]
# The head declares a lost node dead within seconds rather than Ray's default half minute. The cluster lives
# on loopback addresses for the length of a test, so it opts out of Ray's token authentication.
CLUSTER_ENV = {"RAY_AUTH_MODE": "disabled"}
FAST_HEALTH = {**CLUSTER_ENV, "RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4",
               "RAY_health_check_initial_delay_ms": "1000"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TwoNodeCluster:
    """A head on 127.0.0.1 and a worker node on 127.0.0.2 that sees none of `hidden` (each an empty tmpfs)."""

    def __init__(self, hidden: List[Path], must_not_see: List[Path], log_dir: Path) -> None:
        self.hidden, self.must_not_see, self.log_dir = hidden, must_not_see, log_dir
        self.address = f"127.0.0.1:{_free_port()}"
        self.head = self._start("head", [RAY, "start", "--head", f"--port={self.address.split(':')[1]}",
                                         "--num-cpus=0", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
                                         "--disable-usage-stats", "--block"], env=FAST_HEALTH)
        self.node: Optional[subprocess.Popen] = None
        try:
            deadline = time.monotonic() + 120
            while "Active:" not in self.status():
                assert self.head.poll() is None and time.monotonic() < deadline, \
                    (self.log_dir / "head.log").read_text()[-3000:]
                time.sleep(1)
            self.start_node()
        except BaseException:  # a cluster that did not come up is stopped here: no fixture teardown follows
            self.close()
            raise

    def _start(self, name: str, command: List[str], env: Optional[dict] = None) -> subprocess.Popen:
        log = open(self.log_dir / f"{name}.log", "ab")
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **(env or {})})

    def start_node(self) -> None:
        """(Re)start the worker node in a mount namespace of its own, and wait until the head counts its CPUs."""
        hide = " && ".join(f"mount -t tmpfs fer-hidden {shlex.quote(str(p))}" for p in self.hidden)
        prove = " && ".join(f"test ! -e {shlex.quote(str(p))}" for p in self.must_not_see)
        join = shlex.join([RAY, "start", f"--address={self.address}", "--num-cpus=2", "--node-ip-address=127.0.0.2",
                           "--disable-usage-stats", "--block"])
        self.node = self._start("node", ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                         f"{hide} && {prove} && exec {join}"], env=CLUSTER_ENV)
        deadline = time.monotonic() + 120
        while self.active_nodes() < 2 or "/2.0 CPU" not in self.status():
            assert self.node.poll() is None, (self.log_dir / "node.log").read_text()[-3000:]
            assert time.monotonic() < deadline, self.status() + (self.log_dir / "node.log").read_text()[-3000:]
            time.sleep(1)

    def active_nodes(self) -> int:
        """How many nodes the head counts as alive (`ray status`: the lines under "Active:")."""
        text = self.status()
        if "Active:" not in text:
            return 0
        active = text.split("Active:", 1)[1].split("Pending:", 1)[0]
        return sum(1 for line in active.splitlines() if "node_" in line)

    def status(self) -> str:
        done = subprocess.run([RAY, "status", f"--address={self.address}"], capture_output=True, text=True,
                              env={**os.environ, **CLUSTER_ENV})
        return done.stdout

    def kill_node_raylet(self) -> None:
        """kill -9 of the worker node's raylet: the node is lost with everything running on it."""
        raylets = [p for p in psutil.Process(self.node.pid).children(recursive=True) if p.name() == "raylet"]
        assert raylets, "the worker node has no raylet"
        for raylet in raylets:
            raylet.kill()
        self.stop(self.node)
        deadline = time.monotonic() + 60
        while self.active_nodes() > 1:  # the head has noticed
            assert time.monotonic() < deadline, self.status()
            time.sleep(0.5)

    @staticmethod
    def stop(proc: Optional[subprocess.Popen]) -> None:
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                return
            try:
                proc.wait(timeout=10)
                time.sleep(1)  # the rest of its process group goes with the same signal
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        self.stop(self.node)
        self.stop(self.head)
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # `ray start` names its head here
        if current.is_file() and current.read_text().strip().endswith(":" + self.address.split(":")[1]):
            current.unlink()


@pytest.fixture
def cluster(small_folder, tmp_path, monkeypatch):
    """The cluster, with the runs folder (tmp_path/runs) and the data hidden from its worker node."""
    for name, value in CLUSTER_ENV.items():  # for the runs folder's worker (the driver) too
        monkeypatch.setenv(name, value)
    logs = tmp_path.parent / f"{tmp_path.name}-ray-logs"  # outside the hidden folder, for failure messages
    logs.mkdir(exist_ok=True)
    c = TwoNodeCluster([tmp_path, small_folder.parent], [tmp_path / "runs", small_folder], logs)
    try:
        yield c
    finally:
        c.close()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _worker_log(root: Path) -> str:
    log = root / ".worker.log"
    return log.read_text()[-4000:] if log.is_file() else ""


def test_a_suite_trains_on_a_node_that_shares_no_filesystem(cluster, small_folder, tmp_path, tiny_overrides):
    runs = tmp_path / "runs"
    sets = ["--set", f"data.path={small_folder}", "--set", "data.limit=70", "--set", "train.batch_size=16"]
    variants = ["--variant", "depth1", "--variant", "depth3", "--variant", "depth5"]
    done = subprocess.run([sys.executable, "-m", "fer", "suite", "run", "depth", *variants, "--epochs", "2",
                           "--ray", cluster.address, "--quiet", "--runs-dir", str(runs), *sets],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:] + _worker_log(runs)
    assert "3 of 3 runs completed" in done.stdout, done.stdout[-2000:] + _worker_log(runs)

    # The same kind of run trained here, for the shape of a local run folder.
    local = train(load_config(None, tiny_overrides(small_folder, tmp_path / "local", 2, "data.limit=70",
                                                   "train.batch_size=16", "name=local")))
    local_files = {p.name for p in local.iterdir() if not p.name.startswith(".")}
    board = list_runs(runs)
    assert len(board) == 3
    for run_dir in map(Path, board["path"]):
        status = read_status(run_dir)
        assert status["state"] == "completed" and status["ray_storage"] == "streamed", status
        assert status["target"] == ray_target(cluster.address) and "(127.0.0.2)" in status["node"]  # the node
        assert {p.name for p in run_dir.iterdir() if not p.name.startswith(".")} == local_files
        assert list(read_metrics(run_dir)["epoch"]) == [1, 2]
        assert (run_dir / "train.log").read_text().count("training batches: ") == 1
        best = load_checkpoint(run_dir / "best.pt")
        assert best["metrics"]["test"]["accuracy"] == pytest.approx(status["test_acc"])
        # The node's own hash of each file it saved, checked against what reached the runs folder.
        assert status["node_sha256"]["best.pt"] == _sha256(run_dir / "best.pt")
        assert status["node_sha256"]["last.pt"] == _sha256(run_dir / "last.pt")
        assert status["streamed_bytes"] > (run_dir / "best.pt").stat().st_size


def test_a_lost_node_leaves_the_run_interrupted_and_it_resumes_from_the_drivers_last_pt(
        cluster, small_folder, tmp_path, tiny_overrides):
    runs = tmp_path / "runs"
    cfg = load_config(None, tiny_overrides(small_folder, runs, 12, "data.limit=96", "train.batch_size=16",
                                           "name=lose-my-node"))
    [run_dir] = submit_all([check_config(cfg)], runs, target=ray_target(cluster.address))
    deadline = time.monotonic() + 300
    while not ((run_dir / "last.pt").is_file() and len(read_metrics(run_dir)) >= 2):
        assert time.monotonic() < deadline, _worker_log(runs)
        time.sleep(0.2)
    cluster.kill_node_raylet()
    assert wait([run_dir]) == {run_dir: "interrupted"}
    status = read_status(run_dir)
    assert "the Ray task died" in status["error"], status
    epoch_before = load_checkpoint(run_dir / "last.pt")["epoch"]
    assert epoch_before >= 2

    cluster.start_node()
    retry = subprocess.run([sys.executable, "-m", "fer", "queue", "retry", run_dir.name, "--runs-dir", str(runs)],
                           capture_output=True, text=True, timeout=120)
    assert retry.returncode == 0, retry.stderr
    assert wait([run_dir]) == {run_dir: "completed"}, _worker_log(runs)
    assert list(read_metrics(run_dir)["epoch"]) == list(range(1, 13))  # each epoch exactly once
    log = (run_dir / "train.log").read_text()
    assert f"resuming from last.pt at epoch {epoch_before + 1}" in log
    assert read_status(run_dir)["node_sha256"]["best.pt"] == _sha256(run_dir / "best.pt")
