"""ONNX export and the ONNX Runtime predictor: every registered model exports, and ONNX Runtime's
probabilities agree with PyTorch's to 1e-4 on real FER2013 faces (TTA and temperature included)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer.cli.main import main
from fer.config import load_config
from fer.core.constants import CLASS_NAMES
from fer.inference.predictor import Predictor
from fer.models import MODELS, create_model
from fer.runs.checkpoint import checkpoint_payload, load_checkpoint
from fer.runs.writer import save_checkpoint

pytest.importorskip("onnxruntime")  # the `onnx` extra (installed by the dev extra, so CI always runs these)
from fer.inference.onnx import OnnxPredictor
from fer.inference.export import OPSET, export_onnx  # noqa: E402


@pytest.mark.parametrize("name", MODELS.names())
def test_every_registered_model_exports_and_agrees(name, small_data, tmp_path):
    overrides = [f"model.name={name}"] + (["model.kwargs={pretrained: false}"] if name.startswith("resnet") else [])
    cfg = load_config(None, overrides)
    spec = cfg.preprocessing()
    model = create_model(name, num_classes=len(CLASS_NAMES), in_chans=spec.in_chans, **cfg.model.kwargs)
    save_checkpoint(tmp_path, "best.pt", checkpoint_payload(model, cfg.to_dict(), CLASS_NAMES, spec, 1, {}))
    export_onnx(tmp_path / "best.pt", tmp_path / "model.onnx")
    faces = small_data.images[:9]
    onnx_probs = OnnxPredictor(tmp_path / "model.onnx").predict_faces(faces)
    torch_probs = Predictor.from_checkpoint(tmp_path / "best.pt").predict_faces(faces)
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4


def test_a_trained_run_exports_with_its_metadata_and_matches_on_real_faces(trained_run, small_data, tmp_path):
    out = tmp_path / "artifacts.onnx"
    assert main(["export", str(trained_run), "--onnx", str(out)]) == 0
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    ckpt = load_checkpoint(trained_run / "best.pt")
    assert json.loads(meta["fer.class_names"]) == list(ckpt["class_names"]) and meta["fer.opset"] == str(OPSET)
    assert float(meta["fer.temperature"]) == pytest.approx(ckpt["calibration"]["temperature"])
    assert json.loads(meta["fer.temperatures"]) == pytest.approx(ckpt["calibration"]["temperatures"])
    for tta in ("none", "flip", "tencrop"):
        onnx_model, torch_model = OnnxPredictor(out, tta=tta, batch_size=37), Predictor.from_run(trained_run, tta=tta)
        assert onnx_model.class_names == torch_model.class_names and onnx_model.spec == torch_model.spec
        assert onnx_model.temperature == pytest.approx(ckpt["calibration"]["temperatures"][tta])
        faces = small_data.images  # 385 real faces: several batches of 37 and a short last one
        diff = np.abs(onnx_model.predict_faces(faces) - torch_model.predict_faces(faces)).max()
        assert diff < 1e-4, (tta, diff)
    assert OnnxPredictor(out).predict_faces(small_data.images[:1]).shape == (1, 7)  # batch 1: the axis is dynamic


def test_export_without_the_extra_says_how_to_install_it(trained_run, tmp_path, monkeypatch, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", str(trained_run), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "pip install 'fer-studio[onnx]'" in capsys.readouterr().err


def test_int8_export_into_the_run_is_what_auto_picks_until_the_checkpoint_changes(trained_run, small_folder,
                                                                                  small_data, tmp_path, capsys):
    import shutil

    from fer.inference.classifiers import load_classifier
    from fer.core.files import sha256_of
    from fer.inference.onnx import INT8_FILE

    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    assert main(["export", str(run), "--int8", "--data", str(small_folder)]) == 0
    assert "int8" in capsys.readouterr().out
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(run / INT8_FILE)).metadata_props}
    assert meta["fer.precision"] == "int8" and meta["fer.source_sha256"] == sha256_of(run / "best.pt")
    assert any(n.op_type == "QuantizeLinear" for n in onnx.load(str(run / INT8_FILE)).graph.node)
    auto = load_classifier(run, backend="auto")
    torch_model = load_classifier(run)
    assert (auto.backend, torch_model.backend) == ("onnxruntime-int8", "torch")
    int8_probs, fp32_probs = auto.predict_faces(small_data.images), torch_model.predict_faces(small_data.images)
    # int8 costs little: the same answer for nearly every real face, probabilities within a few points.
    assert (int8_probs.argmax(1) == fp32_probs.argmax(1)).mean() >= 0.9
    assert np.abs(int8_probs - fp32_probs).mean() < 0.02
    # A retrained best.pt makes the int8 export stale: auto falls back to a fresh fp32 export of the new file.
    ckpt = load_checkpoint(run / "best.pt")
    save_checkpoint(run, "best.pt", {**ckpt, "calibration": {"temperature": 2.0, "fitted_on": "val"}})
    assert load_classifier(run, backend="auto").backend == "onnxruntime-fp32"


def test_auto_uses_pytorch_without_onnxruntime_and_the_shipped_int8_model_with_it(monkeypatch, full_data):
    import sys

    from fer.inference.classifiers import load_classifier
    from fer.core.files import sha256_of
    from fer.inference.onnx import INT8_FILE
    from fer.runs.store import SHIPPED_RUN_DIR

    shipped = load_classifier("default", backend="auto", threads=1)
    assert shipped.backend == "onnxruntime-int8"
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(SHIPPED_RUN_DIR / INT8_FILE)).metadata_props}
    assert meta["fer.source_sha256"] == sha256_of(SHIPPED_RUN_DIR / "best.pt")  # shipped with this checkpoint
    faces = full_data.images[full_data.split_indices("PublicTest")[:600]]
    agree = (shipped.predict_faces(faces).argmax(1) == load_classifier("default").predict_faces(faces).argmax(1))
    assert agree.mean() >= 0.97
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert load_classifier("default", backend="auto").backend == "torch"


def test_a_photo_prediction_on_onnx_runtime_loads_no_pytorch_pandas_or_scikit_learn(tmp_path):
    """`fer predict photo.jpg` on the shipped int8 model: a first result in about a second, not PyTorch's start-up."""
    import subprocess
    import sys

    import cv2
    from skimage import data as skdata

    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    probe = ("import sys; from fer.cli.main import main; code = main(['predict', sys.argv[1]]); "
             "print(code, sorted(m for m in ('torch', 'torchvision', 'pandas', 'sklearn', 'scipy', 'pytorch_grad_cam')"
             " if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe, str(photo)], capture_output=True, text=True, timeout=300,
                          env={**__import__("os").environ, "FER_RUNS_DIR": str(tmp_path / "runs")})
    assert done.returncode == 0, done.stderr[-2000:]
    *prediction, last = done.stdout.strip().splitlines()
    assert last == "0 []", done.stdout
    assert "1 face(s)" in prediction[0] and "happy" in prediction[1], done.stdout  # the astronaut smiles
