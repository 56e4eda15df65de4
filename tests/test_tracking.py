"""Experiment trackers round-trip: what W&B (offline), MLflow (file store) and TensorBoard got is read back.

Each tracker's own reader is used: W&B's offline run file (its records parsed with W&B's protobuf
schema), MLflow's client, TensorBoard's event accumulator. A tracker that is missing or raises never
fails the run.
"""
import json
import sys
import time
from pathlib import Path

import pytest

from fer.config import load_config
from fer.runs.store import read_config, read_metrics, read_status
from fer.training.fit import train
from fer.training.tracking import MlflowTracker, TensorboardTracker


def wandb_records(path: Path):
    """The records of a W&B run file: a LevelDB-style log of 32 KiB blocks after a 7-byte header."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, pending = path.read_bytes(), 7, 32768, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        if pos + 7 + length > len(data):
            return  # a record still being written
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            pending = b""
            yield record
        elif kind in (2, 3):  # first and middle pieces
            pending += chunk


def items(update) -> dict:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in update}


@pytest.fixture(scope="module")
def tracked_run(small_folder, tmp_path_factory, tiny_overrides):
    runs = tmp_path_factory.mktemp("tracked")
    mp = pytest.MonkeyPatch()
    mp.setenv("WANDB_MODE", "offline")
    mp.setenv("WANDB_SILENT", "true")
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        cfg = load_config(None, tiny_overrides(small_folder, runs, 2, "name=tracked", "tags=[suite:demo, model_type:cnn]",
                                               "tracking.wandb=true", "tracking.mlflow=true",
                                               "tracking.tensorboard=true"))
        run_dir = train(cfg)
    finally:
        mp.undo()
    return run_dir


def test_wandb_offline_run_holds_config_tags_metrics_confusion_and_the_best_checkpoint(tracked_run):
    files = list((tracked_run / "trackers" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    deadline = time.time() + 60  # W&B's service process may still be writing the run's last records
    records = list(wandb_records(files[0]))
    while not any(r.WhichOneof("record_type") == "exit" for r in records):
        assert time.time() < deadline, "the W&B run file never got its exit record"
        time.sleep(0.5)
        records = list(wandb_records(files[0]))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.display_name == "tracked" and run.project == "fer-studio"
    assert list(run.tags) == ["suite:demo", "model_type:cnn"]
    config = items(run.config.update)
    assert config["optim"]["lr"] == read_config(tracked_run).optim.lr and config["name"] == "tracked"
    history = [items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    val_acc = [h["val_acc"] for h in history if "val_acc" in h]
    assert val_acc == pytest.approx(read_metrics(tracked_run)["val_acc"].tolist())
    assert any(h.get("test/confusion_matrix/_type") == "table-file" for h in history)  # the confusion table
    tables = [r.artifact.name for r in records if r.WhichOneof("record_type") == "artifact"
              and r.artifact.type == "run_table"]
    assert any("testconfusion_matrix" in name for name in tables) and any("valconfusion" in n for n in tables)
    summary = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            summary.update(items(r.summary.update))
    assert summary["test_acc"] == pytest.approx(read_status(tracked_run)["test_acc"])
    artifacts = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact" and r.artifact.type == "model"]
    assert [sorted(c.path for c in a.manifest.contents) for a in artifacts] == [["best.pt", "config.json"]]


def test_mlflow_file_store_holds_params_tags_metrics_confusion_and_artifacts(tracked_run):
    from mlflow.tracking import MlflowClient

    client = MlflowClient((tracked_run.parent / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("fer-studio")
    [run] = client.search_runs([experiment.experiment_id])
    assert run.data.tags["fer.run_id"] == tracked_run.name and run.data.tags["suite"] == "demo"
    assert run.info.status == "FINISHED" and run.data.params["model.name"] == "plain_cnn"
    history = client.get_metric_history(run.info.run_id, "val_acc")
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == \
        pytest.approx(read_metrics(tracked_run)["val_acc"].tolist())
    assert run.data.metrics["test_acc"] == pytest.approx(read_status(tracked_run)["test_acc"])
    local = Path(client.download_artifacts(run.info.run_id, "evaluation/confusion_test.json"))
    evaluation = json.loads((tracked_run / "eval_PublicTest.json").read_text())
    assert json.loads(local.read_text())["matrix"] == evaluation["confusion_matrix"]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id, "run")) == ["run/best.pt", "run/config.json"]


def test_tensorboard_events_hold_the_curves_config_and_confusion_matrix(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tracked_run / "trackers" / "tensorboard"), size_guidance={"images": 0, "tensors": 0})
    events.Reload()
    assert [s.value for s in events.Scalars("val/acc")] == \
        pytest.approx(read_metrics(tracked_run)["val_acc"].tolist())
    assert "test/confusion_matrix" in events.Tags()["images"]
    assert {"config/text_summary", "test/confusion_matrix/text_summary"} <= set(events.Tags()["tensors"])


def test_a_resumed_run_continues_its_mlflow_run(tracked_run, tmp_path):
    cfg = read_config(tracked_run)
    first = MlflowTracker(cfg, tracked_run, tmp_path)
    second = MlflowTracker(cfg, tracked_run, tmp_path)
    assert first.run_id == second.run_id
    first.finish("completed", [])


def test_a_missing_or_failing_tracker_never_fails_the_run(small_folder, tmp_path, monkeypatch, tiny_overrides):
    monkeypatch.setitem(sys.modules, "wandb", None)  # not installed: `import wandb` raises ImportError

    def broken(self, row):
        raise OSError("disk quota exceeded")

    monkeypatch.setattr(TensorboardTracker, "log_epoch", broken)
    run_dir = train(load_config(None, tiny_overrides(small_folder, tmp_path, 2, "tracking.wandb=true",
                                                     "tracking.tensorboard=true")))
    assert read_status(run_dir)["state"] == "completed"
    log = (run_dir / "train.log").read_text()
    assert "warning: tracker wandb is off for this run: not installed (pip install 'fer-studio[wandb]')" in log
    assert log.count("warning: tracker tensorboard failed (OSError: disk quota exceeded)") == 1  # dropped after once
    assert len(read_metrics(run_dir)) == 2


def test_an_unreachable_mlflow_server_never_fails_the_run(small_folder, tmp_path, monkeypatch, tiny_overrides):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    run_dir = train(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "tracking.mlflow=true",
                                                     "tracking.mlflow_uri=http://127.0.0.1:9")))
    assert read_status(run_dir)["state"] == "completed"
    assert "warning: tracker mlflow is off for this run" in (run_dir / "train.log").read_text()
