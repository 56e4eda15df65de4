"""torchvision's EfficientNet-B0 and ConvNeXt-Tiny for gray faces, optionally from ImageNet weights.

Study A's named next step ("a stronger backbone: EfficientNet/ConvNeXt"). Both keep torchvision's
layer names (`features`, `avgpool`, `classifier`), so ImageNet weights load as published, through the
same route as the ResNets (`fer.models.pretrained`: the torch hub cache or a checked `weights_path`).
As Study A does for its ResNet, the gray face is copied to three channels and upsampled to 224×224
inside `forward`, so the data path stays 48×48; only the final linear layer is new.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models import ConvNeXt_Tiny_Weights, EfficientNet_B0_Weights

from fer.models._registry import register_model
from fer.models.pretrained import PretrainedWeightsError, with_imagenet


class TransferNet(nn.Module):
    """A torchvision ImageNet classifier with a new last layer, taking gray (or RGB) faces of any size."""

    def __init__(self, arch: str, num_classes: int = 7, in_chans: int = 1, size: int = 224) -> None:
        super().__init__()
        if in_chans not in (1, 3):
            raise ValueError(f"{arch} takes 1 (gray, copied to RGB) or 3 channels, got {in_chans}")
        net = torchvision.models.get_model(arch, weights=None)
        self.features, self.avgpool, self.classifier = net.features, net.avgpool, net.classifier
        last = len(self.classifier) - 1  # the 1000-class layer becomes a num_classes one
        self.classifier[last] = nn.Linear(self.classifier[last].in_features, num_classes)
        self.new_layer = f"classifier.{last}."
        self.gray, self.size = in_chans == 1, size
        # EfficientNet's head is dropout + linear (flatten first); ConvNeXt's flattens itself after its norm.
        self.flatten_first = not any(isinstance(m, nn.Flatten) for m in self.classifier)
        self.cam_layer = "features"  # the last stage's 7×7 map at 224
        self.head_name = "classifier"  # trained alone in a frozen-backbone phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gray:
            x = x.expand(-1, 3, -1, -1)
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1) if self.flatten_first else x)

    def load_imagenet(self, state: dict) -> None:
        """Copy ImageNet weights in, all but the 1000-class layer."""
        state = {k: v for k, v in state.items() if not k.startswith(self.new_layer)}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(self.new_layer) for k in missing):
            raise PretrainedWeightsError(f"ImageNet weights do not fit: missing {missing}, unexpected {unexpected}")


def _build(arch: str, weights, num_classes: int, in_chans: int, pretrained: bool, weights_path: str,
           **kwargs: Any) -> TransferNet:
    return with_imagenet(TransferNet(arch, num_classes=num_classes, in_chans=in_chans, **kwargs), weights,
                         pretrained, weights_path)


@register_model(imagenet=EfficientNet_B0_Weights.IMAGENET1K_V1)
def efficientnet_b0(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, weights_path: str = "",
                    **kwargs: Any) -> TransferNet:
    """torchvision EfficientNet-B0 (5.3 M parameters) for gray faces upsampled to 224, optionally ImageNet's."""
    return _build("efficientnet_b0", EfficientNet_B0_Weights.IMAGENET1K_V1, num_classes, in_chans, pretrained,
                  weights_path, **kwargs)


@register_model(imagenet=ConvNeXt_Tiny_Weights.IMAGENET1K_V1)
def convnext_tiny(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, weights_path: str = "",
                  **kwargs: Any) -> TransferNet:
    """torchvision ConvNeXt-Tiny (28 M parameters) for gray faces upsampled to 224, optionally ImageNet's."""
    return _build("convnext_tiny", ConvNeXt_Tiny_Weights.IMAGENET1K_V1, num_classes, in_chans, pretrained,
                  weights_path, **kwargs)
