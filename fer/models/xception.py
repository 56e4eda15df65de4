"""mini-Xception (Arriaga, Valdenegro-Toro & Plöger 2017): the model family the `fer` package ships.

Depthwise-separable convolutions with residual shortcuts and a fully convolutional head (a
conv to `num_classes` maps, then global average pooling): ~60 k parameters, fast on any CPU.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from fer.models._registry import register_model


class SeparableConv(nn.Sequential):
    """Depthwise 3×3 then pointwise 1×1 convolution."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__(nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch, bias=False),
                         nn.Conv2d(in_ch, out_ch, 1, bias=False))


class XceptionModule(nn.Module):
    """Two separable convs + BN, a strided max-pool, and a strided 1×1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=2, bias=False), nn.BatchNorm2d(out_ch))
        self.body = nn.Sequential(SeparableConv(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
                                  SeparableConv(out_ch, out_ch), nn.BatchNorm2d(out_ch),
                                  nn.MaxPool2d(3, stride=2, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class MiniXception(nn.Module):
    """Two plain 3×3 convs, four Xception modules (16→128), conv to classes, global average pool."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: Sequence[int] = (16, 32, 64, 128),
                 stem: int = 8) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_chans, stem, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
                                  nn.Conv2d(stem, stem, 3, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True))
        modules, ch = [], stem
        for w in widths:
            modules.append(XceptionModule(ch, w))
            ch = w
        self.blocks = nn.Sequential(*modules)
        self.classifier = nn.Sequential(nn.Conv2d(ch, num_classes, 3, padding=1), nn.AdaptiveAvgPool2d(1),
                                        nn.Flatten())
        self.cam_layer = f"blocks.{len(widths) - 1}"
        self.head_name = "classifier"  # the class-wise conv and global average pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.blocks(self.stem(x)))


@register_model()
def mini_xception(num_classes: int = 7, in_chans: int = 1, **kwargs) -> MiniXception:
    """mini-Xception: the small, fast baseline (~60 k parameters)."""
    return MiniXception(num_classes=num_classes, in_chans=in_chans, **kwargs)
