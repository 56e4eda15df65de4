"""The model registry (timm's `_registry.py` pattern): model files import this, never the package.

Every builder takes `num_classes` and `in_chans` (plus its own keyword arguments) and returns a
module that names two of its submodules: `cam_layer`, the layer Grad-CAM looks at, and
`head_name`, the classifier that transfer learning trains alone while the backbone is frozen.
"""
from __future__ import annotations

from typing import Any, Callable

import torch.nn as nn

from fer.core.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
register_model = MODELS.register


def create_model(name: str, num_classes: int = 7, in_chans: int = 1, **kwargs: Any) -> nn.Module:
    """Build the registered model `name`."""
    model = MODELS.get(name)(num_classes=num_classes, in_chans=in_chans, **kwargs)
    for attribute in ("cam_layer", "head_name"):
        if not hasattr(model, attribute):
            raise TypeError(f"model {name!r} does not declare a {attribute}")
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
