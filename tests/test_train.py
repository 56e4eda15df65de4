"""Real CPU training runs on a few hundred FER2013 images, and every artifact they leave."""
import json

import numpy as np
import pandas as pd
import pytest
import torch

import fer.training.fit as train_module
from fer.config import load_config
from fer.core.constants import CLASS_NAMES
from fer.data.loaders import train_loader
from fer.inference.predictor import Predictor
from fer.runs.checkpoint import FORMAT_VERSION, load_checkpoint
from fer.runs.store import list_runs, read_metrics, read_status
from fer.runs.writer import request_cancel
from fer.training.fit import train
from fer.training.validate import check_config


@pytest.fixture(scope="module")
def finished_run(trained_run):
    return trained_run  # the session's shared run: 4 epochs, name "artifacts", tags smoke/test, lr 0.003


def test_run_folder_has_every_artifact(finished_run):
    names = {p.name for p in finished_run.iterdir()}
    assert {"config.json", "status.json", "metrics.jsonl", "train.log", "last.pt", "best.pt",
            "eval_PublicTest.json", "predictions_PublicTest.csv", "eval_val.json", "predictions_val.csv"} <= names
    assert "CANCEL" not in names
    status = read_status(finished_run)
    assert status["state"] == "completed" and status["epoch"] == 4 and status["test_acc"] is not None
    assert status["started_at"] <= status["finished_at"]
    config = json.loads((finished_run / "config.json").read_text())
    assert config["name"] == "artifacts" and config["tags"] == ["smoke", "test"]
    log = (finished_run / "train.log").read_text()
    assert "epoch 4/4" in log and "test (PublicTest" in log


def test_metrics_rows_per_epoch_and_learning(finished_run):
    metrics = read_metrics(finished_run)
    assert list(metrics["epoch"]) == [1, 2, 3, 4]
    for column in ("train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds",
                   "images_per_s"):
        assert metrics[column].notna().all(), column
    assert metrics["train_loss"].iloc[-1] < metrics["train_loss"].iloc[0]  # it really learns
    assert metrics["lr"].nunique() > 1  # OneCycle moved the learning rate


def test_checkpoints_are_self_describing_and_weights_only(finished_run):
    for name in ("best.pt", "last.pt"):
        raw = torch.load(finished_run / name, weights_only=True)
        assert raw["format_version"] == FORMAT_VERSION
        assert raw["class_names"] == list(CLASS_NAMES)
        assert raw["model"]["name"] == "plain_cnn" and raw["model"]["kwargs"]["widths"] == [8, 16, 32]
        assert raw["preprocessing"]["input_size"] == 48
        assert raw["config"]["name"] == "artifacts"
        assert not any(k.startswith("_orig_mod") for k in raw["state_dict"])
    assert "optimizer" in torch.load(finished_run / "last.pt", weights_only=True)["training_state"]
    best = load_checkpoint(finished_run / "best.pt")
    assert best["metrics"]["test"]["split"] == "PublicTest" and "val" in best["metrics"]


def test_test_evaluation_matches_a_fresh_model_from_the_checkpoint(finished_run, small_folder):
    import cv2
    report = json.loads((finished_run / "eval_PublicTest.json").read_text())
    assert report["n"] == 105 and len(report["confusion_matrix"]) == 7
    assert np.array(report["confusion_matrix"]).sum() == 105
    assert set(report["per_class"]) == set(CLASS_NAMES)
    preds = pd.read_csv(finished_run / "predictions_PublicTest.csv")
    assert len(preds) == 105 and preds["correct"].mean() == pytest.approx(report["accuracy"])
    # Rebuild the model from best.pt alone and re-predict a few images through the inference path.
    predictor = Predictor.from_checkpoint(finished_run / "best.pt")
    rows = preds.head(8)
    faces = np.stack([cv2.imread(str(small_folder / src), cv2.IMREAD_GRAYSCALE) for src in rows["source"]])
    probs = predictor.predict_faces(faces)
    stored = rows[[f"p_{c}" for c in CLASS_NAMES]].to_numpy()
    np.testing.assert_allclose(probs, stored, atol=1e-4)
    assert list(np.asarray(CLASS_NAMES)[probs.argmax(1)]) == list(rows["pred"])


def test_leaderboard_lists_the_run(finished_run):
    board = list_runs(finished_run.parent)
    row = board[board["run_id"] == finished_run.name].iloc[0]
    assert row["status"] == "completed" and row["model"] == "plain_cnn" and row["epochs_done"] == 4
    assert row["test_acc"] == pytest.approx(json.loads((finished_run / "eval_PublicTest.json").read_text())["accuracy"])
    assert row["config.optim.lr"] == 0.003 and row["tags"] == "smoke,test"


@pytest.mark.slow
@pytest.mark.parametrize("loader", ["resident", "dataloader"])
def test_cancelled_then_resumed_run_retraces_an_uninterrupted_one(small_folder, tmp_path, monkeypatch, tiny_overrides,
                                                                   loader):
    overrides = tiny_overrides(small_folder, tmp_path, 3, "augmentation=heavy", f"data.loader={loader}")
    straight = train(load_config(None, overrides))

    real_epoch = train_module.train_one_epoch
    calls = []

    def interrupted_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C in the middle of epoch 2
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", interrupted_in_epoch_two)
    run = train(load_config(None, overrides))
    assert read_status(run)["state"] == "cancelled"
    assert list(read_metrics(run)["epoch"]) == [1]
    monkeypatch.setattr(train_module, "train_one_epoch", real_epoch)
    train(run_dir=run)
    assert read_status(run)["state"] == "completed"
    a, b = read_metrics(straight), read_metrics(run)
    assert list(b["epoch"]) == [1, 2, 3]
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)
    np.testing.assert_allclose(a["val_acc"], b["val_acc"])
    sa = load_checkpoint(straight / "last.pt")["state_dict"]
    sb = load_checkpoint(run / "last.pt")["state_dict"]
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=1e-4, atol=1e-5)
    assert "resuming from last.pt at epoch 2" in (run / "train.log").read_text()


def test_cancel_file_stops_the_job(small_folder, tmp_path, monkeypatch, tiny_overrides):
    real_epoch = train_module.train_one_epoch

    def cancel_during_epoch(model, loader, *args, on_batch=None, **kwargs):
        def hook(batch, batches, loss):
            if batch == 2:
                request_cancel(run_dirs[0])  # what `fer cancel` and the dashboard do
            on_batch(batch, batches, loss)
        return real_epoch(model, loader, *args, on_batch=hook, **kwargs)

    run_dirs = []
    real_create = train_module.create_run
    def recording_create(cfg, **kw):
        run_dirs.append(real_create(cfg, **kw))
        return run_dirs[0]

    monkeypatch.setattr(train_module, "create_run", recording_create)
    monkeypatch.setattr(train_module, "train_one_epoch", cancel_during_epoch)
    run = train(load_config(None, tiny_overrides(small_folder, tmp_path, 3)))
    assert read_status(run)["state"] == "cancelled"
    assert not (run / "CANCEL").exists() and not (run / "last.pt").exists()


def test_failure_is_recorded_in_status(small_folder, tmp_path, monkeypatch, tiny_overrides):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory")  # what a too-large batch gives mid-run

    monkeypatch.setattr(train_module, "train_one_epoch", out_of_memory)
    with pytest.raises(RuntimeError):
        train(load_config(None, tiny_overrides(small_folder, tmp_path, 1)))
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    status = read_status(run)
    assert status["state"] == "failed" and "not enough memory" in status["error"]
    assert "Traceback" in (run / "train.log").read_text()


@pytest.mark.slow
def test_early_stopping_when_validation_stalls(small_folder, tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides(small_folder, tmp_path, 10, "optim.lr=1e-12", "sched.name=none",
                                           "train.early_stop_patience=2", "augmentation=none"))
    run = train(cfg)
    status = read_status(run)
    assert status["state"] == "completed" and status["stopped_early"] is True
    assert list(read_metrics(run)["epoch"]) == [1, 2, 3]


@pytest.mark.slow
def test_imbalance_options_sgd_plateau_and_cpu_bf16(small_folder, tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides(small_folder, tmp_path, 2, "data.sampler=weighted",
                                           "loss.class_weights=true", "loss.label_smoothing=0.1",
                                           "optim.name=sgd", "optim.lr=0.01", "sched.name=plateau",
                                           "train.amp=bf16", "train.grad_clip=1.0"))
    run = train(cfg)
    assert read_status(run)["state"] == "completed"
    assert (run / "eval_val.json").exists() and (run / "eval_PublicTest.json").exists()
    # (A test split the data lacks, such as PrivateTest in the image folders, is refused up front: test_validation.)


def test_weighted_sampler_balances_classes(full_data):
    train_idx = full_data.split_indices("Training")
    loader = train_loader(full_data.images[train_idx], full_data.labels[train_idx], None, 512, "weighted", 7,
                          torch.Generator().manual_seed(0))
    seen = np.zeros(7)
    for i, (_, y) in enumerate(loader):
        seen += np.bincount(y.numpy(), minlength=7)
        if i == 15:
            break
    share = seen / seen.sum()
    assert share.min() > 0.11 and share.max() < 0.18  # ~1/7 each, where disgust is 1.5% of Training


def test_runs_dir_defaults_to_environment(small_folder, tmp_path, monkeypatch):
    from fer.training.fit import create_run
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "env_runs"))
    run = create_run(check_config(load_config(None, [f"data.path={small_folder}"])))
    assert run.parent == tmp_path / "env_runs"


@pytest.mark.slow
def test_fp16_autocast_uses_grad_scaler_and_saves_its_state(small_folder, tmp_path, tiny_overrides):
    # CUDA's fp16 path (scale, unscale before clipping, step, update) runs on CPU autocast too.
    cfg = load_config(None, tiny_overrides(small_folder, tmp_path, 2, "train.amp=fp16", "train.grad_clip=0.5"))
    run = train(cfg)
    assert read_status(run)["state"] == "completed"
    scaler_state = load_checkpoint(run / "last.pt")["training_state"]["scaler"]
    assert scaler_state["scale"] > 0 and "_growth_tracker" in scaler_state
    assert np.isfinite(read_metrics(run)["train_loss"]).all()


def test_live_progress_tells_the_truth(finished_run):
    from fer.runs.store import read_batch_losses
    losses = read_batch_losses(finished_run)  # the smoothed loss, about once a second, for the live curve
    assert set(losses["epoch"]) <= {1, 2, 3, 4} and losses["loss"].notna().all() and len(losses) >= 4
    assert (losses["progress"].diff().dropna() > 0).all()
    status = read_status(finished_run)
    assert status["phase"] is None and status["images_per_s"] > 0
    assert "evaluating the best checkpoint" in (finished_run / "train.log").read_text()


def test_eta_before_the_first_epoch_ends(small_folder, tmp_path, tiny_overrides):
    from fer.runs.writer import create_run, write_status
    from fer.runs.store import run_progress
    run = create_run(load_config(None, tiny_overrides(small_folder, tmp_path, 10)), tmp_path)
    write_status(run, "running", epoch=1, epochs=10, batch=50, batches=100, epoch_started=1000.0, phase="training")
    progress = run_progress(run, now=1030.0)  # 50 batches in 30 s, no finished epoch yet
    assert progress.eta_s == pytest.approx(30 / 50 * 100 * 9.5) and progress.phase == "training"
    write_status(run, "running", phase="evaluating")
    assert run_progress(run, now=1030.0).phase == "evaluating"


def test_suite_runs_queue_in_the_order_they_were_made(small_folder, tmp_path, tiny_overrides):
    from fer.jobs.queue import queued_runs
    from fer.runs.writer import create_run
    made = [create_run(load_config(None, tiny_overrides(small_folder, tmp_path, 1, f"name={name}")), tmp_path)
            for name in ("zeta", "alpha", "mid")]  # within one second: the same time stamp in their ids
    assert queued_runs(tmp_path) == made


@pytest.mark.slow
def test_a_compiled_run_trains_like_an_eager_one_and_saves_a_plain_checkpoint(small_folder, tmp_path, tiny_overrides):
    extra = ("augmentation=none", "train.seed=3", "optim.lr=0.003")
    eager = train(load_config(None, tiny_overrides(small_folder, tmp_path / "eager", 2, *extra)))
    compiled = train(load_config(None, tiny_overrides(small_folder, tmp_path / "compiled", 2, *extra,
                                                      "train.compile=true")))
    assert "compiled with torch.compile" in (compiled / "train.log").read_text()
    a, b = read_metrics(eager), read_metrics(compiled)
    assert b["train_loss"].iloc[1] < b["train_loss"].iloc[0]  # the compiled step trains the model
    # Same seed, same faces: the same steps, up to float reordering (which Adam amplifies a little).
    assert np.allclose(a["train_loss"], b["train_loss"], atol=0.02)  # (it falls by ~0.1 an epoch here)
    assert np.allclose(a["val_loss"], b["val_loss"], atol=0.02)
    ckpt = load_checkpoint(compiled / "best.pt")
    assert not any(k.startswith("_orig_mod.") for k in ckpt["state_dict"])  # loads into an uncompiled model
    assert Predictor.from_checkpoint(compiled / "best.pt").predict_faces(
        np.zeros((2, 48, 48), np.uint8)).shape == (2, len(CLASS_NAMES))
