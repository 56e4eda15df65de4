"""Predict emotions for faces in photos and frames, with a model rebuilt from its checkpoint alone.

    predictor = Predictor.from_run("plain-cnn-default")      # or from_checkpoint(path), or default()
    result = predictor.predict_image(load_image("photo.jpg"))
    for face in result.faces: print(face.box, face.label, face.confidence)

Faces go through the same `to_model_input` as evaluation. `tta` averages over a horizontal flip
("flip") or the ten 44×44 corner/centre crops and their flips ("tencrop"). `Ensemble` averages
the probabilities of several predictors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from fer.checkpoint import load_checkpoint, model_from_checkpoint, preprocessing_from_checkpoint
from fer.default_model import DEFAULT_RUN_DIR
from fer.faces import Face, FaceDetector, crop_face, to_gray
from fer.preprocess import Preprocessing, to_model_input

TTA_MODES = ("none", "flip", "tencrop")


class NoFaceFound(ValueError):
    """No face was detected; pass whole_image=True to classify the whole image as one face."""


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

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"width": self.width, "height": self.height, "detector": self.detector, "note": self.note,
                "faces": [f.to_dict() for f in self.faces]}


def _ten_crops(faces: torch.Tensor, crop: int = 44) -> torch.Tensor:
    """N×1×48×48 → 10N×1×crop×crop: four corners and centre, each also flipped."""
    size = faces.shape[-1]
    starts = [(0, 0), (0, size - crop), (size - crop, 0), (size - crop, size - crop),
              ((size - crop) // 2, (size - crop) // 2)]
    crops = [faces[..., y:y + crop, x:x + crop] for y, x in starts]
    crops += [c.flip(-1) for c in crops]
    return torch.cat(crops)


class Predictor:
    """A trained model plus its preprocessing and class names; batched face → probabilities."""

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str], spec: Preprocessing,
                 name: str = "", device: str = "cpu", tta: str = "none", batch_size: int = 64) -> None:
        if tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}, got {tta!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.class_names = list(class_names)
        self.spec = spec
        self.name = name
        self.tta = tta
        self.batch_size = batch_size

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> "Predictor":
        """Rebuild from a checkpoint file alone (`weights_only=True`)."""
        ckpt = load_checkpoint(path)
        name = kwargs.pop("name", None) or ckpt.get("config", {}).get("name") or Path(path).parent.name
        return cls(model_from_checkpoint(ckpt), ckpt["class_names"], preprocessing_from_checkpoint(ckpt),
                   name=name, **kwargs)

    @classmethod
    def from_run(cls, run: str | Path, runs_dir: Optional[Path] = None, checkpoint: str = "best",
                 **kwargs) -> "Predictor":
        """The best (or last) checkpoint of a run, by id, unique part of one, or folder."""
        from fer.runs import resolve_run

        run_dir = Path(run) if Path(run).is_dir() else resolve_run(str(run), runs_dir)
        return cls.from_checkpoint(run_dir / f"{checkpoint}.pt", name=run_dir.name, **kwargs)

    @classmethod
    def default(cls, **kwargs) -> "Predictor":
        """The model that ships with the package (used whenever no run is chosen)."""
        return cls.from_checkpoint(DEFAULT_RUN_DIR / "best.pt", name="default", **kwargs)

    @torch.no_grad()
    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 faces → N×C probabilities (float32)."""
        if len(faces) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        batch = torch.from_numpy(np.ascontiguousarray(faces, dtype=np.uint8))[:, None]
        out = []
        for chunk in batch.split(self.batch_size):
            views = {"none": chunk, "flip": torch.cat([chunk, chunk.flip(-1)]),
                     "tencrop": _ten_crops(chunk)}[self.tta]
            logits = self.model(to_model_input(views, self.spec).to(self.device))
            probs = torch.softmax(logits.float(), dim=1).cpu()
            out.append(probs.view(-1, len(chunk), probs.shape[1]).mean(0))
        return torch.cat(out).numpy()

    def predict_image(self, rgb: np.ndarray, detector: FaceDetector, margin: float = 0.15, align: bool = False,
                      whole_image: bool = False) -> ImagePrediction:
        """Every detected face (largest first) with its probabilities; raises NoFaceFound unless `whole_image`."""
        height, width = rgb.shape[:2]
        faces: List[Face] = detector.detect(rgb)
        note = detector.note
        use_margin = margin
        if not faces or detector.name == "none":
            if not faces and not whole_image:
                raise NoFaceFound("no face found; classify the whole image as one face with the "
                                  "'whole image' option (--whole-image)")
            faces, use_margin = [Face((0, 0, width, height))], 0.0
            if detector.name != "none":
                note = (note + " " if note else "") + "No face found: the whole image was classified as one face."
        gray = to_gray(rgb)
        crops = np.stack([crop_face(gray, f, use_margin, align) for f in faces])
        probs = self.predict_faces(crops)
        return ImagePrediction([self._face_prediction(f, p, c) for f, p, c in zip(faces, probs, crops)],
                               width, height, detector.name, note)

    def _face_prediction(self, face: Face, probs: np.ndarray, crop: np.ndarray) -> FacePrediction:
        top = int(probs.argmax())
        return FacePrediction(face.box, {c: float(p) for c, p in zip(self.class_names, probs)},
                              self.class_names[top], float(probs[top]), float(face.score), crop)


class Ensemble(Predictor):
    """Several predictors with the same classes; probabilities are averaged."""

    def __init__(self, members: Sequence[Predictor]) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one predictor")
        names = members[0].class_names
        if any(m.class_names != names for m in members):
            raise ValueError("ensemble members must share the same class names in the same order")
        self.members = list(members)
        self.class_names, self.spec, self.name = names, members[0].spec, "+".join(m.name for m in members)
        self.model = members[0].model  # Grad-CAM explains the first member

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """The mean of every member's probabilities."""
        return np.mean([m.predict_faces(faces) for m in self.members], axis=0).astype(np.float32)


def load_predictor(run: str | Path | None = None, runs_dir: Optional[Path] = None, tta: str = "none"):
    """The predictor for a run of any kind (CNN checkpoint or blendshape classifier); None = the default model."""
    from fer.blendshapes import BlendshapePredictor, is_blendshape_run
    from fer.runs import resolve_run

    if run is None:
        return Predictor.default(tta=tta)
    run_dir = Path(run) if Path(run).is_dir() else resolve_run(str(run), runs_dir)
    if is_blendshape_run(run_dir):
        return BlendshapePredictor.from_run(run_dir)
    return Predictor.from_run(run_dir, tta=tta)


def available_models(runs_dir: Optional[Path] = None) -> List[str]:
    """Model choices for the UI: "default" (when shipped), then local runs with a usable checkpoint, newest first."""
    from fer.runs import default_runs_dir

    root = Path(runs_dir or default_runs_dir())
    runs = sorted((p.name for p in root.glob("*") if (p / "best.pt").is_file() or (p / "classifier.json").is_file()),
                  reverse=True) if root.is_dir() else []
    return (["default"] if (DEFAULT_RUN_DIR / "best.pt").is_file() else []) + runs


def load_ensemble(names: Sequence[str], runs_dir: Optional[Path] = None, tta: str = "none"):
    """One predictor or an ensemble from UI choices ("default" = the shipped model)."""
    members = [load_predictor(None if n == "default" else n, runs_dir, tta) for n in names]
    if not members:
        raise ValueError("choose at least one model")
    return members[0] if len(members) == 1 else Ensemble(members)
