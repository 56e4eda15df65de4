"""MediaPipe FaceLandmarker features (52 blendshapes + normalised landmark geometry) and a linear
classifier on them: the second kind of classifier, beside the CNNs (`fer.training.blendshape_run` trains it).

The classifier is scikit-learn's multinomial logistic regression on standardised features; its
regularisation `C` is chosen on the validation split. It is saved as plain arrays (`classifier.npz`
plus `classifier.json`), never as a pickle. Faces the landmarker cannot find (about one in ten
FER2013 crops) get the training class prior, so every image is scored and coverage is reported.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence

import cv2
import numpy as np

from fer.core.files import atomic_write, cache_dir
from fer.inference.faces.model_files import closed_at_exit, ensure_model_file

UPSCALE = 192  # FER2013's 48×48 crops are too small for the landmarker; 4× works for ~90% of them
N_BLENDSHAPES, N_LANDMARKS = 52, 478
N_FEATURES = N_BLENDSHAPES + 2 * N_LANDMARKS
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # FaceMesh indices of the outer eye corners
KIND = "mediapipe_blendshapes"  # the run's model.name
ARRAYS_FILE, META_FILE = "classifier.npz", "classifier.json"
CACHE_MIN_FACES = 64  # evaluation-sized batches go through the feature cache; webcam frames do not


def geometry_features(landmarks: np.ndarray) -> np.ndarray:
    """478×2 landmarks → centred, eye-levelled, scaled by the eye distance, flattened (956 values)."""
    xy = landmarks[:, :2] - landmarks[:, :2].mean(0)
    eye = xy[LEFT_EYE_OUTER] - xy[RIGHT_EYE_OUTER]
    angle = np.arctan2(eye[1], eye[0])
    c, s = np.cos(-angle), np.sin(-angle)
    xy = xy @ np.array([[c, s], [-s, c]])
    return (xy / max(np.linalg.norm(eye), 1e-6)).reshape(-1).astype(np.float32)


class FeatureExtractor:
    """FaceLandmarker over 48×48 gray faces (upscaled); NaN rows where no face is found (thread-safe)."""

    def __init__(self, download: bool = True) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path = ensure_model_file("face_landmarker.task", download=download)
        options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               output_face_blendshapes=True, num_faces=1,
                                               min_face_detection_confidence=0.3, min_face_presence_confidence=0.3)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)
        self._lock = threading.Lock()  # MediaPipe tasks are not re-entrant; pages share one classifier
        closed_at_exit(self)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 → float32 N×1008 (52 blendshapes, then 956 geometry values)."""
        out = np.full((len(faces), N_FEATURES), np.nan, dtype=np.float32)
        with self._lock:
            self._extract_into(faces, out)
        return out

    def _extract_into(self, faces: np.ndarray, out: np.ndarray) -> None:
        import mediapipe as mp  # loaded with the landmarker, only when features are used

        for i, face in enumerate(faces):
            big = cv2.resize(face, (UPSCALE, UPSCALE), interpolation=cv2.INTER_CUBIC)
            rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=2))
            result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            if not result.face_landmarks:
                continue
            out[i, :N_BLENDSHAPES] = [c.score for c in result.face_blendshapes[0]]
            points = np.array([(p.x, p.y) for p in result.face_landmarks[0]], dtype=np.float32)
            out[i, N_BLENDSHAPES:] = geometry_features(points)

    def close(self) -> None:
        """Release the landmarker."""
        with self._lock:
            if self._landmarker is not None:
                self._landmarker.close()
                self._landmarker = None

    def __enter__(self) -> "FeatureExtractor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class BlendshapeClassifier:
    """Standardise, then multinomial logistic regression; the prior where features are missing."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray  # C×F
    intercept: np.ndarray  # C
    prior: np.ndarray  # C, training class frequencies
    class_names: List[str]
    C: float

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, class_names: Sequence[str], C: float,
            max_iter: int = 1000) -> "BlendshapeClassifier":
        """Fit on the rows with features; the prior comes from all labels."""
        from sklearn.linear_model import LogisticRegression  # training only: predicting is plain numpy
        from sklearn.preprocessing import StandardScaler

        ok = ~np.isnan(features).any(1)
        scaler = StandardScaler().fit(features[ok])
        model = LogisticRegression(C=C, max_iter=max_iter).fit(scaler.transform(features[ok]), labels[ok])
        coef = np.zeros((len(class_names), features.shape[1]), np.float64)
        intercept = np.full(len(class_names), -1e9)  # a class absent from training is never predicted
        if len(model.classes_) == 2:  # binary: one logit for classes_[1] against classes_[0]
            coef[model.classes_[0]], intercept[model.classes_[0]] = 0.0, 0.0
            coef[model.classes_[1]], intercept[model.classes_[1]] = model.coef_[0], model.intercept_[0]
        else:
            coef[model.classes_] = model.coef_
            intercept[model.classes_] = model.intercept_
        prior = np.bincount(labels, minlength=len(class_names)) / len(labels)
        return cls(scaler.mean_, scaler.scale_, coef, intercept, prior, list(class_names), C)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """N×C probabilities; rows without features get the class prior."""
        probs = np.tile(self.prior, (len(features), 1)).astype(np.float32)
        ok = ~np.isnan(features).any(1)
        if ok.any():
            z = ((features[ok] - self.mean) / self.scale) @ self.coef.T + self.intercept
            z -= z.max(1, keepdims=True)
            e = np.exp(z)
            probs[ok] = e / e.sum(1, keepdims=True)
        return probs

    def arrays(self) -> Dict[str, np.ndarray]:
        """The fitted arrays, as stored in classifier.npz."""
        return {"mean": self.mean, "scale": self.scale, "coef": self.coef, "intercept": self.intercept,
                "prior": self.prior}

    def meta(self) -> Dict[str, Any]:
        """Everything else, as stored in classifier.json."""
        return {"kind": KIND, "class_names": self.class_names, "C": self.C, "features": N_FEATURES,
                "upscale": UPSCALE}

    @classmethod
    def load(cls, run_dir: Path) -> "BlendshapeClassifier":
        """Read a saved classifier (numpy arrays only, allow_pickle=False)."""
        meta = json.loads((Path(run_dir) / META_FILE).read_text())
        with np.load(Path(run_dir) / ARRAYS_FILE, allow_pickle=False) as z:
            return cls(z["mean"], z["scale"], z["coef"], z["intercept"], z["prior"], meta["class_names"], meta["C"])


def face_coverage(features: np.ndarray) -> float:
    """Share of faces the landmarker found (rows without NaN)."""
    return float((~np.isnan(features).any(1)).mean()) if len(features) else 0.0


def cached_features(images: np.ndarray, extractor: "FeatureExtractor | None" = None,
                    download: bool = True) -> np.ndarray:
    """Features for `images`, cached in FER_CACHE_DIR by a hash of the pixels (extraction is ~10 ms/face)."""
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:24]
    path = cache_dir() / f"blendshapes-{UPSCALE}-{digest}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    if extractor is not None:
        features = extractor(images)
    else:
        with FeatureExtractor(download=download) as extract:
            features = extract(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: np.save(fh, features))
    return features


class BlendshapePredictor:
    """The classifier interface (`name`, `class_names`, `predict_faces`) over FaceLandmarker features."""

    def __init__(self, classifier: BlendshapeClassifier, name: str = "", download: bool = True) -> None:
        self.classifier, self.name = classifier, name
        self.class_names = classifier.class_names
        self.backend, self.explainable = "features", False  # no Grad-CAM: the features are not an image model
        self.provenance = {"checkpoint": "classifier", "epoch": 1}
        self._extractor = FeatureExtractor(download=download)

    @classmethod
    def from_run(cls, run_dir: Path, **kwargs: Any) -> "BlendshapePredictor":
        """Load the classifier of a blendshape run."""
        return cls(BlendshapeClassifier.load(run_dir), name=Path(run_dir).name, **kwargs)

    def features(self, faces: np.ndarray) -> np.ndarray:
        """Landmark features; batches of evaluation size come from (and fill) the feature cache."""
        if len(faces) >= CACHE_MIN_FACES:
            return cached_features(faces, self._extractor)
        return self._extractor(faces)

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 → N×C probabilities."""
        return self.classifier.predict_proba(self.features(faces))

    def extra_metrics(self, faces: np.ndarray) -> Dict[str, float]:
        """Recorded with an evaluation: how many faces the landmarker found."""
        return {"face_coverage": face_coverage(self.features(faces))}

    def close(self) -> None:
        """Release the landmarker."""
        self._extractor.close()
