"""Study E's five networks, layer for layer as its notebooks list them (the W&B baseline → CBAM ladder).

Baseline V1 and the CBAM CNN are listed layer by layer; Baseline V2, Deeper V1 and Deeper V2 are
described as changes, and where the text is silent the reading is written beside the layer (and in
the study's `readings`, `fer.jobs.suites.studies`). `tests/test_study_nets.py` rebuilds each net from
the listing in plain PyTorch and compares module types, shapes and parameter counts.
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.nn as nn

from fer.models._registry import register_model
from fer.models.blocks import CBAM


def _fc_stack(width: int, hidden: Sequence[int], dropout: float, batchnorm: bool, num_classes: int) -> List[nn.Module]:
    """Linear → (BN) → ReLU → Dropout per hidden width, then the class layer."""
    layers: List[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(width, h), *([nn.BatchNorm1d(h)] if batchnorm else []), nn.ReLU(inplace=True),
                   nn.Dropout(dropout)]
        width = h
    return layers + [nn.Linear(width, num_classes)]


class StudyEBaseline(nn.Module):
    """Two 5×5 convs with pooling and a dropout MLP (Baseline V1; V2 adds BN, spatial dropout, adaptive pool)."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, batchnorm: bool = False, spatial_dropout: float = 0.0,
                 dropout: float = 0.3, hidden: Sequence[int] = (128,), adaptive_pool: int = 0) -> None:
        super().__init__()
        layers: List[nn.Module] = []
        for cin, cout in ((in_chans, 32), (32, 64)):
            layers += [nn.Conv2d(cin, cout, 5, padding=2), *([nn.BatchNorm2d(cout)] if batchnorm else []),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, 2),
                       *([nn.Dropout2d(spatial_dropout)] if spatial_dropout > 0 else [])]
        self.features = nn.Sequential(*layers)
        # V1 flattens the 12×12 map of a 48×48 face as it is (64·12·12 = 9216 inputs, as listed).
        self.pool = nn.AdaptiveAvgPool2d(adaptive_pool) if adaptive_pool else None
        side = adaptive_pool or 12
        head: List[nn.Module] = [nn.Flatten()]
        width = 64 * side * side
        for h in hidden:  # the listing puts each dropout before its linear layer
            head += [nn.Dropout(dropout), nn.Linear(width, h), nn.ReLU(inplace=True)]
            width = h
        self.head = nn.Sequential(*head, nn.Dropout(dropout), nn.Linear(width, num_classes))
        block = len(layers) // 2  # both blocks have the same layers
        self.cam_layer = f"features.{block + (2 if batchnorm else 1)}"  # the second conv's ReLU: a 24×24 map
        self.head_name = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        return self.head(self.pool(x) if self.pool is not None else x)


class StudyEDeeper(nn.Module):
    """Four 3×3 conv blocks (conv → BN → ReLU → max-pool), global average pool, a BN MLP head."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128, 256),
                 hidden: Sequence[int] = (512, 256), dropout: float = 0.5, spatial_dropout: float = 0.0,
                 spatial_dropout_blocks: int = 2) -> None:
        super().__init__()
        blocks, ch = [], in_chans
        for i, w in enumerate(widths):
            early = [nn.Dropout2d(spatial_dropout)] if spatial_dropout > 0 and i < spatial_dropout_blocks else []
            blocks.append(nn.Sequential(nn.Conv2d(ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                                        nn.MaxPool2d(2), *early))
            ch = w
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  *_fc_stack(ch, hidden, dropout, True, num_classes))
        self.cam_layer = f"features.{len(widths) - 2}"  # the 6×6 map; the last block's is 3×3
        self.head_name = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class StudyECBAM(nn.Module):
    """Three blocks of two 3×3 conv + BN, max-pool, then CBAM; global average pool; FC 256 with BN."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, widths: Sequence[int] = (32, 64, 128),
                 reduction: int = 16, spatial_kernel: int = 1, dropout: float = 0.5, hidden: int = 256) -> None:
        super().__init__()
        blocks, ch = [], in_chans
        for w in widths:
            blocks.append(nn.Sequential(
                nn.Conv2d(ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2),
                CBAM(w, reduction, spatial_kernel)))  # the listing puts CBAM after the pool
            ch = w
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  *_fc_stack(ch, [hidden], dropout, True, num_classes))
        self.cam_layer = f"features.{len(widths) - 1}"
        self.head_name = "head"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def attention_maps(self, x: torch.Tensor) -> List[torch.Tensor]:
        """CBAM spatial attention maps (one per block, N×1×h×w) for input `x`."""
        self.forward(x)
        return [m.last_map for m in self.modules() if isinstance(m, CBAM) and m.last_map is not None]


@register_model()
def study_e_baseline_v1(num_classes: int = 7, in_chans: int = 1, **kwargs) -> StudyEBaseline:
    """Study E's Baseline V1 as listed: two 5×5 convs, FC 9216→128, dropout 0.3 (1,232,775 parameters)."""
    return StudyEBaseline(num_classes, in_chans, **kwargs)


@register_model()
def study_e_baseline_v2(num_classes: int = 7, in_chans: int = 1, **kwargs) -> StudyEBaseline:
    """Study E's Baseline V2: V1 + BN, Dropout2d 0.2, adaptive pool to 6×6, FC 512→256→128, dropout 0.6."""
    settings = dict(batchnorm=True, spatial_dropout=0.2, dropout=0.6, hidden=(512, 256, 128), adaptive_pool=6)
    return StudyEBaseline(num_classes, in_chans, **{**settings, **kwargs})


@register_model()
def study_e_deeper_v1(num_classes: int = 7, in_chans: int = 1, **kwargs) -> StudyEDeeper:
    """Study E's Deeper V1: 4 conv blocks 32→256 with BN, global average pool, FC 512→256 with BN, dropout 0.5."""
    return StudyEDeeper(num_classes, in_chans, **kwargs)


@register_model()
def study_e_deeper_v2(num_classes: int = 7, in_chans: int = 1, **kwargs) -> StudyEDeeper:
    """Study E's Deeper V2: last block 192 wide, Dropout2d 0.1 in the first two blocks, FC 256, dropout 0.7."""
    settings = dict(widths=(32, 64, 128, 192), hidden=(256,), dropout=0.7, spatial_dropout=0.1)
    return StudyEDeeper(num_classes, in_chans, **{**settings, **kwargs})


@register_model()
def study_e_cbam(num_classes: int = 7, in_chans: int = 1, **kwargs) -> StudyECBAM:
    """Study E's attention CNN as listed: 3 double-conv blocks with CBAM after each pool (1×1 spatial conv)."""
    return StudyECBAM(num_classes, in_chans, **kwargs)
