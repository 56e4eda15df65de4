"""The CNN classifier: a model rebuilt from its checkpoint alone, batched faces → probabilities.

    predictor = Predictor.from_run("plain-cnn-default")      # or from_checkpoint(path), or default()
    result = predict_image(predictor, load_image("photo.jpg"), detector)   # fer.inference.pipeline
    for face in result.faces: print(face.box, face.label, face.confidence)

Faces go through the same `to_model_input` as evaluation. `tta` averages over a horizontal flip
("flip") or the ten 44×44 corner/centre crops and their flips ("tencrop"), cut and averaged by
`fer.inference.averaging` exactly as for the ONNX Runtime predictor, and averaged as logits. A checkpoint
fitted with temperatures (fer.metrics.calibration, one per TTA mode, at the end of training) gives
calibrated probabilities for the mode in use unless `calibrated=False`. Built directly, a Predictor uses
no TTA (as evaluation scores the model itself); `load_classifier` gives the product's default (flip). `Ensemble` (re-exported from averaging) averages several classifiers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from fer.data.preprocess import Preprocessing, to_model_input
from fer.inference.averaging import (TTA_MODES, Ensemble, calibrated_softmax, check_tta, logits_over_views,
                                     temperature_for)
from fer.runs.checkpoint import load_checkpoint, model_from_checkpoint, preprocessing_from_checkpoint
from fer.runs.store import SHIPPED_RUN_DIR, resolve_run

__all__ = ["Predictor", "Ensemble", "TTA_MODES"]


class Predictor:
    """A trained model plus its preprocessing and class names; batched face → probabilities."""

    def __init__(self, model: torch.nn.Module, class_names: Sequence[str], spec: Preprocessing,
                 name: str = "", device: str | torch.device = "cpu", tta: str = "none", batch_size: int = 64,
                 provenance: Optional[Dict[str, Any]] = None, temperature: float = 1.0) -> None:
        check_tta(tta)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.class_names = list(class_names)
        self.spec = spec
        self.name = name
        self.tta = tta
        self.batch_size = batch_size
        self.provenance = provenance or {}  # which checkpoint and epoch, for evaluation records
        self.temperature = float(temperature)  # 1.0: the model's own probabilities
        self.backend = "torch"
        self.explainable = True  # Grad-CAM can look inside the PyTorch model

    @classmethod
    def from_loaded(cls, ckpt: Dict[str, Any], name: str = "", checkpoint: str = "", calibrated: bool = True,
                    **kwargs) -> "Predictor":
        """Rebuild from a loaded checkpoint dict (with its temperature for the TTA mode, when `calibrated`)."""
        tta = check_tta(kwargs.pop("tta", "none"))
        temperature = temperature_for(ckpt.get("calibration"), tta) if calibrated else 1.0
        return cls(model_from_checkpoint(ckpt), ckpt["class_names"], preprocessing_from_checkpoint(ckpt),
                   name=name or ckpt.get("config", {}).get("name", ""),
                   provenance={"checkpoint": checkpoint, "epoch": int(ckpt.get("epoch", 0))},
                   temperature=temperature, tta=tta, **kwargs)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> "Predictor":
        """Rebuild from a checkpoint file alone (`weights_only=True`)."""
        path = Path(path)
        name = kwargs.pop("name", None)
        ckpt = load_checkpoint(path)
        return cls.from_loaded(ckpt, name=name or ckpt.get("config", {}).get("name") or path.parent.name,
                               checkpoint=path.stem, **kwargs)

    @classmethod
    def from_run(cls, run: str | Path, runs_dir: Optional[Path] = None, checkpoint: str = "best",
                 **kwargs) -> "Predictor":
        """The best (or last) checkpoint of a run, by id, unique part of one, or folder."""
        run_dir = resolve_run(run, runs_dir)
        return cls.from_checkpoint(run_dir / f"{checkpoint}.pt", name=run_dir.name, **kwargs)

    @classmethod
    def default(cls, **kwargs) -> "Predictor":
        """The model that ships with the package (used whenever no run is chosen)."""
        return cls.from_checkpoint(SHIPPED_RUN_DIR / "best.pt", name="default", **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Model inputs → logits (an exported-model backend overrides this)."""
        return self.model(x)

    @torch.no_grad()
    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 faces → N×C probabilities (float32)."""
        return calibrated_softmax(self.logits_of_faces(faces), self.temperature)

    @torch.no_grad()
    def logits_of_faces(self, faces: np.ndarray) -> np.ndarray:
        """uint8 N×48×48 faces → N×C logits, averaged over the TTA views (before any temperature)."""
        def logits_of(views: np.ndarray) -> np.ndarray:
            x = to_model_input(torch.from_numpy(views), self.spec).to(self.device)
            return self.forward(x).float().cpu().numpy()

        return logits_over_views(faces, self.tta, self.batch_size, len(self.class_names), logits_of)
