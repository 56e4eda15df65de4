"""Exporting a run's model to ONNX: fp32, or int8 calibrated on the run's validation faces.

`export_onnx` writes a checkpoint's model with a dynamic batch axis and its metadata (class names,
preprocessing, temperature, the source checkpoint and its SHA-256), which is all `OnnxPredictor`
needs. With `int8_faces`, the export is quantised to int8 (static, per channel, QDQ) with activation
ranges calibrated on those faces: about 3x faster on a CPU (benchmarks/onnx_speed.py).
`export_into_run` is `fer export RUN`: the export lands beside the run's best.pt, where the `auto`
engine finds it. `cached_export` makes the fp32 export of a checkpoint once, under the cache folder.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from fer.core.constants import Preprocessing
from fer.core.files import atomic_write, cache_dir, sha256_of
from fer.data import RunData
from fer.data.preprocess import faces_to_model_input
from fer.inference.onnx import FP32_FILE, INPUT, INT8_FILE, OUTPUT, require_onnx
from fer.runs.checkpoint import load_checkpoint, model_from_checkpoint, preprocessing_from_checkpoint
from fer.runs.store import read_config
from fer.runs.writer import save_model_export

OPSET = 18
CALIBRATION_FACES = 512  # enough for stable int8 activation ranges; more changes accuracy by < 0.1 point


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = OPSET,
                int8_faces: Optional[np.ndarray] = None) -> Path:
    """Export a checkpoint's model to `out` (dynamic batch, opset `opset`) with its metadata; int8 when
    calibration faces (uint8 N×48×48, never a test split) are given."""
    onnx = require_onnx("onnx")
    require_onnx("onnxscript")  # the exporter's dependency
    checkpoint, out = Path(checkpoint), Path(out)
    ckpt = load_checkpoint(checkpoint)
    model, spec = model_from_checkpoint(ckpt).eval(), preprocessing_from_checkpoint(ckpt)
    example = torch.zeros(2, spec.in_chans, spec.input_size, spec.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(model, (example,), input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                                dynamic_shapes=({0: batch},),
                                dynamo=True, verbose=False)
    program.optimize()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model.onnx"
        program.save(str(fp32))
        final = _quantize_int8(fp32, Path(tmp), int8_faces, spec) if int8_faces is not None else fp32
        proto = onnx.load(str(final))
    calibration = ckpt.get("calibration") if isinstance(ckpt.get("calibration"), dict) else {}
    meta = {"fer.class_names": json.dumps(list(ckpt["class_names"])),
            "fer.preprocessing": json.dumps(dict(ckpt["preprocessing"])),
            "fer.temperature": str(float(calibration.get("temperature", 1.0))),
            "fer.temperatures": json.dumps({k: float(v) for k, v in calibration.get("temperatures", {}).items()}),
            "fer.model": json.dumps({"name": ckpt["model"]["name"], "epoch": int(ckpt.get("epoch", 0))}),
            "fer.source": f"{checkpoint.resolve().parent.name}/{checkpoint.name}",
            "fer.source_sha256": sha256_of(checkpoint),
            "fer.opset": str(opset), "fer.precision": "int8" if int8_faces is not None else "fp32",
            **({"fer.int8_calibration_faces": str(len(int8_faces))} if int8_faces is not None else {})}
    onnx.helper.set_model_props(proto, meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda f: f.write(proto.SerializeToString()))
    return out


def _quantize_int8(fp32: Path, tmp: Path, faces: np.ndarray, spec: Preprocessing) -> Path:
    """Static int8 (QDQ, per-channel weights, uint8 activations) calibrated on `faces`."""
    require_onnx("onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(faces) == 0:
        raise ValueError("int8 quantisation needs calibration faces")
    inputs = faces_to_model_input(faces, spec).numpy()

    class Faces(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{INPUT: inputs[i:i + 64]} for i in range(0, len(inputs), 64)])

        def get_next(self):
            return next(self.batches, None)

    prepared, int8 = tmp / "prepared.onnx", tmp / "int8.onnx"
    try:  # shape inference and folding, as ORT recommends before QDQ
        quant_pre_process(str(fp32), str(prepared))
    except Exception:  # noqa: BLE001  ORT's symbolic inference knows no ReduceLogSumExp (an ensemble's mean)
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)  # ONNX's own inference suffices
    # Dynamic quantisation is about 5x slower than fp32 here (ConvInteger kernels; benchmarks/onnx_speed.py).
    quantize_static(str(prepared), str(int8), Faces(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    return int8


def calibration_faces(run_dir: Path, data_path: Optional[str] = None, n: int = CALIBRATION_FACES) -> np.ndarray:
    """Up to `n` faces of the run's validation split (seeded), for int8 activation ranges; never a test split."""
    return RunData.from_config(read_config(run_dir), data_path).calibration_faces(n)


def export_into_run(run_dir: Path, checkpoint: str = "best", int8: bool = False,
                    data_path: Optional[str] = None) -> Path:
    """Export a run's checkpoint as `model.onnx` or `model.int8.onnx` in its folder (what `auto` picks up)."""
    faces = calibration_faces(run_dir, data_path) if int8 else None
    with tempfile.TemporaryDirectory() as tmp:
        out = export_onnx(run_dir / f"{checkpoint}.pt", Path(tmp) / "model.onnx", int8_faces=faces)
        return save_model_export(run_dir, INT8_FILE if int8 else FP32_FILE, out.read_bytes())


def cached_export(checkpoint: Path, digest: str) -> Path:
    """An fp32 ONNX export of `checkpoint` (whose SHA-256 is `digest`), made once under the cache folder."""
    out = cache_dir() / "onnx" / f"{digest[:24]}.onnx"
    if not out.is_file():
        export_onnx(checkpoint, out)
    return out
