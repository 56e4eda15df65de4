"""Self-describing checkpoints that load with `torch.load(weights_only=True)`.

A checkpoint holds everything needed to rebuild and use the model with no other file: format
version, model name and kwargs, class names, preprocessing, the unwrapped model's state dict,
metrics and the run config (plus optimizer/scheduler state for resuming).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn as nn

from fer.models import create_model
from fer.preprocess import Preprocessing

FORMAT_VERSION = 1


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def checkpoint_payload(model: nn.Module, config: Dict[str, Any], class_names: Sequence[str],
                       preprocessing: Preprocessing, epoch: int, metrics: Dict[str, Any],
                       training_state: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Everything a checkpoint holds (the run writer saves it atomically)."""
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": config["model"]["name"], "kwargs": dict(config["model"]["kwargs"]),
                  "num_classes": len(class_names), "in_chans": preprocessing.in_chans},
        "class_names": list(class_names),
        "preprocessing": preprocessing.to_dict(),
        "state_dict": unwrap_model(model).state_dict(),
        "epoch": epoch,
        "metrics": metrics,
        "config": config,
        "training_state": training_state or {},
    }


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Load a checkpoint safely (tensors and plain data only) and check its format version."""
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version != FORMAT_VERSION:
        raise ValueError(f"{path}: not a fer-studio checkpoint of format {FORMAT_VERSION} (found {version!r})")
    return ckpt


def model_from_checkpoint(ckpt: Dict[str, Any]) -> nn.Module:
    """Rebuild the model from a loaded checkpoint alone, in eval mode."""
    spec = ckpt["model"]
    # The state dict holds every weight, so never fetch ImageNet weights again (it may be offline).
    kwargs = {k: v for k, v in spec["kwargs"].items() if k not in ("pretrained", "weights_path")}
    model = create_model(spec["name"], num_classes=spec["num_classes"], in_chans=spec["in_chans"], **kwargs)
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def preprocessing_from_checkpoint(ckpt: Dict[str, Any]) -> Preprocessing:
    """The preprocessing the checkpoint's model was trained with."""
    return Preprocessing(**ckpt["preprocessing"])
