"""Streamed Ray runs, without Ray: the records a node's scratch folder yields, the driver writing them into
the real run folder, the staged faces, and what the driver refuses to write. The real two-node cluster
(a node that cannot see the runs folder or the data) is in tests/test_ray_cluster.py."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fer.config import load_config
from fer.data.facedata import DataError
from fer.data.ferplus import load_run_data
from fer.data.staged import STAGED_DATA_ENV, load_staged, save_staged, staged_key
from fer.jobs.ray_stream import FolderMirror, apply_records, run_files, snapshot
from fer.runs.store import read_metric_rows, read_status
from fer.runs.writer import (append_metrics, claim_run, create_run, request_cancel, save_checkpoint,
                             truncate_metrics, write_mirrored, write_status)


def _lay_out(files: dict, folder: Path) -> None:
    """What the task does on its node: the driver's snapshot as a scratch run folder."""
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _same_files(driver: Path, node: Path) -> None:
    """Every file a viewer reads is byte for byte the node's (config.json is the driver's own)."""
    theirs = {n for n in run_files(node) if n != "config.json"}
    assert theirs <= set(run_files(driver))
    for name in theirs - {"status.json"}:
        assert (driver / name).read_bytes() == (node / name).read_bytes(), name


@pytest.fixture
def runs(tmp_path):
    """A queued run on the driver side and its scratch copy on the "node"."""
    cfg = load_config(None, ["name=streamed", "train.epochs=3"])
    driver = create_run(cfg, tmp_path / "runs")
    node = tmp_path / "node" / driver.name
    node.mkdir(parents=True)
    _lay_out(snapshot(driver), node)
    return driver, node


def test_a_nodes_changes_reach_the_runs_folder_exactly_once(runs):
    driver, node = runs
    mirror = FolderMirror(node)
    assert mirror.changes() == []  # the snapshot is what the driver has already
    claim_run(node, ("queued",))
    append_metrics(node, {"epoch": 1, "val_acc": 0.25})
    with open(node / "train.log", "a") as fh:
        fh.write("a whole line\nhalf a li")  # a line still being written
    save_checkpoint(node, "last.pt", {"epoch": 1, "weights": [1.0, 2.0]})
    (node / "trackers").mkdir()
    (node / "trackers" / "events.out").write_bytes(b"\x00\x01tb")
    records = mirror.changes()
    assert records[-1]["status"]["state"] == "running"  # the status comes last
    apply_records(driver, records, "node-a")
    assert (driver / "train.log").read_text() == "a whole line\n"  # the half line waits
    status = read_status(driver)
    assert status["state"] == "running" and status["node"] == "node-a" and status["waiting"] is None

    with open(node / "train.log", "a") as fh:
        fh.write("ne\n")
    append_metrics(node, {"epoch": 2, "val_acc": 0.5})
    again = mirror.changes()
    apply_records(driver, again, "node-a")
    apply_records(driver, again, "node-a")  # a record sent twice lands once (appends carry their offset)
    assert [r["epoch"] for r in read_metric_rows(driver)] == [1, 2]
    # A resumed run trims the epochs after its checkpoint: the shorter file travels whole.
    truncate_metrics(node, 1)
    append_metrics(node, {"epoch": 2, "val_acc": 0.75})
    write_status(node, "completed", test_acc=0.5)
    apply_records(driver, mirror.changes(), "node-a")
    assert [(r["epoch"], r["val_acc"]) for r in read_metric_rows(driver)] == [(1, 0.25), (2, 0.75)]
    _same_files(driver, node)
    assert read_status(driver)["state"] == "completed" and read_status(driver)["test_acc"] == 0.5
    assert mirror.changes() == []


def test_a_cancelled_run_keeps_its_state_and_a_cancel_stays_the_drivers(runs):
    driver, node = runs
    mirror = FolderMirror(node)
    assert write_status(driver, "cancelled", expect=("queued",))  # the user cancelled it on this machine
    claim_run(node, ("queued",))  # ... while the node had just started it
    request_cancel(node)
    append_metrics(node, {"epoch": 1})
    records = mirror.changes()
    assert all(r.get("file") != "CANCEL" for r in records)  # requests are the driver's own
    apply_records(driver, records, "node-a")
    assert read_status(driver)["state"] == "cancelled" and not (driver / "CANCEL").exists()
    assert [r["epoch"] for r in read_metric_rows(driver)] == [1]  # its files still come home


@pytest.mark.parametrize("name", ["../escape", "/etc/passwd", ".train.lock", "config.json", "status.json", "CANCEL",
                                  "trackers/../../x", "", "a/./b"])
def test_the_driver_writes_only_run_files_a_node_may_send(runs, name):
    driver, _ = runs
    before = {p: p.read_bytes() for p in driver.parent.parent.rglob("*") if p.is_file()}
    with pytest.raises(ValueError):
        write_mirrored(driver, name, b"x")
    assert apply_records(driver, [{"file": name, "data": b"x"}], "node-a") == 0  # logged and skipped
    assert {p: p.read_bytes() for p in driver.parent.parent.rglob("*") if p.is_file()} == before


def test_the_driver_never_writes_through_a_link(runs, tmp_path):
    driver, _ = runs
    outside = tmp_path / "outside"
    outside.mkdir()
    (driver / "trackers").symlink_to(outside)
    with pytest.raises(ValueError):
        write_mirrored(driver, "trackers/events.out", b"x")
    assert list(outside.iterdir()) == []
    with pytest.raises(ValueError):  # an appended file cannot leave a gap either
        write_mirrored(driver, "metrics.jsonl", b"{}\n", offset=10)


def test_staged_faces_stand_in_for_the_source_only_for_their_own_run(small_folder, tmp_path, monkeypatch):
    cfg = load_config(None, [f"data.path={small_folder}"])
    data = load_run_data(cfg)
    staged = tmp_path / "faces.npz"
    save_staged(data, staged, staged_key(cfg))
    back = load_staged(staged, staged_key(cfg))
    assert np.array_equal(back.images, data.images) and np.array_equal(back.labels, data.labels)
    assert np.array_equal(back.splits, data.splits) and back.origin == data.origin
    assert back.class_names == data.class_names and back.soft_labels is None
    other = load_config(None, [f"data.path={tmp_path}"])
    with pytest.raises(DataError, match="not this run's data source"):
        load_staged(staged, staged_key(other))
    # A training process started with staged faces reads them, not its data.path (which its node lacks).
    elsewhere = load_config(None, [f"data.path={tmp_path / 'not-on-this-node'}"])
    save_staged(data, staged, staged_key(elsewhere))
    monkeypatch.setenv(STAGED_DATA_ENV, str(staged))
    assert np.array_equal(load_run_data(elsewhere).images, data.images)
    (tmp_path / "torn.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(DataError, match="cannot be read"):
        load_staged(tmp_path / "torn.npz", staged_key(cfg))


def test_a_snapshot_holds_what_a_resume_needs_and_nothing_private(runs):
    driver, _ = runs
    save_checkpoint(driver, "last.pt", {"epoch": 1})
    append_metrics(driver, {"epoch": 1})
    request_cancel(driver)
    files = snapshot(driver)
    assert {"config.json", "status.json", "last.pt", "metrics.jsonl"} <= set(files)
    assert not any(n.startswith(".") or n == "CANCEL" for n in files)
    assert hashlib.sha256(files["last.pt"]).hexdigest() == hashlib.sha256((driver / "last.pt").read_bytes()).hexdigest()
    assert json.loads(files["status.json"])["state"] == "queued"
