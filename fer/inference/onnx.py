"""Running a run's ONNX export with ONNX Runtime: `OnnxPredictor`, the same classifier as `Predictor` without PyTorch.

The export (`fer.inference.export`) carries the class names, preprocessing, temperature and source
checkpoint (with its SHA-256) in its metadata, so the predictor needs nothing but the .onnx file.
Inputs still go through the one `to_model_input` (its NumPy path), and test-time views are cut and
averaged by the same `fer.inference.averaging` as for the PyTorch model, so both see identical inputs.
Nothing here imports PyTorch: `fer predict` on the shipped int8 export starts without it. Which engine serves a run is chosen in
`fer.inference.classifiers`. ONNX Runtime is an optional extra (`pip install 'fer-studio[onnx]'`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict

import numpy as np

from fer.core.constants import Preprocessing
from fer.core.errors import UserError
from fer.core.extras import available, require
from fer.data.preprocess import to_model_input
from fer.inference.averaging import calibrated_softmax, check_tta, logits_over_views, temperature_for

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


class OnnxPredictor:
    """An ONNX export run by ONNX Runtime (CPU): the `Classifier` a `Predictor` is, same inputs, same TTA."""

    backend: str
    explainable = False  # no PyTorch module: Grad-CAM needs the run's checkpoint
    model = None

    def __init__(self, path: str | Path, tta: str = "none", batch_size: int = 64, threads: int = 0,
                 name: str = "") -> None:
        ort = require_onnx("onnxruntime")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.metadata: Dict[str, str] = self.session.get_modelmeta().custom_metadata_map
        meta = self.metadata
        self.class_names = list(json.loads(meta["fer.class_names"]))
        self.spec = Preprocessing(**json.loads(meta["fer.preprocessing"]))
        self.name = name or Path(path).stem
        self.tta, self.batch_size = check_tta(tta), batch_size
        self.provenance = {"checkpoint": "onnx", "precision": meta.get("fer.precision", "fp32")}
        temperatures = json.loads(meta.get("fer.temperatures", "{}"))
        self.temperature = temperature_for({"temperature": float(meta.get("fer.temperature", 1.0)),
                                            "temperatures": temperatures}, self.tta)
        self.backend = f"onnxruntime-{meta.get('fer.precision', 'fp32')}"

    def logits(self, views: np.ndarray) -> np.ndarray:
        """uint8 N×1×H×W views → N×C logits through the one preprocessing and ONNX Runtime."""
        x = np.ascontiguousarray(to_model_input(views, self.spec), dtype=np.float32)
        return self.session.run([OUTPUT], {INPUT: x})[0]

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 faces → N×C probabilities (float32)."""
        return calibrated_softmax(self.logits_of_faces(faces), self.temperature)

    def logits_of_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 faces → N×C logits, averaged over the TTA views (before any temperature)."""
        return logits_over_views(faces, self.tta, self.batch_size, len(self.class_names), self.logits)
