"""Jobs that use every device: slots in the worker, a queue you can steer, and multi-process (DDP) runs.

On this CPU-only machine the slots are CPU slots and DDP runs over gloo, exactly the code paths a GPU
machine takes with one slot per GPU and NCCL.
"""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import psutil
import pytest

from fer.config import load_config
from fer.core.files import pid_alive
from fer.inference.predictor import Predictor
from fer.jobs.queue import describe_job, move, queued_runs, set_auto_resume, set_paused, set_priority, set_worker_slots
from fer.jobs.submit import submit
from fer.jobs.worker import ensure_worker, machine_slots, wait, worker_pid
from fer.runs.store import read_metrics, read_status
from fer.training.fit import train
from fer.training.validate import check_config

LEARNS = ["model.kwargs={widths: [16, 32, 64], hidden: 64}", "data.limit=3000", "train.epochs=5",
          "augmentation=none", "optim.lr=0.003"]  # reaches ~35% on 3,000 real faces (majority class: 25%)


def _fer(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "fer", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def _sets(items):
    return [a for item in items for a in ("--set", item)]


@pytest.fixture(autouse=True)
def no_stray_worker(tmp_path):
    """A test that fails half-way must not leave a worker training beside the next tests."""
    yield
    pid = worker_pid(tmp_path)
    if pid:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_for(predicate, timeout=300.0):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.3)
    return predicate()


# --- the queue, without training ---------------------------------------------------------------------------------

def test_queue_order_priorities_and_moves(small_folder, tmp_path, tiny_overrides):
    from fer.training.fit import create_run
    set_paused(tmp_path, True)
    a, b, c = (create_run(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, f"name={n}"))), tmp_path)
               for n in ("a", "b", "c"))
    assert queued_runs(tmp_path) == [a, b, c]
    set_priority(c, 5)
    assert queued_runs(tmp_path) == [c, a, b]  # higher priority first
    move(b, "up")
    assert queued_runs(tmp_path) == [c, b, a]
    move(a, "top")
    assert queued_runs(tmp_path) == [a, c, b]
    assert describe_job(read_status(b), paused=True) == "queued (the queue is paused)"
    assert describe_job({"state": "running", "slots": ["gpu:2"]}) == "running on GPU 2"
    assert describe_job({"state": "running", "slots": ["gpu:0", "gpu:1"]}) == "running on GPUs 0, 1"
    assert describe_job({"state": "queued", "waiting": "waiting for 2 free GPUs (1 free)"}).startswith("waiting")


def test_slots_come_from_the_setting_or_fer_slots(tmp_path, monkeypatch):
    monkeypatch.delenv("FER_SLOTS", raising=False)
    assert machine_slots(tmp_path) == ["cpu:0"]  # a CPU-only machine: one slot by default
    monkeypatch.setenv("FER_SLOTS", "3")
    assert machine_slots(tmp_path) == ["cpu:0", "cpu:1", "cpu:2"]
    set_worker_slots(tmp_path, 2)  # the runs folder's setting wins
    assert machine_slots(tmp_path) == ["cpu:0", "cpu:1"]


# --- the worker with several slots -------------------------------------------------------------------------------

@pytest.mark.slow
def test_two_cpu_slots_run_two_jobs_at_once_and_a_two_slot_job_waits(small_folder, tmp_path, tiny_overrides):
    set_worker_slots(tmp_path, 2)
    long = [load_config(None, tiny_overrides(small_folder, tmp_path, 12, f"name=long{i}")) for i in (1, 2)]
    first, second = (submit(check_config(cfg), tmp_path) for cfg in long)
    wide = submit(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 2, "name=wide", "train.gpus=2",
                                                   "train.batch_size=16"))), tmp_path)
    after = submit(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=after"))), tmp_path)
    assert _wait_for(lambda: "waiting for 2 free slots" in (read_status(wide).get("waiting") or ""))
    assert read_status(after)["state"] == "queued"  # it does not overtake the head of the queue
    states = wait([first, second, wide, after])
    assert set(states.values()) == {"completed"}
    s1, s2, sw, sa = (read_status(r) for r in (first, second, wide, after))
    assert s1["started_at"] < s2["finished_at"] and s2["started_at"] < s1["finished_at"]  # they overlapped
    assert {tuple(s1["slots"]), tuple(s2["slots"])} == {("cpu:0",), ("cpu:1",)}
    assert sw["started_at"] >= max(s1["finished_at"], s2["finished_at"])  # it waited for both slots
    assert sw["slots"] == ["cpu:0", "cpu:1"] and "2 processes" in (wide / "train.log").read_text()
    assert sa["started_at"] >= sw["started_at"]


@pytest.mark.slow
def test_the_worker_honours_priorities(small_folder, tmp_path, tiny_overrides):
    set_paused(tmp_path, True)  # nothing starts while the queue is arranged
    runs = {name: submit(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 2, f"name={name}"))), tmp_path)
            for name in ("a", "b", "c")}
    set_priority(runs["c"], 5)
    move(runs["b"], "up")  # c, b, a
    set_paused(tmp_path, False)
    ensure_worker(tmp_path)
    wait(list(runs.values()))
    c, b, a = (read_status(runs[n]) for n in "cba")
    assert b["started_at"] >= c["finished_at"] and a["started_at"] >= b["finished_at"]


@pytest.mark.slow
def test_killing_the_worker_leaves_runs_that_resume(small_folder, tmp_path, tiny_overrides):
    run = submit(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 40, "name=survivor"))), tmp_path)
    assert _wait_for(lambda: len(read_metrics(run)) >= 1 and (run / "last.pt").is_file())
    pid = worker_pid(tmp_path)
    os.killpg(pid, signal.SIGKILL)  # the worker and the job it started, with no chance to write anything
    assert _wait_for(lambda: read_status(run).get("state") == "interrupted" and not pid_alive(pid), 60)
    done_before = len(read_metrics(run))
    set_auto_resume(tmp_path, True)  # the worker queues interrupted runs again by itself
    ensure_worker(tmp_path)
    assert _wait_for(lambda: read_status(run).get("state") in ("queued", "running", "completed"), 60)
    assert wait([run])[run] == "completed"
    assert list(read_metrics(run)["epoch"]) == list(range(1, 41)) and done_before < 40
    assert read_status(run)["auto_resumes"] == 1


# --- DistributedDataParallel -------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ddp_on_two_processes_matches_one_process(fer_root, tmp_path):
    single = train(load_config(None, [f"data.path={fer_root}", f"runs_dir={tmp_path}", "name=single",
                                      "train.batch_size=32", *LEARNS]))
    done = _fer("train", "--quiet", "--nproc", 2, *_sets([f"data.path={fer_root}", f"runs_dir={tmp_path}",
                                                          "name=ddp", "train.batch_size=16", *LEARNS]))
    assert done.returncode == 0, done.stderr[-2000:]
    ddp = next(p for p in tmp_path.iterdir() if "ddp" in p.name)
    status = read_status(ddp)
    assert status["state"] == "completed" and status["device"].startswith("2 × CPU")
    metrics = read_metrics(ddp)
    assert list(metrics["epoch"]) == [1, 2, 3, 4, 5]  # rank 0 alone writes: one row per epoch
    assert (metrics["train_acc"] > 0).all() and "2 processes (DistributedDataParallel)" in (ddp / "train.log").read_text()
    # Same global batch (2 × 16 = 32) and seed: the same accuracy within the noise between seeds (~2 points).
    single_acc, ddp_acc = read_status(single)["test_acc"], status["test_acc"]
    assert ddp_acc > 0.30 and abs(ddp_acc - single_acc) < 0.05, (ddp_acc, single_acc)
    # A DDP checkpoint is an ordinary one: it loads alone and predicts what the run recorded.
    predictions = pd.read_csv(ddp / "predictions_PublicTest.csv").head(16)
    from fer.data import load_fer2013
    data = load_fer2013(fer_root)
    index = {s: i for i, s in enumerate(data.sources)}
    faces = np.stack([data.images[index[s]] for s in predictions["source"]])
    probs = Predictor.from_run(ddp).predict_faces(faces)
    np.testing.assert_allclose(probs, predictions[[c for c in predictions if c.startswith("p_")]].to_numpy(), atol=1e-4)


@pytest.mark.slow
def test_ddp_run_resumes_after_one_rank_is_killed(small_folder, tmp_path, tiny_overrides):
    args = [sys.executable, "-m", "fer", "train", "--quiet", "--nproc", "2",
            *_sets(tiny_overrides(small_folder, tmp_path, 30, "name=ranks", "train.batch_size=16"))]
    launcher = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run = None

        def started() -> bool:
            nonlocal run
            found = [p for p in tmp_path.iterdir() if "ranks" in p.name] if tmp_path.exists() else []
            run = found[0] if found else None
            return bool(run and (run / "last.pt").is_file() and len(read_metrics(run)) >= 1)

        assert _wait_for(started, 180), "the DDP run never finished an epoch"
        ranks = [p for p in psutil.Process(launcher.pid).children(recursive=True) if "fer.training.rank" in " ".join(p.cmdline())]
        rank1 = next(p for p in ranks if p.environ().get("RANK") == "1")
        rank1.kill()  # kill -9 of one rank
        launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    status = read_status(run)
    assert status["state"] == "failed" and "rank 1 was killed by SIGKILL" in status["error"]
    resumed = _fer("train", "--resume", run.name, "--runs-dir", tmp_path, "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_status(run)["state"] == "completed"
    assert list(read_metrics(run)["epoch"]) == list(range(1, 31))  # every epoch once, none lost before the kill
    assert "resuming from last.pt" in (run / "train.log").read_text()
    assert json.loads((run / "config.json").read_text())["train"]["gpus"] == 2
