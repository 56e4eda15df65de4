"""Running a run's ONNX export with ONNX Runtime: `OnnxPredictor`, a `Predictor` whose model is the export.

The export (`fer.inference.export`) carries the class names, preprocessing, temperature and source
checkpoint (with its SHA-256) in its metadata, so the predictor needs nothing but the .onnx file.
Inputs still go through the one `to_model_input`, so ONNX and PyTorch see identical tensors; test-time
augmentation and calibration work as for the PyTorch model. Which engine serves a run is chosen in
`fer.inference.classifiers`. ONNX Runtime is an optional extra (`pip install 'fer-studio[onnx]'`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np
import torch

from fer.core.constants import Preprocessing
from fer.core.errors import UserError
from fer.core.extras import available, require
from fer.inference.predictor import Predictor

INPUT, OUTPUT = "faces", "logits"
INT8_FILE, FP32_FILE = "model.int8.onnx", "model.onnx"  # exports kept beside a run's best.pt


class OnnxUnavailable(UserError):
    """onnx / onnxruntime are not installed."""


def require_onnx(module: str):
    """`module` (onnx, onnxscript or onnxruntime), or OnnxUnavailable saying how to install it."""
    return require(module, "onnx", f"ONNX export and inference need {module}", OnnxUnavailable)


def onnx_available() -> bool:
    """Whether ONNX Runtime is installed (the `onnx` extra)."""
    return available("onnxruntime")


class OnnxPredictor(Predictor):
    """A Predictor whose model is an ONNX export run by ONNX Runtime (CPU); same inputs, same TTA."""

    def __init__(self, path: str | Path, tta: str = "none", batch_size: int = 64, threads: int = 0,
                 name: str = "") -> None:
        ort = require_onnx("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.metadata: Dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        meta = self.metadata
        super().__init__(torch.nn.Identity(), json.loads(meta["fer.class_names"]),
                         Preprocessing(**json.loads(meta["fer.preprocessing"])), name=name or Path(path).stem,
                         tta=tta, batch_size=batch_size,
                         provenance={"checkpoint": "onnx", "precision": meta.get("fer.precision", "fp32")},
                         temperature=float(meta.get("fer.temperature", 1.0)))
        self.model = None  # no PyTorch module: Grad-CAM needs the run's checkpoint
        self.backend = f"onnxruntime-{meta.get('fer.precision', 'fp32')}"
        self.explainable = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs → logits through ONNX Runtime."""
        out = self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x.numpy(), dtype=np.float32)})[0]
        return torch.from_numpy(out)
