"""Building blocks shared by the CNN family: conv blocks, squeeze-excitation and CBAM attention."""
from __future__ import annotations

from typing import List, Optional

import torch
import torch.nn as nn


def conv_bn_relu(in_ch: int, out_ch: int, convs: int, batchnorm: bool, kernel: int = 3,
                 last_relu: bool = True) -> List[nn.Module]:
    """`convs` convolutions, each followed by BatchNorm (optional) and ReLU."""
    layers: List[nn.Module] = []
    for i in range(convs):
        layers.append(nn.Conv2d(in_ch if i == 0 else out_ch, out_ch, kernel, padding=kernel // 2, bias=not batchnorm))
        if batchnorm:
            layers.append(nn.BatchNorm2d(out_ch))
        if last_relu or i < convs - 1:
            layers.append(nn.ReLU(inplace=True))
    return layers


def pool_and_dropout(pool: bool, dropout: float) -> List[nn.Module]:
    """2×2 max-pool (optional) then spatial dropout (when > 0)."""
    return ([nn.MaxPool2d(2)] if pool else []) + ([nn.Dropout2d(dropout)] if dropout > 0 else [])


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): reweight channels from their global average."""

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


class CBAM(nn.Module):
    """Convolutional Block Attention Module (Woo et al. 2018): channel, then spatial attention.

    The last spatial attention map (N×1×H×W, values in 0..1) is kept in `last_map` so that
    models can return it for display.
    """

    def __init__(self, channels: int, reduction: int = 8, kernel: int = 7) -> None:
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)
        self.last_map: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        x = x * channel
        spatial = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        self.last_map = spatial.detach()
        return x * spatial


class ResidualBlock(nn.Module):
    """Conv block with an optional identity/1×1 shortcut and optional SE, then pool and dropout."""

    def __init__(self, in_ch: int, out_ch: int, convs: int, batchnorm: bool, dropout: float, pool: bool,
                 residual: bool, attention: str, reduction: int = 8) -> None:
        super().__init__()
        # The last ReLU comes after the sum, as in ResNet.
        self.body = nn.Sequential(*conv_bn_relu(in_ch, out_ch, convs, batchnorm, last_relu=not residual))
        self.attention = {"none": nn.Identity, "se": SqueezeExcite, "cbam": CBAM}[attention](out_ch, reduction) \
            if attention != "none" else nn.Identity()
        self.shortcut: Optional[nn.Module] = None
        if residual:
            self.shortcut = nn.Identity() if in_ch == out_ch else nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, bias=not batchnorm), *( [nn.BatchNorm2d(out_ch)] if batchnorm else []))
        self.act = nn.ReLU(inplace=True) if residual else nn.Identity()
        self.post = nn.Sequential(*pool_and_dropout(pool, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attention(self.body(x))
        if self.shortcut is not None:
            y = self.act(y + self.shortcut(x))
        return self.post(y)
