"""A configurable plain (VGG-style) CNN: the default model of the FER2013 course projects."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from fer.models import register_model


def conv_block(in_ch: int, out_ch: int, convs: int, batchnorm: bool, dropout: float) -> nn.Sequential:
    """`convs` 3×3 convolutions (+BN) with ReLU, then 2×2 max-pool and spatial dropout."""
    layers = []
    for i in range(convs):
        layers.append(nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, 3, padding=1, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(out_ch))
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.MaxPool2d(2))
    if dropout > 0:
        layers.append(nn.Dropout2d(dropout))
    return nn.Sequential(*layers)


class PlainCNN(nn.Module):
    """Blocks of 3×3 convs with pooling, then a dropout MLP head."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128, 256),
                 convs_per_block: int = 2, batchnorm: bool = True, dropout: float = 0.1,
                 fc_dropout: float = 0.5, hidden: int = 256, kaiming_init: bool = True) -> None:
        super().__init__()
        blocks, ch = [], in_chans
        for w in widths:
            blocks.append(conv_block(ch, w, convs_per_block, batchnorm, dropout))
            ch = w
        self.features = nn.Sequential(*blocks)
        # Pool to 3×3 so the head fits any input size (48×48 after 4 pools is exactly 3×3).
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(fc_dropout), nn.Linear(ch * 9, hidden),
                                  nn.ReLU(inplace=True), nn.Dropout(fc_dropout), nn.Linear(hidden, num_classes))
        # The last conv block's output is the finest map that still sees whole-face context.
        self.cam_layer = f"features.{len(widths) - 1}"
        if kaiming_init:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@register_model()
def plain_cnn(num_classes: int = 7, in_chans: int = 1, **kwargs) -> PlainCNN:
    """VGG-style CNN, 2 convs per block, widths 32-64-128-256 (1.2 M parameters)."""
    return PlainCNN(num_classes=num_classes, in_chans=in_chans, **kwargs)
