"""Each study net rebuilt from its study's listing in plain PyTorch, compared with the product's, layer by layer.

The transcriptions below are written from the study texts (Study E's notebooks' listings; where the text
is silent, the reading in the study's `readings`), never by calling the product's builders. Each pair
is compared by leaf-module types and settings in order, every leaf's output shape on a 48×48 face, the
parameter count, and the outputs once the product's weights are copied in order.
"""
import re

import pytest
import torch
import torch.nn as nn

from fer.jobs.suites import SUITES, suite_configs
from fer.models import count_parameters, create_model


class CBAMListing(nn.Module):
    """CBAM as Study E describes it: channel attention from average and max pooling, then a 1×1 spatial conv."""

    def __init__(self, channels, reduction=16, spatial_kernel=1):
        super().__init__()
        hidden = max(4, channels // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, channels, 1))
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x):
        x = x * torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))


def baseline_v1():  # 02_baseline_cnn.ipynb, Version 1, line by line
    return nn.Sequential(
        nn.Conv2d(1, 32, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(32, 64, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Dropout(0.3), nn.Linear(128, 7))


def baseline_v2():  # Version 2: BN after each conv, Dropout2d 0.2, dropout 0.6, FC 512 → 256 → 128, adaptive pool
    return nn.Sequential(
        nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Dropout2d(0.2),
        nn.Conv2d(32, 64, 5, padding=2), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2, 2), nn.Dropout2d(0.2),
        nn.AdaptiveAvgPool2d(6), nn.Flatten(),
        nn.Dropout(0.6), nn.Linear(64 * 6 * 6, 512), nn.ReLU(), nn.Dropout(0.6), nn.Linear(512, 256), nn.ReLU(),
        nn.Dropout(0.6), nn.Linear(256, 128), nn.ReLU(), nn.Dropout(0.6), nn.Linear(128, 7))


def deeper(widths, hidden, dropout, spatial_dropout):  # 03_deeper_cnn.ipynb: 4 conv blocks + BN, GAP, BN FC layers
    layers, ch = [], 1
    for i, w in enumerate(widths):
        layers += [nn.Conv2d(ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2)]
        if spatial_dropout and i < 2:  # V2: Dropout2d(0.1) in the early layers
            layers.append(nn.Dropout2d(spatial_dropout))
        ch = w
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(ch, h), nn.BatchNorm1d(h), nn.ReLU(), nn.Dropout(dropout)]
        ch = h
    return nn.Sequential(*layers, nn.Linear(ch, 7))


def cbam_cnn():  # 04_attention_cnn.ipynb, the listing
    layers, ch = [], 1
    for w in (32, 64, 128):
        layers += [nn.Conv2d(ch, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
                   nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(), nn.MaxPool2d(2), CBAMListing(w)]
        ch = w
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(128, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Dropout(0.5), nn.Linear(256, 7))


LISTINGS = {  # the variant of study-e-ladder → (its transcription, the parameter count the study gives, if any)
    "baseline-v1": (baseline_v1, 1_232_775),
    "baseline-v2": (baseline_v2, None),
    "deeper-v1": (lambda: deeper((32, 64, 128, 256), (512, 256), 0.5, 0.0), None),
    "deeper-v2": (lambda: deeper((32, 64, 128, 192), (256,), 0.7, 0.1), None),
    "deeper-v3": (lambda: deeper((32, 64, 128, 192), (256,), 0.7, 0.1), None),
    "cbam": (cbam_cnn, None),
}


def leaves(model: nn.Module):
    """Leaf modules in registration order (the listed order for these nets)."""
    return [m for m in model.modules() if not list(m.children())]


def describe(module: nn.Module) -> str:
    """The module's type and settings, without the in-place flag (which changes no result)."""
    return re.sub(r"inplace=True", "", repr(module))


def leaf_shapes(model: nn.Module, x: torch.Tensor):
    shapes: list = []
    handles = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for m in leaves(model)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def product_model(variant: str) -> nn.Module:
    cfg = next(c for c in suite_configs("study-e-ladder", variants=[variant]))
    return create_model(cfg.model.name, num_classes=7, in_chans=1, **cfg.model.kwargs)


def test_every_rung_of_study_e_has_a_transcription():
    assert [v.name for v in SUITES.get("study-e-ladder")(0)] == list(LISTINGS)


@pytest.mark.parametrize("variant", list(LISTINGS))
def test_study_e_nets_are_the_listed_nets_layer_by_layer(variant):
    build, reported = LISTINGS[variant]
    torch.manual_seed(0)
    ours, listed = product_model(variant).eval(), build().eval()
    assert [describe(m) for m in leaves(ours)] == [describe(m) for m in leaves(listed)]
    x = torch.randn(2, 1, 48, 48)
    assert leaf_shapes(ours, x) == leaf_shapes(listed, x)
    assert count_parameters(ours) == count_parameters(listed)
    if reported:
        assert count_parameters(ours) == reported
    # Same weights in the same order → the same function: the layers also run in the listed order.
    with torch.no_grad():
        for mine, theirs in zip(ours.state_dict().values(), listed.state_dict().values(), strict=True):
            theirs.copy_(mine)
        assert torch.allclose(ours(x), listed(x), atol=1e-5)


def test_a_different_net_fails_the_comparison():
    # The check has teeth: the ladder's old Baseline V1 (four double-conv blocks, 1,240,231 parameters) is
    # within 1% of the study's count but not its net.
    old = create_model("plain_cnn", widths=[32, 64, 128, 256], convs_per_block=2, batchnorm=True, dropout=0.0,
                       fc_dropout=0.5, head_pool=1, hidden=256)
    assert abs(count_parameters(old) - 1_232_775) < 0.01 * 1_232_775
    assert [describe(m) for m in leaves(old)] != [describe(m) for m in leaves(baseline_v1())]
