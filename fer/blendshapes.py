"""MediaPipe FaceLandmarker features (52 blendshapes + normalised landmark geometry) and a linear
classifier on them, stored as a run folder so it is evaluated, predicted and ranked like any CNN.

The classifier is scikit-learn's multinomial logistic regression on standardised features; its
regularisation `C` is chosen on the validation split. It is saved as plain arrays (`classifier.npz`
plus `classifier.json`), never as a pickle. Faces the landmarker cannot find (about one in ten
FER2013 crops) get the training class prior, so every image is scored and coverage is reported.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import cv2
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fer.faces import ensure_model_file

UPSCALE = 192  # FER2013's 48×48 crops are too small for the landmarker; 4× works for ~90% of them
N_BLENDSHAPES, N_LANDMARKS = 52, 478
N_FEATURES = N_BLENDSHAPES + 2 * N_LANDMARKS
RIGHT_EYE_OUTER, LEFT_EYE_OUTER = 33, 263  # FaceMesh indices of the outer eye corners
KIND = "mediapipe_blendshapes"


def geometry_features(landmarks: np.ndarray) -> np.ndarray:
    """478×2 landmarks → centred, eye-levelled, scaled by the eye distance, flattened (956 values)."""
    xy = landmarks[:, :2] - landmarks[:, :2].mean(0)
    eye = xy[LEFT_EYE_OUTER] - xy[RIGHT_EYE_OUTER]
    angle = np.arctan2(eye[1], eye[0])
    c, s = np.cos(-angle), np.sin(-angle)
    xy = xy @ np.array([[c, s], [-s, c]])
    return (xy / max(np.linalg.norm(eye), 1e-6)).reshape(-1).astype(np.float32)


class FeatureExtractor:
    """FaceLandmarker over 48×48 gray faces (upscaled); NaN rows where no face is found."""

    def __init__(self, download: bool = True) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        path = ensure_model_file("face_landmarker.task", download=download)
        options = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                               output_face_blendshapes=True, num_faces=1,
                                               min_face_detection_confidence=0.3, min_face_presence_confidence=0.3)
        self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def __call__(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 → float32 N×1008 (52 blendshapes, then 956 geometry values)."""
        import mediapipe as mp

        out = np.full((len(faces), N_FEATURES), np.nan, dtype=np.float32)
        for i, face in enumerate(faces):
            big = cv2.resize(face, (UPSCALE, UPSCALE), interpolation=cv2.INTER_CUBIC)
            rgb = np.ascontiguousarray(np.repeat(big[..., None], 3, axis=2))
            result = self._landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
            if not result.face_landmarks:
                continue
            out[i, :N_BLENDSHAPES] = [c.score for c in result.face_blendshapes[0]]
            points = np.array([(p.x, p.y) for p in result.face_landmarks[0]], dtype=np.float32)
            out[i, N_BLENDSHAPES:] = geometry_features(points)
        return out

    def close(self) -> None:
        """Release the landmarker."""
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

    def save(self, run_dir: Path) -> None:
        """classifier.npz (arrays) + classifier.json (names, C): loadable without pickle."""
        np.savez(run_dir / "classifier.npz", mean=self.mean, scale=self.scale, coef=self.coef,
                 intercept=self.intercept, prior=self.prior)
        (run_dir / "classifier.json").write_text(json.dumps(
            {"kind": KIND, "class_names": self.class_names, "C": self.C, "features": N_FEATURES,
             "upscale": UPSCALE}, indent=2) + "\n")

    @classmethod
    def load(cls, run_dir: Path) -> "BlendshapeClassifier":
        """Read a saved classifier (numpy arrays only, allow_pickle=False)."""
        meta = json.loads((Path(run_dir) / "classifier.json").read_text())
        with np.load(Path(run_dir) / "classifier.npz", allow_pickle=False) as z:
            return cls(z["mean"], z["scale"], z["coef"], z["intercept"], z["prior"], meta["class_names"], meta["C"])


def is_blendshape_run(run_dir: Path) -> bool:
    """Whether a run folder holds a blendshape classifier rather than a CNN checkpoint."""
    return (Path(run_dir) / "classifier.json").is_file()


class BlendshapePredictor:
    """The Predictor interface (`predict_faces`, `predict_image`) over FaceLandmarker features."""

    def __init__(self, classifier: BlendshapeClassifier, name: str = "", download: bool = True) -> None:
        from fer.preprocess import Preprocessing

        self.classifier, self.name = classifier, name
        self.class_names = classifier.class_names
        self.spec = Preprocessing()
        self.model = None  # no Grad-CAM: the features are not an image model
        self._extractor = FeatureExtractor(download=download)

    @classmethod
    def from_run(cls, run_dir: Path, **kwargs) -> "BlendshapePredictor":
        """Load the classifier of a blendshape run."""
        return cls(BlendshapeClassifier.load(run_dir), name=Path(run_dir).name, **kwargs)

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 → N×C probabilities."""
        return self.classifier.predict_proba(self._extractor(faces))

    def predict_image(self, rgb: np.ndarray, detector, **kwargs):
        """Same face handling as the CNN Predictor."""
        from fer.predictor import Predictor

        return Predictor.predict_image(self, rgb, detector, **kwargs)

    def _face_prediction(self, face, probs, crop):
        from fer.predictor import Predictor

        return Predictor._face_prediction(self, face, probs, crop)

    def close(self) -> None:
        """Release the landmarker."""
        self._extractor.close()


# --- training a blendshape run ---------------------------------------------------------------------------------

def cached_features(images: np.ndarray, download: bool = True) -> np.ndarray:
    """Features for `images`, cached in FER_CACHE_DIR by a hash of the pixels (extraction is ~10 ms/face)."""
    import hashlib
    import os
    import tempfile

    from fer.data.cache import cache_dir

    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()[:24]
    path = cache_dir() / f"blendshapes-{UPSCALE}-{digest}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    with FeatureExtractor(download=download) as extract:
        features = extract(images)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy")
    os.close(fd)
    np.save(tmp, features)
    os.replace(tmp, path)
    return features


def train_blendshape_run(data_path: Optional[str] = None, name: str = "mediapipe-blendshapes",
                         runs_dir: Optional[Path] = None, Cs: Sequence[float] = (0.01, 0.1, 1.0), limit: int = 0,
                         seed: int = 0, tags: Sequence[str] = ()) -> Path:
    """Extract features, pick C on validation, write a complete run folder (config, metrics, evaluations)."""
    import time

    from fer.config import RunConfig, save_config
    from fer.data import default_data_path, load_fer2013
    from fer.evaluate import classification_metrics, predictions_frame, save_evaluation, splits_for
    from fer.runs import append_metrics, default_runs_dir, new_run_id, utc_now, write_status

    cfg = RunConfig(name=name, tags=list(tags), augmentation="none")
    cfg.model.name, cfg.model.kwargs = KIND, {"Cs": list(Cs), "upscale": UPSCALE}
    cfg.optim.name, cfg.sched.name, cfg.train.epochs = "lbfgs", "none", 1
    cfg.data.path = str(Path(data_path or default_data_path()).expanduser().resolve())
    cfg.data.limit, cfg.train.seed = limit, seed
    data = load_fer2013(cfg.data.path)
    splits = splits_for(cfg, data)
    root = Path(runs_dir or cfg.runs_dir or default_runs_dir())
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / new_run_id(name)
    run_dir.mkdir()
    save_config(cfg, run_dir / "config.json")
    started = time.perf_counter()
    write_status(run_dir, "running", created_at=utc_now(), started_at=utc_now(), epoch=1, epochs=1)
    try:
        feats = {role: cached_features(data.images[getattr(splits, role)]) for role in ("train", "val", "test")}
        labels = {role: data.labels[getattr(splits, role)] for role in ("train", "val", "test")}
        best = None
        for C in Cs:  # model selection on validation only
            clf = BlendshapeClassifier.fit(feats["train"], labels["train"], data.class_names, C)
            val_acc = float((clf.predict_proba(feats["val"]).argmax(1) == labels["val"]).mean())
            if best is None or val_acc > best[1]:
                best = (clf, val_acc)
        clf = best[0]
        clf.save(run_dir)
        probs = {role: clf.predict_proba(feats[role]) for role in feats}
        coverage = {role: float((~np.isnan(feats[role]).any(1)).mean()) for role in feats}
        val_probs = probs["val"][np.arange(len(labels["val"])), labels["val"]]
        append_metrics(run_dir, {
            "epoch": 1, "train_loss": None, "train_acc": float((probs["train"].argmax(1) == labels["train"]).mean()),
            "val_loss": float(-np.log(np.clip(val_probs, 1e-12, None)).mean()), "val_acc": best[1],
            "lr": None, "seconds": round(time.perf_counter() - started, 3), "best": True, "time": utc_now(),
            "C": clf.C, "face_coverage_train": coverage["train"], "face_coverage_val": coverage["val"]})
        results = {}
        for role, split_name in (("val", "val"), ("test", cfg.data.test_split)):
            index = getattr(splits, role)
            metrics = classification_metrics(labels[role], probs[role], data.class_names)
            metrics.update(checkpoint="classifier", epoch=1, face_coverage=coverage[role])
            save_evaluation(run_dir, split_name, metrics, predictions_frame(data.sources[index], labels[role],
                                                                            probs[role], data.class_names))
            results[role] = metrics["accuracy"]
        write_status(run_dir, "completed", finished_at=utc_now(), best_val_acc=best[1], test_acc=results["test"])
    except Exception as e:
        write_status(run_dir, "failed", error=f"{type(e).__name__}: {e}", finished_at=utc_now())
        raise
    return run_dir
