"""Transfer learning: separate backbone/head learning rates and a frozen-backbone warm-up.

Every model names its classifier in `head_name` (the ResNets: "fc"; the CNNs: "head"). With
`transfer.freeze_epochs = N > 0`, epochs 1..N train the head alone; from epoch N+1 the modules
in `transfer.unfreeze` (default `layer4`; "all" for everything) train too. With N = 0 the whole
network is fine-tuned from the start. `optim.backbone_lr` (0: same as `optim.lr`) sets the
backbone's learning rate; the head uses `optim.lr`. The state is a function of the epoch, so a
resumed run freezes exactly what the uninterrupted one did.
"""
from __future__ import annotations

from typing import Iterable, List

import torch.nn as nn

from fer.config import RunConfig


def uses_transfer(cfg: RunConfig) -> bool:
    """Whether the run needs head/backbone parameter groups."""
    return cfg.transfer.freeze_epochs > 0 or cfg.optim.backbone_lr > 0


def _head(model: nn.Module) -> nn.Module:
    return model.get_submodule(model.head_name)


def parameter_groups(model: nn.Module, cfg: RunConfig) -> Iterable:
    """Optimizer parameters: all of them, or a head group (optim.lr) and a backbone group (backbone_lr)."""
    if not uses_transfer(cfg):
        return model.parameters()
    head = list(_head(model).parameters())
    head_ids = {id(p) for p in head}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return [{"params": head, "lr": cfg.optim.lr},
            {"params": backbone, "lr": cfg.optim.backbone_lr or cfg.optim.lr}]


def apply_freeze(model: nn.Module, cfg: RunConfig, epoch: int) -> str:
    """Set `requires_grad` for `epoch`; returns what trains, for the log."""
    n = cfg.transfer.freeze_epochs
    if n <= 0:
        return "all layers"
    head = _head(model)
    if epoch <= n:
        trainable: List[nn.Module] = [head]
        what = f"head only (epoch {epoch} of {n} frozen-backbone epochs)"
    elif "all" in cfg.transfer.unfreeze:
        trainable, what = [model], "all layers"
    else:
        trainable = [head] + [model.get_submodule(name) for name in cfg.transfer.unfreeze]
        what = "head + " + ", ".join(cfg.transfer.unfreeze)
    for p in model.parameters():
        p.requires_grad_(False)
    for module in trainable:
        for p in module.parameters():
            p.requires_grad_(True)
    return what
