"""The seams between packages: the worker reads configs through the run store, the Classifier and Recorder
protocols, one RunData for training, evaluation and int8 calibration, and `fer release` packaging a run."""
import inspect
import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from fer.cli.main import main
from fer.core.files import read_json
from fer.data import RunData
from fer.inference.averaging import DEFAULT_TTA
from fer.inference.classifiers import checkpoint_predictor, load_classifier
from fer.inference.pipeline import Classifier
from fer.inference.predictor import Ensemble, Predictor
from fer.jobs.queue import statuses, train_command
from fer.jobs.worker import _Worker
from fer.runs.checkpoint import load_checkpoint
from fer.runs.release import release_run
from fer.runs.store import SHIPPED_RUN_DIR, read_config, read_status
from fer.runs.writer import create_run
from fer.training.recorder import QuietRecorder, Recorder, RunRecorder


def test_the_worker_reads_configs_through_the_run_store_and_fails_a_broken_one(trained_run, tmp_path):
    good, bad = (create_run(read_config(trained_run), tmp_path) for _ in range(2))
    config = json.loads((bad / "config.json").read_text())
    config["train"]["gpus"] = "two"  # hand-edited: not an int
    (bad / "config.json").write_text(json.dumps(config))
    worker = _Worker(tmp_path)
    worker.start_ready(statuses(tmp_path), ["cpu:0"])
    try:
        status = read_status(bad)
        assert status["state"] == "failed" and "config.json is unusable" in status["error"]
        assert "train.gpus: expected int" in status["error"]
        assert good in worker.running and worker.running[good].args == train_command(good)  # the queue goes on
    finally:
        for proc in worker.running.values():
            proc.kill()
            proc.wait()


def test_every_kind_of_classifier_speaks_the_protocol(trained_run):
    torch_model = load_classifier(trained_run, backend="torch")
    onnx_model = checkpoint_predictor(SHIPPED_RUN_DIR / "best.pt", "auto")
    both = Ensemble([torch_model, load_classifier(None, backend="torch")])
    for classifier, backend, explainable in ((torch_model, "torch", True), (onnx_model, "onnxruntime-int8", False),
                                             (both, "torch", True), (Ensemble([onnx_model]), "onnxruntime-int8", False)):
        assert isinstance(classifier, Classifier)
        assert classifier.backend == backend and classifier.explainable is explainable
    assert both.model is torch_model.model and Ensemble([onnx_model]).model is None  # Grad-CAM: the first member


def _members(protocol) -> dict:
    own = {name: value for name, value in vars(protocol).items() if not name.startswith("_") or name in
           ("__enter__", "__exit__")}
    return {name: value for name, value in own.items() if callable(value)}


@pytest.mark.parametrize("recorder", [RunRecorder, QuietRecorder])
def test_both_recorders_implement_every_method_of_the_protocol(recorder):
    for name, method in _members(Recorder).items():
        implemented = recorder.__dict__.get(name)
        assert implemented is not None, f"{recorder.__name__} lacks {name}"
        assert list(inspect.signature(implemented).parameters) == list(inspect.signature(method).parameters), name
    assert {"run_dir", "log", "stop_signal"} <= set(Recorder.__annotations__)


def test_training_evaluation_and_int8_calibration_share_one_run_data(trained_run):
    from fer.inference.export import calibration_faces

    run_data = RunData.from_config(read_config(trained_run))
    val = pd.read_csv(trained_run / "predictions_val.csv")  # what training scored as validation at its end
    assert list(val["source"]) == list(run_data.data.sources[run_data.splits.val])
    index, name = run_data.split("test")
    assert name == "PublicTest" and len(index) == json.loads((trained_run / "eval_PublicTest.json").read_text())["n"]
    faces = calibration_faces(trained_run)
    val_faces = {face.tobytes() for face in run_data.data.images[run_data.splits.val]}
    assert len(faces) == min(512, len(run_data.splits.val)) and all(f.tobytes() in val_faces for f in faces)
    assert not ({f.tobytes() for f in faces} & {f.tobytes() for f in run_data.data.images[index]})  # never a test face


def test_release_packages_a_run_as_the_shipped_model_with_its_card(trained_run, tmp_path):
    dest = tmp_path / "shipped"
    assert main(["release", str(trained_run), "--dest", str(dest)]) == 0
    assert (dest / "RUN_ID").read_text().strip() == trained_run.name
    assert {p.name for p in dest.iterdir()} >= {"best.pt", "config.json", "metrics.jsonl", "eval_val.json",
                                                "eval_PublicTest.json", "predictions_PublicTest.csv", "CARD.md"}
    card = (dest / "CARD.md").read_text()
    test = read_json(trained_run / "eval_PublicTest.json")
    assert f"PublicTest accuracy **{test['accuracy']:.2%}**" in card and "## Calibration" in card
    flip = load_checkpoint(trained_run / "best.pt")["calibration"]["temperatures"]["flip"]
    assert f"flip {flip:.3f}" in card  # each TTA mode's own temperature
    assert "fer train --config config.json" in card
    released_config = read_config(dest)  # machine-specific places are left to FER_DATA / FER_RUNS_DIR
    assert released_config.data.path == "" and released_config.runs_dir == ""
    assert released_config.model == read_config(trained_run).model
    released = load_classifier(dest, backend="torch")  # a release is a run folder like any other
    faces = RunData.from_config(read_config(trained_run)).data.images[:16]
    original = Predictor.from_run(trained_run, tta=DEFAULT_TTA)  # the loader predicts with the default TTA
    assert np.allclose(released.predict_faces(faces), original.predict_faces(faces), atol=1e-6)
    assert main(["release", str(trained_run), "--dest", str(dest)]) == 0  # an earlier release is replaced
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    assert main(["release", str(trained_run), "--dest", str(tmp_path / "precious")]) == 2  # never another folder
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_release_refuses_an_unfinished_run_and_ships_only_a_matching_int8_export(trained_run, tmp_path):
    queued = create_run(read_config(trained_run), tmp_path / "runs")
    with pytest.raises(Exception, match="has not completed"):
        release_run(queued, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    copy = shutil.copytree(trained_run, tmp_path / "copy")
    shutil.copy(SHIPPED_RUN_DIR / "model.int8.onnx", copy / "model.int8.onnx")  # made from another best.pt
    assert "model.int8.onnx" not in {p.name for p in release_run(copy, tmp_path / "a").iterdir()}
    shutil.copy(SHIPPED_RUN_DIR / "best.pt", copy / "best.pt")  # now the export matches this checkpoint
    assert "model.int8.onnx" in {p.name for p in release_run(copy, tmp_path / "b").iterdir()}


@pytest.mark.slow
@pytest.mark.usefixtures("mediapipe_models")
def test_a_blendshape_run_goes_through_the_queue_like_any_other(small_folder, tmp_path):
    from fer.jobs.worker import wait

    done = subprocess.run([sys.executable, "-m", "fer", "blendshapes", "train", str(small_folder), "--C", "0.5",
                           "--limit", "70", "--queue", "--runs-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "queued" in done.stdout, done.stderr
    (run,) = [p for p in tmp_path.iterdir() if (p / "config.json").is_file()]
    assert wait([run], poll_s=0.5) == {run: "completed"}  # the worker trained it with `fer train --run`
    status = read_status(run)
    assert status["started_at"] and status["test_acc"] > 0 and (run / "classifier.json").is_file()
    assert "epoch 1/1" in (run / "train.log").read_text()  # through the same recorder as every run


def test_a_run_folder_from_before_the_package_layout_still_lists_loads_and_evaluates(small_folder, tmp_path):
    from fer.runs.store import list_runs
    from fer.training.evaluate import evaluate_run

    # The shipped run was trained and written on 2026-11-23, when fer was one flat folder of modules.
    old = shutil.copytree(SHIPPED_RUN_DIR, tmp_path / "runs" / (SHIPPED_RUN_DIR / "RUN_ID").read_text().strip())
    board = list_runs(tmp_path / "runs")
    row = board[board["run_id"] == old.name].iloc[0]
    assert row["status"] == "completed" and row["problem"] is None and row["test_acc"] > 0.6
    assert read_config(old).model.name == "plain_cnn"
    model = load_classifier(old.name, runs_dir=tmp_path / "runs", backend="torch")
    assert model.predict_faces(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
    result = evaluate_run(old, "test", data_path=str(small_folder))
    assert result["n"] == 105 and result["accuracy"] > 0.4 and (old / "eval_PublicTest.json").is_file()
    recorded = (old / "eval_PublicTest.json").read_bytes()
    flipped = evaluate_run(old, "test", data_path=str(small_folder), tta="flip")  # `fer eval --tta flip`
    assert flipped["tta"] == "flip" and flipped["n"] == 105 and flipped["accuracy"] > 0.4
    assert flipped["temperature"] != result["temperature"]  # the flip mode's own temperature
    assert (old / "eval_PublicTest.json").read_bytes() == recorded  # the record stays the model without TTA


def test_int8_weights_take_a_quarter_of_the_bytes_and_keep_the_shipped_models_predictions(trained_run, tmp_path):
    import torch

    from fer.core.errors import CheckpointError
    from fer.runs.checkpoint import INT8_SCALES, compact_checkpoint, load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(SHIPPED_RUN_DIR / "best.pt")
    torch.save(compact_checkpoint(ckpt), tmp_path / "best.pt")
    assert (tmp_path / "best.pt").stat().st_size < 0.3 * (SHIPPED_RUN_DIR / "best.pt").stat().st_size
    compact = load_checkpoint(tmp_path / "best.pt")  # still plain tensors: weights_only=True loads it
    assert compact[INT8_SCALES]
    for key, scale in compact[INT8_SCALES].items():  # every restored weight within half a step of the original
        held, original = compact["state_dict"][key], ckpt["state_dict"][key]
        assert held.dtype == torch.int8
        step = scale.view(-1, *[1] * (held.dim() - 1))
        assert ((held.float() * step - original.float()).abs() <= step / 2 + 1e-7).all()
    faces = RunData.from_config(read_config(trained_run)).data.images[:256]
    as_trained, as_stored = (Predictor.from_loaded(c, name="shipped", checkpoint="best", calibrated=False,
                                                   device="cpu", batch_size=128).predict_faces(faces).argmax(1)
                             for c in (ckpt, compact))
    assert (as_trained == as_stored).mean() >= 0.97
    first = next(iter(compact[INT8_SCALES]))
    broken = {**compact, INT8_SCALES: {**compact[INT8_SCALES], first: compact[INT8_SCALES][first][:-1]}}
    with pytest.raises(CheckpointError, match="do not match their scales"):
        model_from_checkpoint(broken)


def test_release_with_int8_weights_rescores_what_it_ships(trained_run, small_folder, tmp_path):
    dest = tmp_path / "shipped"
    assert main(["release", str(trained_run), "--int8-weights", "--data", str(small_folder),
                 "--dest", str(dest)]) == 0
    assert (dest / "best.pt").stat().st_size < 0.5 * (trained_run / "best.pt").stat().st_size
    assert "stored as int8" in (dest / "CARD.md").read_text()
    assert "model.int8.onnx" not in {p.name for p in dest.iterdir()}  # an export of the fp32 weights is stale
    released = load_classifier(dest, backend="torch", tta="none")
    run_data = RunData.from_config(read_config(trained_run), str(small_folder))
    index, _ = run_data.split("test")
    shipped = pd.read_csv(dest / "predictions_PublicTest.csv")
    predicted = released.predict_faces(run_data.data.images[index]).argmax(1)
    names = read_json(dest / "eval_PublicTest.json")["class_names"]
    assert [names[i] for i in predicted] == shipped["pred"].tolist()  # the records are of the int8 weights
    assert read_json(dest / "eval_val.json")["temperature"] == read_json(dest / "eval_PublicTest.json")["temperature"]
