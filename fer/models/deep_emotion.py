"""Deep-Emotion (Minaee, Minaei & Abdolrashidi 2019): a small CNN behind a spatial transformer.

The localisation branch predicts an affine transform per face; `affine_grid`/`grid_sample` warp
the input with it, so the classifier sees the face regions the network learned to focus on.
`warp(x)` returns that warped input for display.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from fer.models._registry import register_model


class DeepEmotion(nn.Module):
    """Spatial transformer + four 3×3 conv layers (10 channels) + two FC layers, as in the paper's code."""

    def __init__(self, num_classes: int = 7, in_chans: int = 1, input_size: int = 48, dropout: float = 0.5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 10, 3)
        self.conv2 = nn.Conv2d(10, 10, 3)
        self.conv3 = nn.Conv2d(10, 10, 3)
        self.conv4 = nn.Conv2d(10, 10, 3)
        self.norm = nn.BatchNorm2d(10)
        self.dropout = nn.Dropout(dropout)
        self.localization = nn.Sequential(nn.Conv2d(in_chans, 8, 7), nn.MaxPool2d(2), nn.ReLU(True),
                                          nn.Conv2d(8, 10, 5), nn.MaxPool2d(2), nn.ReLU(True))
        # Flattened sizes depend on the input size (810 and 640 at 48×48); measure them once.
        with torch.no_grad():
            probe = torch.zeros(1, in_chans, input_size, input_size)
            loc_features = self.localization(probe).numel()
            cls_features = self._features(probe).numel()
        self.fc_loc = nn.Sequential(nn.Linear(loc_features, 32), nn.ReLU(True), nn.Linear(32, 6))
        # Start from the identity transform, so early training sees the unwarped face.
        nn.init.zeros_(self.fc_loc[2].weight)
        with torch.no_grad():
            self.fc_loc[2].bias.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))
        self.fc1 = nn.Linear(cls_features, 50)
        self.fc2 = nn.Linear(50, num_classes)
        self.cam_layer = "conv4"
        self.head_name = "fc2"  # the last linear layer (fc1 is part of the paper's feature path)

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The predicted N×2×3 affine transforms."""
        return self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3)

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """The spatial transformer's output: `x` warped by the predicted transform."""
        grid = F.affine_grid(self.theta(x).float(), list(x.shape), align_corners=False)
        return F.grid_sample(x.float(), grid, align_corners=False).to(x.dtype)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.conv3(x))
        return F.relu(F.max_pool2d(self.norm(self.conv4(x)), 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self._features(self.warp(x)))
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


@register_model()
def deep_emotion(num_classes: int = 7, in_chans: int = 1, **kwargs) -> DeepEmotion:
    """Deep-Emotion: attentional CNN with a spatial-transformer localisation branch (Minaee et al. 2019)."""
    return DeepEmotion(num_classes=num_classes, in_chans=in_chans, **kwargs)
