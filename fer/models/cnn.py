"""The plain CNN family of the FER2013 course projects, plus the simple baselines.

`plain_cnn` is one configurable builder: depth (number of conv blocks), widths, BatchNorm,
spatial and FC dropout, residual (skip) connections, squeeze-excitation or CBAM attention and
Kaiming initialisation. The studies' ablations are settings of it (see `fer.jobs.suites`).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
import torch.nn as nn

from fer.models._registry import register_model
from fer.models.blocks import CBAM, ResidualBlock, conv_bn_relu, pool_and_dropout

MAX_POOLS = 4  # 48 → 24 → 12 → 6 → 3; deeper blocks keep the 3×3 map
BASE_WIDTHS = (32, 64, 128, 256)


def default_widths(depth: int, base: Sequence[int] = BASE_WIDTHS) -> List[int]:
    """Widths for `depth` blocks: doubling from 32, then held at the last width."""
    return [base[min(i, len(base) - 1)] for i in range(depth)]


def conv_block(in_ch: int, out_ch: int, convs: int, batchnorm: bool, dropout: float, pool: bool = True,
               residual: bool = False, attention: str = "none", reduction: int = 8) -> nn.Module:
    """One block. Without skip/attention it is a flat Sequential (the original checkpoint layout)."""
    if residual or attention != "none":
        return ResidualBlock(in_ch, out_ch, convs, batchnorm, dropout, pool, residual, attention, reduction)
    return nn.Sequential(*conv_bn_relu(in_ch, out_ch, convs, batchnorm), *pool_and_dropout(pool, dropout))


class PlainCNN(nn.Module):
    """Blocks of 3×3 convs with pooling, then a dropout MLP head."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: Optional[Sequence[int]] = None,
                 depth: int = 0, convs_per_block: int = 2, batchnorm: bool = True, dropout: float = 0.1,
                 fc_dropout: float = 0.5, hidden: int | Sequence[int] = 256, residual: bool = False,
                 attention: str = "none", kaiming_init: bool = True, attention_reduction: int = 8,
                 head_pool: int = 3) -> None:
        super().__init__()
        if attention not in ("none", "se", "cbam"):
            raise ValueError(f"attention must be 'none', 'se' or 'cbam', got {attention!r}")
        widths = list(widths) if widths else default_widths(depth or len(BASE_WIDTHS))
        blocks, ch = [], in_chans
        for i, w in enumerate(widths):
            blocks.append(conv_block(ch, w, convs_per_block, batchnorm, dropout, pool=i < MAX_POOLS,
                                     residual=residual, attention=attention, reduction=attention_reduction))
            ch = w
        self.features = nn.Sequential(*blocks)
        # Pool to head_pool × head_pool (3: 48×48 after 4 pools, exactly) so the head fits any input size
        # and depth; 6 flattens a 3-block net's map as it is, 1 is global average pooling.
        self.pool = nn.AdaptiveAvgPool2d(head_pool)
        hidden = [hidden] if isinstance(hidden, int) else list(hidden)
        head: List[nn.Module] = [nn.Flatten()]
        width = ch * head_pool * head_pool
        drop = [nn.Dropout(fc_dropout)] if fc_dropout > 0 else []
        for h in hidden:
            head += [*drop, nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        head += [*drop, nn.Linear(width, num_classes)]
        self.head = nn.Sequential(*head)
        # The last conv block's output is the finest map that still sees whole-face context.
        self.cam_layer = f"features.{len(widths) - 1}"
        self.head_name = "head"
        if kaiming_init:
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))

    def attention_maps(self, x: torch.Tensor) -> List[torch.Tensor]:
        """CBAM spatial attention maps (one per block, N×1×h×w) for input `x`; empty without CBAM."""
        self.forward(x)
        return [m.last_map for m in self.modules() if isinstance(m, CBAM) and m.last_map is not None]


@register_model()
def plain_cnn(num_classes: int = 7, in_chans: int = 1, **kwargs) -> PlainCNN:
    """VGG-style CNN: 4 blocks of two 3×3 convs + BN, widths 32-64-128-256 (1.8 M parameters)."""
    return PlainCNN(num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model()
def cbam_cnn(num_classes: int = 7, in_chans: int = 1, **kwargs) -> PlainCNN:
    """The plain CNN with CBAM (channel + spatial attention) after each block; see `attention_maps`."""
    return PlainCNN(num_classes=num_classes, in_chans=in_chans, **{"attention": "cbam", **kwargs})


@register_model()
def vgg_fer(num_classes: int = 7, in_chans: int = 1, **kwargs) -> PlainCNN:
    """VGG-style net after Khaireddin & Chen 2021: 4 blocks of two 3×3 conv + BN, 64→512, two FC layers.

    The paper's FC layers are 4096 wide; 1024 keeps the model ~10 M parameters with little loss on 48×48.
    """
    settings = dict(widths=(64, 128, 256, 512), hidden=(1024, 1024), dropout=0.0, fc_dropout=0.5)
    return PlainCNN(num_classes=num_classes, in_chans=in_chans, **{**settings, **kwargs})


class BaselineCNN(nn.Module):
    """The two-conv course baseline: 5×5 conv → pool → 5×5 conv → pool → FC."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: Sequence[int] = (32, 64),
                 hidden: int = 256, fc_dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, widths[0], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(widths[0], widths[1], 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.pool = nn.AdaptiveAvgPool2d(6)  # 48 → 12 after two pools; 6×6 keeps the head small
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(widths[1] * 36, hidden), nn.ReLU(inplace=True),
                                  nn.Dropout(fc_dropout), nn.Linear(hidden, num_classes))
        self.cam_layer = "features.4"  # the second conv's ReLU, before the last pool
        self.head_name = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)))


@register_model()
def baseline_cnn(num_classes: int = 7, in_chans: int = 1, **kwargs) -> BaselineCNN:
    """Two 5×5 conv layers and an FC head: the smallest baseline of the course projects."""
    return BaselineCNN(num_classes=num_classes, in_chans=in_chans, **kwargs)


class GapCNN(nn.Module):
    """Four conv blocks (two 3×3 conv + BN each) and a global-average-pool classifier."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128, 256),
                 dropout: float = 0.1, fc_dropout: float = 0.3) -> None:
        super().__init__()
        blocks, ch = [], in_chans
        for i, w in enumerate(widths):
            blocks.append(conv_block(ch, w, 2, True, dropout, pool=i < len(widths) - 1))
            ch = w
        self.features = nn.Sequential(*blocks)
        # No pool after the last block, so Grad-CAM sees a 6×6 map.
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(fc_dropout),
                                  nn.Linear(ch, num_classes))
        self.cam_layer = f"features.{len(widths) - 1}"
        self.head_name = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@register_model()
def gap_cnn(num_classes: int = 7, in_chans: int = 1, **kwargs) -> GapCNN:
    """Deeper 4-block CNN with global average pooling instead of a large FC head."""
    return GapCNN(num_classes=num_classes, in_chans=in_chans, **kwargs)
