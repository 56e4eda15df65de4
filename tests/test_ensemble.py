"""Ensembles of trained runs as one run: `fer ensemble`, the `ensemble` model, its calibration and export."""
import shutil

import numpy as np
import pytest
import torch

from fer.cli.main import main
from fer.core.files import read_json
from fer.data import RunData
from fer.inference.averaging import calibrated_softmax
from fer.inference.classifiers import available_models, load_classifier
from fer.inference.predictor import Predictor
from fer.models import create_model
from fer.models.ensemble import AveragedEnsemble
from fer.runs.checkpoint import load_checkpoint
from fer.runs.store import read_config, read_status


def test_the_ensemble_model_averages_calibrated_probabilities():
    torch.manual_seed(0)
    a, b = create_model("plain_cnn").eval(), create_model("plain_cnn").eval()
    x = torch.randn(5, 1, 48, 48)
    with torch.no_grad():
        out = AveragedEnsemble([a, b], [2.0, 0.5])(x)
        expected = (torch.softmax(a(x) / 2.0, 1) + torch.softmax(b(x) / 0.5, 1)) / 2
        assert torch.allclose(out.exp(), expected, atol=1e-6)
        assert torch.allclose(AveragedEnsemble([a, a], [1.5, 1.5])(x), torch.log_softmax(a(x) / 1.5, 1), atol=1e-5)
    with pytest.raises(ValueError, match="other than ensemble"):
        create_model("ensemble", members=[{"name": "ensemble"}])
    with pytest.raises(ValueError, match="one temperature"):
        create_model("ensemble", temperatures=[1.0])


@pytest.fixture(scope="module")
def member_runs(trained_run, small_folder, tiny_overrides, tmp_path_factory):
    """The shared tiny run and a second seed on the same validation split, in one runs folder."""
    from fer.config import load_config
    from fer.training.fit import train

    runs = tmp_path_factory.mktemp("ensemble_runs")
    first = runs / trained_run.name
    shutil.copytree(trained_run, first)
    second = train(load_config(None, tiny_overrides(small_folder, runs, 3, "name=second", "train.seed=1",
                                                    "data.split_seed=0", "optim.lr=0.003")))
    return runs, first, second


def test_fer_ensemble_makes_a_calibrated_run_every_loader_can_pick(member_runs, capsys):
    runs, first, second = member_runs
    assert main(["ensemble", first.name, second.name, "--name", "pair", "--runs-dir", str(runs), "--quiet"]) == 0
    (ens,) = [p for p in runs.iterdir() if p.name.split("-")[2:-1] == ["pair"]]
    status, ckpt = read_status(ens), load_checkpoint(ens / "best.pt")
    assert status["state"] == "completed" and ckpt["model"]["name"] == "ensemble"
    assert ckpt["model"]["kwargs"]["runs"] == [first.name, second.name]
    assert set(ckpt["calibration"]["temperatures"]) == {"none", "flip", "tencrop"}
    assert ens.name in available_models(runs)  # so every page's model picker offers it
    # The run's own numbers are the ensemble's: members calibrated, averaged, then its temperature.
    cfg = read_config(ens)
    run_data = RunData.from_config(cfg)
    assert np.array_equal(run_data.splits.val, RunData.from_config(read_config(first)).splits.val)
    faces = run_data.data.images[run_data.splits.test]
    members = [Predictor.from_run(run, tta="none").predict_faces(faces) for run in (first, second)]
    expected = calibrated_softmax(np.log(np.mean(members, axis=0)), ckpt["calibration"]["temperatures"]["none"])
    ensemble = load_classifier(ens, runs, backend="torch", tta="none")
    assert np.allclose(ensemble.predict_faces(faces), expected, atol=1e-5)
    test = read_json(ens / "eval_PublicTest.json")
    assert test["accuracy"] == pytest.approx(float((expected.argmax(1) == run_data.data.labels[
        run_data.splits.test]).mean())) == status["test_acc"]
    assert load_classifier(ens, runs).tta == "flip"  # predicting uses the default TTA, like any run
    capsys.readouterr()
    assert main(["eval", ens.name, "--runs-dir", str(runs)]) == 0
    # An ensemble's checkpoint has no epoch of its own: `fer eval` names the runs it averages instead.
    assert f"ensemble of 2 runs: {first.name}, {second.name}" in capsys.readouterr().out


def test_an_ensemble_exports_to_one_onnx_graph_that_agrees(member_runs, tmp_path):
    pytest.importorskip("onnxruntime")
    runs, first, second = member_runs
    assert main(["ensemble", first.name, second.name, "--name", "onnx-pair", "--runs-dir", str(runs), "--quiet"]) == 0
    (ens,) = [p for p in runs.iterdir() if p.name.split("-")[2:-1] == ["onnx", "pair"]]
    assert main(["export", ens.name, "--runs-dir", str(runs), "--onnx", str(tmp_path / "pair.onnx")]) == 0
    from fer.inference.onnx import OnnxPredictor

    onnx_model = OnnxPredictor(tmp_path / "pair.onnx", tta="flip")
    torch_model = load_classifier(ens, runs, backend="torch", tta="flip")
    faces = RunData.from_config(read_config(ens)).data.images[:32]
    assert np.allclose(onnx_model.predict_faces(faces), torch_model.predict_faces(faces), atol=1e-4)
    # int8 too (ONNX Runtime's symbolic shape inference knows no ReduceLogSumExp, the ensemble's mean)
    assert main(["export", ens.name, "--runs-dir", str(runs), "--int8"]) == 0
    int8 = OnnxPredictor(ens / "model.int8.onnx", tta="flip").predict_faces(faces)
    assert np.abs(int8 - torch_model.predict_faces(faces)).max() < 0.1


def test_members_validated_on_different_faces_are_refused_before_any_folder(member_runs, small_folder, tiny_overrides,
                                                                           tmp_path, capsys):
    from fer.config import load_config
    from fer.training.fit import train

    runs, first, _ = member_runs
    other = train(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=other", "train.seed=2")))
    before = sorted(p.name for p in runs.iterdir())
    assert main(["ensemble", str(first), str(other), "--runs-dir", str(runs)]) == 2
    assert "validated on different faces" in capsys.readouterr().err
    assert main(["ensemble", str(first), "--runs-dir", str(runs)]) == 2
    assert "2 to 8 runs" in capsys.readouterr().err
    assert sorted(p.name for p in runs.iterdir()) == before


def test_the_runs_page_queues_an_ensemble_of_the_compared_runs(member_runs, open_page, small_folder):
    import time

    runs, first, second = member_runs
    before = {p.name for p in runs.iterdir()}
    at = open_page("runs", runs_dir=runs, data_path=small_folder)
    labels = {read_config(p).name: p for p in (first, second)}
    options = at.multiselect(key="runs_compare").options
    chosen = [o for o in options if o.split(" ")[0] in labels][:2]
    at.multiselect(key="runs_compare").set_value(chosen).run()
    at.text_input(key="runs_ensemble_name").set_value("from-the-page")
    at.button(key="runs_ensemble_queue").click().run()
    assert not at.exception and not at.error and "Queued" in at.toast[0].value
    (ens,) = [runs / n for n in {p.name for p in runs.iterdir()} - before if "from-the-page" in n]
    deadline = time.time() + 180
    while read_status(ens).get("state") not in ("completed", "failed") and time.time() < deadline:
        time.sleep(1)
    assert read_status(ens)["state"] == "completed"  # assembled and scored by the background worker
    assert sorted(read_config(ens).model.kwargs["runs"]) == sorted([first.name, second.name])
