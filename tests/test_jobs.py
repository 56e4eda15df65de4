"""Background jobs: the queue, one detached worker at a time, cancel of a queued run, resume."""
import time

import pytest

from fer.config import load_config
from fer.jobs.queue import cancel, queued_runs
from fer.jobs.submit import submit
from fer.jobs.worker import ensure_worker, resume, worker_pid
from fer.runs.store import read_status
from fer.training.validate import check_config


pytestmark = pytest.mark.slow


def _wait(predicate, timeout=240):
    deadline = time.time() + timeout
    while not predicate() and time.time() < deadline:
        time.sleep(0.5)
    return predicate()


def test_queue_runs_one_at_a_time_and_cancel_then_resume(small_folder, tmp_path, tiny_overrides):
    first = submit(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 2, "name=first"))), tmp_path)
    second = submit(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=second"))), tmp_path)
    third = submit(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=third"))), tmp_path)
    pid = worker_pid(tmp_path)
    assert pid and ensure_worker(tmp_path) == pid  # a second launch reuses the live worker
    cancel(third)  # still queued: it simply leaves the queue
    assert read_status(third)["state"] == "cancelled" and third not in queued_runs(tmp_path)
    assert _wait(lambda: read_status(second).get("state") == "completed")
    a, b = read_status(first), read_status(second)
    assert a["state"] == "completed" and b["started_at"] >= a["finished_at"]  # one job at a time, in order
    assert _wait(lambda: worker_pid(tmp_path) is None, 30)  # the worker leaves when the queue is empty
    resume(third)
    assert _wait(lambda: read_status(third).get("state") == "completed")
    assert (third / "best.pt").is_file()
