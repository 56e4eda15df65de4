"""Races between a cancel, the worker and the trainer: state changes are compare-and-set under the run's lock.

A cancel that answers "cancelled" holds: the trainer never starts a run that is no longer queued, and a
cancel that lands after the trainer claimed the run stops it. See docs/reliability.md.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer.config import load_config
from fer.core.files import process_start
from fer.jobs.queue import cancel, statuses
from fer.jobs.worker import _Worker
from fer.runs.store import read_metrics, read_status
from fer.runs.writer import CANCEL_FILE, StateChanged, claim_run, request_cancel, write_status
from fer.training.fit import create_run, train
from fer.training.recorder import RunRecorder
from fer.training.validate import check_config


@pytest.fixture
def queued_run(small_folder, tiny_overrides, tmp_path):
    def make(epochs: int = 1) -> Path:
        cfg = load_config(None, tiny_overrides(small_folder, tmp_path, epochs, "data.limit=70", "train.batch_size=16"))
        return create_run(check_config(cfg), tmp_path)
    return make


def test_a_run_cancelled_before_its_trainer_claims_it_is_never_started(queued_run):
    run = queued_run()
    assert cancel(run) == "cancelled (it was queued)"
    with pytest.raises(StateChanged, match="cancelled now, so it was not started"):
        train(run_dir=run, start_from=("queued",))  # what `fer train --run` (the worker's command) does
    assert read_status(run)["state"] == "cancelled" and read_metrics(run).empty


def test_a_cancel_after_the_claim_is_a_stop_request_the_trainer_keeps(queued_run):
    run = queued_run()
    request_cancel(run)  # a stale request from before this start...
    claim_run(run, ("queued",))
    assert not (run / CANCEL_FILE).exists()  # ...is dropped by the claim, under the same lock
    assert read_status(run)["state"] == "running" and read_status(run)["phase"] == "starting"
    assert cancel(run) == "cancel requested; it stops after the current batch"  # not "cancelled (it was queued)"
    with RunRecorder(run, epochs=1) as recorder:  # opening the recorder no longer drops the request
        assert recorder.cancel_requested()


def test_the_worker_never_writes_queued_over_a_cancel(queued_run):
    run = queued_run()
    listing = statuses(run.parent)  # the worker listed the queue...
    cancel(run)  # ...then the run was cancelled
    assert write_status(run, "queued", expect=("queued",), slots=["cpu:0"]) is None
    worker = _Worker(run.parent)
    worker.start_ready(listing, ["cpu:0"])
    assert worker.running == {} and read_status(run)["state"] == "cancelled"


def test_a_run_claimed_twice_starts_once(queued_run):
    run = queued_run()
    claim_run(run, ("queued",))
    with pytest.raises(StateChanged, match="running now"):
        claim_run(run, ("queued",))


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.0, 0.4, 1.5, 4.0])
def test_a_cancel_at_any_moment_of_a_start_holds(queued_run, delay_s):
    """The real race: `fer train --run` in a process of its own, and `fer cancel` a moment later."""
    run = queued_run(epochs=200)
    trainer = subprocess.Popen([sys.executable, "-m", "fer", "train", "--run", str(run), "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay_s)
    answer = cancel(run)
    _, err = trainer.communicate(timeout=300)
    status = read_status(run)
    assert status["state"] == "cancelled", (answer, status, err[-2000:])
    if answer == "cancelled (it was queued)":
        assert read_metrics(run).empty  # acknowledged as taken off the queue: nothing trained
        assert trainer.returncode == 2 and ("not started" in err or "is cancelled" in err)
    assert len(read_metrics(run)) < 200


def test_a_reused_pid_does_not_pass_for_the_worker(tmp_path):
    from fer.jobs.worker import LOCK_NAME, worker_pid

    lock = tmp_path / LOCK_NAME
    lock.write_text(f"{os.getpid()} 12345.0 2026-01-01T00:00:00+00:00\n")  # a live pid, but not the process written down
    assert worker_pid(tmp_path) is None
    lock.write_text(f"{os.getpid()} 2026-01-01T00:00:00+00:00\n")  # an older lock: a pid alone proves nothing
    assert worker_pid(tmp_path) is None
    lock.write_text(f"{os.getpid()} {process_start(os.getpid())} 2026-01-01T00:00:00+00:00\n")
    assert worker_pid(tmp_path) == os.getpid()


@pytest.mark.slow
def test_queue_commands_restart_a_killed_worker(queued_run, capsys):
    from fer.cli.main import main
    from fer.jobs.queue import set_paused
    from fer.jobs.worker import ensure_worker, worker_pid

    run = queued_run()
    set_paused(run.parent, True)  # the first worker must not train it before it is killed
    pid = ensure_worker(run.parent)
    deadline = time.monotonic() + 60
    while not (run.parent / ".worker.lock").read_text().startswith(f"{pid} ") or worker_pid(run.parent) != pid:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    while worker_pid(run.parent) == pid:
        time.sleep(0.1)
    assert worker_pid(run.parent) is None and read_status(run)["state"] == "queued"  # queued, and no worker
    set_paused(run.parent, False)
    assert main(["queue", "--runs-dir", str(run.parent)]) == 0
    assert "worker: started (pid" in capsys.readouterr().out
    while read_status(run)["state"] != "completed":  # trained by the worker `fer queue` started
        assert time.monotonic() < deadline + 240, read_status(run)
        time.sleep(0.5)


# --- what killed writers leave behind ----------------------------------------------------------------------

def test_leftovers_of_killed_writes_are_removed_and_a_complete_checkpoint_is_recovered(trained_run, tmp_path):
    import shutil

    from fer.runs.checkpoint import load_checkpoint
    from fer.runs.leftovers import tidy_run
    from fer.runs.writer import RESERVE_FILE

    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    best = load_checkpoint(run / "best.pt")
    epochs = list(read_metrics(run)["epoch"])
    # A complete best.pt of the last recorded epoch, killed between its fsync and its rename; an older
    # best.pt in place (as the run had it before that epoch).
    shutil.copy(run / "best.pt", run / ".best.pt.k1ll3d.tmp")
    import torch
    torch.save({**best, "epoch": epochs[0] - 1 if epochs[0] > 1 else 0}, run / "best.pt")
    (run / ".last.pt.t0rn99.tmp").write_bytes((run / "last.pt").read_bytes()[:1000])  # torn: killed mid-write
    (run / ".status.json.abcdef.tmp").write_text("{")
    (run / RESERVE_FILE).write_bytes(b"\0" * 1024)
    done = tidy_run(run)
    assert done.recovered == ["best.pt"] and load_checkpoint(run / "best.pt")["epoch"] == best["epoch"]
    assert sorted(done.removed) == sorted([".last.pt.t0rn99.tmp", ".status.json.abcdef.tmp", RESERVE_FILE])
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")] and done.freed_bytes > 1000


def test_the_run_listing_tidies_old_leftovers_and_leaves_fresh_ones(trained_run, tmp_path, capsys):
    import os
    import shutil
    import time

    from fer.cli.main import main

    run = tmp_path / "runs" / trained_run.name
    shutil.copytree(trained_run, run)
    old, fresh = run / ".last.pt.k1ll3d.tmp", run / ".status.json.wr1t1n.tmp"
    old.write_bytes(b"\0" * 50_000)  # a torn checkpoint an hour old: its writer was killed
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    fresh.write_text("{")  # maybe being written this second: left alone
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert not old.exists() and fresh.exists()
    assert "tidied what killed writers left: 1 file(s), 0.1 MB freed" in capsys.readouterr().err


def test_nothing_is_tidied_while_another_process_trains_the_run(queued_run):
    from fer.runs.leftovers import tidy_run
    from fer.runs.writer import training_lock

    run = queued_run()
    (run / ".last.pt.abcdef.tmp").write_bytes(b"being written")
    done = subprocess.Popen([sys.executable, "-c", "import sys, time; from fer.runs.writer import training_lock\n"
                             f"with training_lock({str(run)!r}):\n    print('held', flush=True); time.sleep(30)"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert done.stdout.readline().strip() == "held"
        assert tidy_run(run).removed == [] and (run / ".last.pt.abcdef.tmp").exists()
    finally:
        done.kill()
        done.wait()
    with training_lock(run):
        assert tidy_run(run, owner=True).removed == [".last.pt.abcdef.tmp"]


def test_a_full_disk_before_the_run_exists_leaves_no_folder_and_names_the_full_one(small_folder, tmp_path,
                                                                                   monkeypatch):
    import errno

    from fer.runs import writer
    from fer.runs.store import list_runs

    real = writer.write_text

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(writer, "write_text", full)
    cfg = load_config(None, [f"data.path={small_folder}"])
    with pytest.raises(OSError, match=f"no space left on device in {tmp_path}: the run was not created"):
        writer.create_run(cfg, tmp_path)
    monkeypatch.setattr(writer, "write_text", real)
    assert list(tmp_path.iterdir()) == [] and list_runs(tmp_path, include_default=False).empty


def test_the_leaderboard_reads_again_only_the_runs_that_changed(trained_run, tmp_path):
    import shutil

    from fer.runs.rowcache import RowCache
    from fer.runs.store import list_runs, run_summary
    from fer.runs.writer import rename_run

    for i in range(3):
        shutil.copytree(trained_run, tmp_path / f"{trained_run.name}-{i}")
    cache, built = RowCache(), []
    board = lambda: [cache.row(p, lambda d: built.append(d.name) or run_summary(d)) for p in sorted(tmp_path.iterdir())]
    first = board()
    assert len(built) == 3 and board() == first and len(built) == 3  # unchanged: nothing read again
    rename_run(tmp_path / f"{trained_run.name}-1", "renamed")
    rows = board()
    assert built[3:] == [f"{trained_run.name}-1"] and rows[1]["name"] == "renamed"
    write_status(tmp_path / f"{trained_run.name}-2", "queued")  # a live run is read at every listing
    board(), board()
    assert built[4:] == [f"{trained_run.name}-2"] * 2
    assert sorted(list_runs(tmp_path)["name"]) == sorted(r["name"] for r in board())  # the real board agrees


def test_sessions_asking_at_once_share_one_build_and_none_gets_an_older_board():
    import threading

    from fer.runs.rowcache import SharedBuild

    shared, builds, got = SharedBuild(), [], []
    go = threading.Barrier(10)

    def build():
        builds.append(time.monotonic())
        time.sleep(0.2)
        return len(builds)

    def session():
        go.wait()
        asked = time.monotonic()
        got.append((asked, shared.get("runs", build)))
    threads = [threading.Thread(target=session) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(builds) <= 2 and len(got) == 10  # not ten builds
    for asked, result in got:
        assert builds[result - 1] >= asked - 0.05  # each result's build started after (about) the request
