"""torchvision ResNet-18/34 adapted to grayscale faces, optionally from ImageNet weights.

Two adaptations of the 3-channel ImageNet network (`channels`):
- "sum": a 1-channel `conv1` whose filters are the pretrained RGB filters summed over colour
  (a gray image x gives the same response as the RGB image (x, x, x));
- "repeat": keep the RGB `conv1` and copy the gray channel three times in `forward`.
Two stems (`stem`; the preprocessing's `model.input_size` stays 48 for both):
- "small": the 7×7 stride-2 stem and max-pool would shrink a 48×48 face to 12×12 before `layer1`,
  so `conv1` becomes 3×3 stride 1 (pretrained 7×7 filters resized to 3×3) and the max-pool goes;
- "imagenet": faces are upsampled to 224×224 inside `forward` and the ImageNet stem is kept.
`head_dropout` > 0 puts a dropout before the classifier (`fc` becomes dropout + linear).
Pretrained weights come from torchvision's weights API (downloaded once into the torch hub cache)
or from a checked `weights_path` file (`fer.models.pretrained`). Without either, the builder raises:
never a silent random init.
"""
from __future__ import annotations

from typing import Any, Dict

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision.models import ResNet18_Weights, ResNet34_Weights
from torchvision.models.resnet import BasicBlock, ResNet

from fer.models._registry import register_model
from fer.models.pretrained import PretrainedWeightsError, with_imagenet


STEMS = ("small", "imagenet")
# Checkpoints written before `stem` existed name it by the input size it implied.
_LEGACY_INPUT_SIZE = {48: "small", 224: "imagenet"}


class FaceResNet(ResNet):
    """A torchvision ResNet that takes gray faces; layer names match torchvision's (conv1 … layer4, fc)."""

    def __init__(self, layers: list, num_classes: int = 7, in_chans: int = 1, channels: str = "sum",
                 stem: str = "small", head_dropout: float = 0.0) -> None:
        if channels not in ("sum", "repeat"):
            raise ValueError(f"channels must be 'sum' or 'repeat', got {channels!r}")
        if stem not in STEMS:
            raise ValueError(f"stem must be 'small' (3×3, for 48×48 faces) or 'imagenet' (upsampled to 224), "
                             f"got {stem!r}")
        super().__init__(BasicBlock, layers, num_classes=num_classes)
        self.repeat_gray = channels == "repeat" and in_chans == 1
        self.upsample_to = 224 if stem == "imagenet" else 0
        stem_in = 3 if self.repeat_gray else in_chans
        if stem == "small":
            self.conv1 = nn.Conv2d(stem_in, 64, kernel_size=3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        elif stem_in != 3:
            self.conv1 = nn.Conv2d(stem_in, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if head_dropout > 0:  # Study A's head: dropout, then the linear classifier
            self.fc = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.fc.in_features, num_classes))
        self.cam_layer = "layer4"
        self.head_name = "fc"  # the classifier, trained alone in a frozen-backbone phase

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.repeat_gray:
            x = x.expand(-1, 3, -1, -1)
        if self.upsample_to:
            x = F.interpolate(x, size=(self.upsample_to, self.upsample_to), mode="bilinear", align_corners=False)
        return super().forward(x)

    def load_imagenet(self, state: Dict[str, torch.Tensor]) -> None:
        """Copy ImageNet weights in, adapting `conv1` to this stem and dropping the 1000-class `fc`."""
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        conv1 = state["conv1.weight"]  # 64×3×7×7
        if self.conv1.in_channels != 3:
            conv1 = conv1.sum(1, keepdim=True).repeat(1, self.conv1.in_channels, 1, 1) / self.conv1.in_channels
        if self.conv1.kernel_size[0] != conv1.shape[-1]:
            k = self.conv1.kernel_size[0]
            # Resizing keeps each filter's pattern; the area ratio keeps its response to flat input.
            conv1 = F.interpolate(conv1, size=(k, k), mode="bilinear", align_corners=False) * (conv1.shape[-1] / k) ** 2
        state["conv1.weight"] = conv1
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or not missing or any(not k.startswith("fc.") for k in missing):
            raise PretrainedWeightsError(f"ImageNet weights do not fit: missing {missing}, unexpected {unexpected}")


def _build(layers: list, weights, num_classes: int, in_chans: int, pretrained: bool, weights_path: str,
           **kwargs: Any) -> FaceResNet:
    if "input_size" in kwargs:
        kwargs["stem"] = _LEGACY_INPUT_SIZE.get(kwargs.pop("input_size"), "invalid")
    return with_imagenet(FaceResNet(layers, num_classes=num_classes, in_chans=in_chans, **kwargs), weights,
                         pretrained, weights_path)


@register_model(imagenet=ResNet18_Weights.IMAGENET1K_V1)
def resnet18(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, weights_path: str = "",
             **kwargs: Any) -> FaceResNet:
    """torchvision ResNet-18 for gray faces (stem "small" or "imagenet"), optionally ImageNet-pretrained."""
    return _build([2, 2, 2, 2], ResNet18_Weights.IMAGENET1K_V1, num_classes, in_chans, pretrained, weights_path,
                  **kwargs)


@register_model(imagenet=ResNet34_Weights.IMAGENET1K_V1)
def resnet34(num_classes: int = 7, in_chans: int = 1, pretrained: bool = False, weights_path: str = "",
             **kwargs: Any) -> FaceResNet:
    """torchvision ResNet-34 for gray faces (stem "small" or "imagenet"), optionally ImageNet-pretrained."""
    return _build([3, 4, 6, 3], ResNet34_Weights.IMAGENET1K_V1, num_classes, in_chans, pretrained, weights_path,
                  **kwargs)
