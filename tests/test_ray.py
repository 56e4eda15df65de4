"""Runs on a Ray cluster: a local Ray instance (this machine's 2 CPUs) trains real runs from the queue.

The worker joins Ray as a driver and submits each Ray-targeted run as a task running `fer train
--run`; these tests check the run folders it leaves, a cancel from the CLI, and a Ray worker that
dies under its run (what a lost node looks like).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from fer.config import RunConfig, load_config
from fer.core.files import read_json
from fer.jobs.queue import describe_job, describe_target, ray_address, ray_target, set_ray_storage
from fer.jobs.ray import task_resources
from fer.jobs.submit import submit_all
from fer.jobs.worker import resume, wait, worker_pid
from fer.runs.checkpoint import load_checkpoint
from fer.runs.store import list_runs, read_metrics, read_status
from fer.training.validate import check_config

pytest.importorskip("ray")  # the `ray` extra (installed by the dev extra, so CI always runs these)


def test_targets_and_task_resources():
    assert ray_target(None) == "ray" and ray_target("auto") == "ray:auto" and ray_target(" h:6379 ") == "ray:h:6379"
    assert ray_address("local") is None and ray_address("ray") == "" and ray_address("ray:ray://h:10001") == "ray://h:10001"
    assert describe_target("ray:auto") == "the Ray cluster this machine belongs to"
    assert describe_target(None) == "this machine" and describe_target("ray") == "a local Ray instance"
    cfg = load_config(None, ["train.gpus=2", "data.num_workers=3"])
    assert task_resources(cfg, {"GPU": 8.0, "CPU": 64.0}) == {"num_gpus": 2, "num_cpus": 4}
    assert task_resources(cfg, {"CPU": 64.0}) == {"num_cpus": 8}  # two CPU processes, each with its loaders
    assert task_resources(RunConfig(), {"CPU": 2.0}) == {"num_cpus": 1}


@pytest.mark.slow
def test_a_suite_runs_on_a_local_ray_instance_in_shared_mode(small_folder, tmp_path):
    set_ray_storage(tmp_path, "shared")  # the task writes the run folder itself (streamed: test_ray_cluster.py)
    sets = ["--set", f"data.path={small_folder}", "--set", "data.limit=70", "--set", "train.batch_size=16"]
    variants = ["--variant", "depth1", "--variant", "depth3", "--variant", "depth5"]
    done = subprocess.run([sys.executable, "-m", "fer", "suite", "run", "depth", *variants, "--epochs", "2", "--ray",
                           "--quiet", "--runs-dir", str(tmp_path), *sets], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:] + (tmp_path / ".worker.log").read_text()[-3000:]
    assert "3 of 3 runs completed" in done.stdout
    board = list_runs(tmp_path)
    assert sorted(board["name"]) == ["depth-depth1-s0", "depth-depth3-s0", "depth-depth5-s0"]
    for run_dir in map(Path, board["path"]):
        status = read_status(run_dir)
        assert status["state"] == "completed" and status["target"] == "ray" and status["waiting"] is None
        assert status["ray_storage"] == "shared" and "node" not in status
        assert list(read_metrics(run_dir)["epoch"]) == [1, 2]
        assert load_checkpoint(run_dir / "best.pt")["metrics"]["test"]["accuracy"] == pytest.approx(status["test_acc"])
        assert read_json(run_dir / "eval_PublicTest.json")["n"] == 105
    assert board["test_acc"].notna().all()


def _dead(proc: psutil.Process) -> bool:
    try:
        return proc.status() == psutil.STATUS_ZOMBIE  # dead; its new parent has not reaped it yet
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_ray_cancel_and_a_worker_that_dies(small_folder, tmp_path, tiny_overrides):
    configs = [load_config(None, tiny_overrides(small_folder, tmp_path, 30, "data.limit=96", "train.batch_size=16",
                                                f"name={name}")) for name in ("cancel-me", "lose-my-node")]
    cancelled, lost = submit_all([check_config(c) for c in configs], tmp_path, target=ray_target(None))
    deadline = time.monotonic() + 300
    while not all(read_metrics(r).shape[0] for r in (cancelled, lost)):  # both train at once (1 CPU each)
        assert time.monotonic() < deadline, (tmp_path / ".worker.log").read_text()[-3000:]
        time.sleep(0.1)
    assert describe_job(read_status(cancelled)).startswith("running on a local Ray instance (node ")

    assert subprocess.run([sys.executable, "-m", "fer", "cancel", cancelled.name, "--runs-dir", str(tmp_path)],
                          capture_output=True).returncode == 0
    # The Ray worker process running the task dies (as with its node): its `fer train` child goes with it.
    # The runs are streamed (the default): the status names the worker as its writer, the node's trainer apart.
    status = read_status(lost)
    assert status["ray_storage"] == "streamed" and status["pid"] == worker_pid(tmp_path)
    trainer = psutil.Process(int(status["node_pid"]))
    os.kill(trainer.parent().pid, signal.SIGKILL)
    assert wait([cancelled, lost]) == {cancelled: "cancelled", lost: "interrupted"}
    while "the Ray task died" not in ((read_json(lost / "status.json") or {}).get("error") or ""):
        assert time.monotonic() < deadline, read_json(lost / "status.json")  # written by the worker
        time.sleep(0.1)
    assert _dead(trainer), "the training process outlived its Ray worker"
    done_before = len(read_metrics(lost))
    assert load_checkpoint(lost / "last.pt")["epoch"] in (done_before, done_before - 1)

    resume(lost)  # queued again for Ray; it continues from last.pt
    assert wait([lost]) == {lost: "completed"}
    assert list(read_metrics(lost)["epoch"]) == list(range(1, 31))
    assert read_status(cancelled)["state"] == "cancelled" and len(read_metrics(cancelled)) < 30


def test_without_ray_the_option_says_how_to_install_it(small_folder, tmp_path, monkeypatch, capsys):
    from fer.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    code = main(["suite", "run", "depth", "--ray", "--runs-dir", str(tmp_path), "--set", f"data.path={small_folder}"])
    assert code == 2 and "pip install 'fer-studio[ray]'" in capsys.readouterr().err
    assert list_runs(tmp_path).empty  # nothing queued


@pytest.mark.slow
def test_a_streamed_run_whose_worker_dies_reads_interrupted_and_resumes(small_folder, tmp_path, tiny_overrides):
    """The worker is the runs' Ray driver: Ray ends a driver's tasks with it, and nothing adopts them."""
    cfg = load_config(None, tiny_overrides(small_folder, tmp_path, 30, "data.limit=96", "train.batch_size=16",
                                           "name=lose-my-driver"))
    [run_dir] = submit_all([check_config(cfg)], tmp_path, target=ray_target(None))
    deadline = time.monotonic() + 300
    while len(read_metrics(run_dir)) < 2:
        assert time.monotonic() < deadline, (tmp_path / ".worker.log").read_text()[-3000:]
        time.sleep(0.1)
    status = read_status(run_dir)
    assert status["state"] == "running" and status["ray_storage"] == "streamed"
    trainer = psutil.Process(int(status["node_pid"]))
    os.kill(int(status["pid"]), signal.SIGKILL)  # the worker, which wrote that status
    assert wait([run_dir]) == {run_dir: "interrupted"}  # its writer's pid is gone
    deadline = time.monotonic() + 60
    while not _dead(trainer):  # the task's trainer goes with the driver's Ray instance
        assert time.monotonic() < deadline, "the training process outlived the worker that drove it"
        time.sleep(0.2)
    resume(run_dir)  # a new worker, a new Ray instance; the run continues from the last.pt that came back
    assert wait([run_dir]) == {run_dir: "completed"}
    assert list(read_metrics(run_dir)["epoch"]) == list(range(1, 31))
