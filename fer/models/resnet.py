"""torchvision ResNets adapted to 1×48×48 faces."""
from __future__ import annotations

import torch.nn as nn
from torchvision.models import resnet18 as tv_resnet18

from fer.models import register_model


@register_model()
def resnet18(num_classes: int = 7, in_chans: int = 1) -> nn.Module:
    """ResNet-18 with a 3×3 stride-1 stem and no max-pool, so 48×48 keeps a 6×6 final map."""
    model = tv_resnet18(weights=None, num_classes=num_classes)
    # The ImageNet stem (7×7 stride 2 + max-pool) would shrink 48×48 to 12×12 before layer1.
    model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    model.cam_layer = "layer4"
    return model
