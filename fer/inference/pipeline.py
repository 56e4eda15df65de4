"""The image pipeline shared by photos, the webcam and `fer predict`: detect → crop → classify.

It works with any classifier that has `name`, `class_names` and `predict_faces(uint8 N×48×48) →
N×C probabilities`: the CNN `Predictor` (which applies `to_model_input`, the preprocessing shared
with evaluation), an `Ensemble`, or the MediaPipe-feature `BlendshapePredictor`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Protocol, Sequence, runtime_checkable

import numpy as np

from fer.inference.faces import Face, FaceDetector, crop_face, to_gray


@runtime_checkable
class Classifier(Protocol):
    """What the pipeline, evaluation and the pages need of a model."""

    name: str
    class_names: Sequence[str]
    backend: str  # what computes it: "torch", "onnxruntime-int8", "features", or an ensemble's joined by "+"
    explainable: bool  # whether Grad-CAM can explain it: it holds a PyTorch image model (`model`, `spec`)

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 faces → N×C probabilities."""


class NoFaceFound(ValueError):
    """No face was detected; pass whole_image=True to classify the whole image as one face.

    The message names no option: the CLI and the dashboard each say how to do that in their own terms.
    """


@dataclass
class FacePrediction:
    box: tuple  # x, y, width, height
    probabilities: Dict[str, float]
    label: str
    confidence: float
    detector_score: float = 1.0
    face: Optional[np.ndarray] = field(default=None, repr=False)  # the 48×48 uint8 crop the model saw

    def to_dict(self) -> dict:
        """JSON-friendly form (without the crop)."""
        return {"box": list(self.box), "label": self.label, "confidence": self.confidence,
                "detector_score": self.detector_score, "probabilities": self.probabilities}


@dataclass
class ImagePrediction:
    faces: List[FacePrediction]
    width: int
    height: int
    detector: str
    note: str = ""  # e.g. the detector fallback, or that the whole image was used

    def in_reading_order(self) -> "ImagePrediction":
        """The same prediction with its faces numbered as a reader scans a photo: rows top to bottom, each
        left to right (a face joins a row when it spans at least half of the row's first face, vertically)."""
        def same_row(a: FacePrediction, b: FacePrediction) -> bool:
            overlap = min(a.box[1] + a.box[3], b.box[1] + b.box[3]) - max(a.box[1], b.box[1])
            return overlap >= 0.5 * min(a.box[3], b.box[3])

        rows: List[List[FacePrediction]] = []
        for face in sorted(self.faces, key=lambda f: f.box[1]):
            row = next((r for r in rows if same_row(r[0], face)), None)
            if row is None:
                rows.append([face])
            else:
                row.append(face)
        ordered = [f for row in rows for f in sorted(row, key=lambda f: f.box[0])]
        return ImagePrediction(ordered, self.width, self.height, self.detector, self.note)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"width": self.width, "height": self.height, "detector": self.detector, "note": self.note,
                "faces": [f.to_dict() for f in self.faces]}


def face_prediction(class_names: Sequence[str], face: Face, probs: np.ndarray, crop: np.ndarray) -> FacePrediction:
    """One face's result: its box, every class probability, and the top class."""
    top = int(probs.argmax())
    return FacePrediction(face.box, {c: float(p) for c, p in zip(class_names, probs)}, class_names[top],
                          float(probs[top]), float(face.score), crop)


def predict_image(classifier: Classifier, rgb: np.ndarray, detector: FaceDetector, margin: float = 0.15,
                  align: bool = False, whole_image: bool = False) -> ImagePrediction:
    """Every detected face (largest first) with its probabilities; raises NoFaceFound unless `whole_image`."""
    height, width = rgb.shape[:2]
    faces: List[Face] = detector.detect(rgb)
    note = detector.note
    use_margin = margin
    if not faces or detector.name == "none":
        if not faces and not whole_image:
            raise NoFaceFound("no face found (the whole image can be classified as one face instead)")
        faces, use_margin = [Face((0, 0, width, height))], 0.0
        if detector.name != "none":
            note = (note + " " if note else "") + "No face found: the whole image was classified as one face."
    gray = to_gray(rgb)
    crops = np.stack([crop_face(gray, f, use_margin, align) for f in faces])
    probs = classifier.predict_faces(crops)
    return ImagePrediction([face_prediction(classifier.class_names, f, p, c) for f, p, c in zip(faces, probs, crops)],
                           width, height, detector.name, note)
