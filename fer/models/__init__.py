"""Model registry: one decorated builder per model, like timm.

Every builder takes `num_classes` and `in_chans` (plus its own keyword arguments) and returns a
module whose `cam_layer` attribute names the layer Grad-CAM should look at.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from fer.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
register_model = MODELS.register


def create_model(name: str, num_classes: int = 7, in_chans: int = 1, **kwargs: Any) -> nn.Module:
    """Build the registered model `name`."""
    model = MODELS.get(name)(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if not hasattr(model, "cam_layer"):
        raise TypeError(f"model {name!r} does not declare a cam_layer")
    return model


def get_cam_layer(model: nn.Module) -> nn.Module:
    """The submodule named by `model.cam_layer`."""
    return model.get_submodule(model.cam_layer)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# Importing the modules registers their models.
from fer.models import cnn, deep_emotion, resnet, xception  # noqa: E402,F401

__all__ = ["MODELS", "create_model", "count_parameters", "get_cam_layer", "register_model"]
