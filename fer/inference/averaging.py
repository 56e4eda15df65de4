"""Averaging predictions: over test-time views of each face (TTA) and over several models (`Ensemble`).

Torch-free, so the ONNX Runtime predictor and the PyTorch one cut the same views from the same uint8
faces, before the one preprocessing (as training augments before it), and average the same way.
Views are averaged as logits, so one temperature fitted on those averaged logits (per TTA mode, at the
end of training) calibrates the predictor exactly as it is used. `flip` is the default wherever a model
predicts: on validation it beats `none` by 1.3 points at 1.6x the int8 cost, and `tencrop` adds nothing
there for 6x (benchmarks/tta_choice.py; docs/benchmarks.md).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from fer.core.constants import TTA_MODES
from fer.inference.pipeline import Classifier

DEFAULT_TTA = "flip"
TEN_CROP = 44  # FER2013 studies cut 44×44 crops from the 48×48 faces


def check_tta(tta: str) -> str:
    """`tta` itself, or a ValueError naming the choices."""
    if tta not in TTA_MODES:
        raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
    return tta


def test_time_views(faces: np.ndarray, tta: str, crop: int = TEN_CROP) -> np.ndarray:
    """uint8 N×1×H×W faces → V·N×1×h×w views, view-major: none (V=1), flip (+mirror, V=2) or
    tencrop (four corners and the centre, each also mirrored, V=10)."""
    if check_tta(tta) == "none":
        return faces
    if tta == "flip":
        return np.concatenate([faces, faces[..., ::-1]])
    size = faces.shape[-1]
    starts = [(0, 0), (0, size - crop), (size - crop, 0), (size - crop, size - crop),
              ((size - crop) // 2, (size - crop) // 2)]
    crops = [faces[..., y:y + crop, x:x + crop] for y, x in starts]
    return np.ascontiguousarray(np.concatenate(crops + [c[..., ::-1] for c in crops]))


def logits_over_views(faces: np.ndarray, tta: str, batch_size: int, n_classes: int,
                      logits_of: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """uint8 N×48×48 faces → N×C logits: each batch's views through `logits_of` (uint8 views → their
    logits), averaged per face."""
    if len(faces) == 0:
        return np.zeros((0, n_classes), dtype=np.float32)
    faces = np.ascontiguousarray(faces, dtype=np.uint8)[:, None]
    out = []
    for start in range(0, len(faces), batch_size):
        chunk = faces[start:start + batch_size]
        logits = np.asarray(logits_of(np.ascontiguousarray(test_time_views(chunk, tta))), dtype=np.float32)
        out.append(logits.reshape(-1, len(chunk), n_classes).mean(0))
    return np.concatenate(out).astype(np.float32)


def calibrated_softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / T) in float32: the probabilities of (averaged) logits under a fitted temperature."""
    return softmax(logits / np.float32(temperature))


def temperature_for(calibration: object, tta: str) -> float:
    """The temperature a checkpoint's calibration record holds for `tta` (1.0 when it holds none).

    Records from before per-mode fitting hold one temperature, fitted without TTA: it is the best
    there is for every mode until `fer calibrate` refits the run."""
    if not isinstance(calibration, dict):
        return 1.0
    by_mode = calibration.get("temperatures")
    if isinstance(by_mode, dict) and tta in by_mode:
        return float(by_mode[tta])
    return float(calibration.get("temperature", 1.0))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits."""
    z = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class Ensemble:
    """Several classifiers with the same classes; probabilities are averaged."""

    def __init__(self, members: Sequence[Classifier]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one classifier")
        names = list(members[0].class_names)
        if any(list(m.class_names) != names for m in members):
            raise ValueError("ensemble members must share the same class names in the same order")
        self.members = list(members)
        self.class_names, self.name = names, "+".join(m.name for m in members)
        self.backend = "+".join(dict.fromkeys(m.backend for m in members))
        # Grad-CAM explains the first member (when it is an image model).
        self.explainable = members[0].explainable
        self.model = members[0].model if self.explainable else None
        self.spec = members[0].spec if self.explainable else None

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """The mean of every member's probabilities."""
        return self.combine([m.predict_faces(faces) for m in self.members])

    @staticmethod
    def combine(member_probabilities: Sequence[np.ndarray]) -> np.ndarray:
        """The ensemble's probabilities from its members' (for callers that already hold them)."""
        return np.mean(member_probabilities, axis=0).astype(np.float32)
