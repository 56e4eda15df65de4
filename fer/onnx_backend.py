"""ONNX export of a run's model, and a predictor that runs the export with ONNX Runtime.

`export_onnx` writes the checkpoint's model as ONNX with a dynamic batch axis; the class names,
preprocessing, temperature and source run travel in the model's metadata, so `OnnxPredictor.load`
needs nothing but the .onnx file. Inputs still go through the one `to_model_input`, so ONNX and
PyTorch see identical tensors. ONNX Runtime is an optional extra (`pip install 'fer-studio[onnx]'`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch

from fer.checkpoint import load_checkpoint, model_from_checkpoint, preprocessing_from_checkpoint
from fer.constants import Preprocessing
from fer.errors import UserError
from fer.predictor import Predictor

OPSET = 18
ONNX_INSTALL = "pip install 'fer-studio[onnx]'"
INPUT, OUTPUT = "faces", "logits"


class OnnxUnavailable(UserError):
    """onnx / onnxruntime are not installed."""


def _require(module: str):
    try:
        return __import__(module)
    except ImportError:
        raise OnnxUnavailable(f"ONNX export and inference need {module}, an optional extra: {ONNX_INSTALL}") from None


def export_onnx(checkpoint: str | Path, out: str | Path, opset: int = OPSET) -> Path:
    """Export a checkpoint's model to `out` (dynamic batch, opset `opset`) with its metadata."""
    onnx = _require("onnx")
    _require("onnxscript")  # the exporter's dependency
    checkpoint, out = Path(checkpoint), Path(out)
    ckpt = load_checkpoint(checkpoint)
    model, spec = model_from_checkpoint(ckpt).eval(), preprocessing_from_checkpoint(ckpt)
    example = torch.zeros(2, spec.in_chans, spec.input_size, spec.input_size)
    batch = torch.export.Dim("batch", min=1, max=4096)
    program = torch.onnx.export(model, (example,), input_names=[INPUT], output_names=[OUTPUT], opset_version=opset,
                                dynamic_shapes=({0: batch},),
                                dynamo=True, verbose=False)
    program.optimize()
    program.save(str(out))
    proto = onnx.load(str(out))
    calibration = ckpt.get("calibration") if isinstance(ckpt.get("calibration"), dict) else {}
    meta = {"fer.class_names": json.dumps(list(ckpt["class_names"])),
            "fer.preprocessing": json.dumps(dict(ckpt["preprocessing"])),
            "fer.temperature": str(float(calibration.get("temperature", 1.0))),
            "fer.model": json.dumps({"name": ckpt["model"]["name"], "epoch": int(ckpt.get("epoch", 0))}),
            "fer.source": str(checkpoint.resolve()), "fer.opset": str(opset)}
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(out))
    return out


class OnnxPredictor(Predictor):
    """A Predictor whose model is an ONNX export run by ONNX Runtime (CPU); same inputs, same TTA."""

    def __init__(self, path: str | Path, tta: str = "none", batch_size: int = 64, threads: int = 0) -> None:
        ort = _require("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        meta: Dict[str, Any] = self.session.get_modelmeta().custom_metadata_map
        super().__init__(torch.nn.Identity(), json.loads(meta["fer.class_names"]),
                         Preprocessing(**json.loads(meta["fer.preprocessing"])), name=Path(path).stem, tta=tta,
                         batch_size=batch_size, provenance={"checkpoint": "onnx"},
                         temperature=float(meta.get("fer.temperature", 1.0)))
        self.model = None  # no PyTorch module: Grad-CAM needs the run's checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs → logits through ONNX Runtime."""
        out = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)
