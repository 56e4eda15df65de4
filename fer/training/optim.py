"""Optimizer and learning-rate scheduler registries.

Each scheduler declares its stepping cadence: "batch" (stepped after every optimizer step),
"epoch" (after every epoch) or "plateau" (after every epoch, with the validation accuracy).
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from fer.config import OptimConfig, SchedConfig
from fer.core.registry import Registry
from fer.training.kaci import KaciFANN, MomentumKaci

OPTIMIZERS: Registry[Callable[[Iterable, OptimConfig], Optimizer]] = Registry("optimizer")
SCHEDULERS: Registry[Callable[..., Optional[LRScheduler | ReduceLROnPlateau]]] = Registry("scheduler")


@OPTIMIZERS.register("adamw")
def adamw(params: Iterable, cfg: OptimConfig) -> Optimizer:
    """AdamW (decoupled weight decay)."""
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


@OPTIMIZERS.register("adam")
def adam(params: Iterable, cfg: OptimConfig) -> Optimizer:
    """Adam with L2 weight decay."""
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable, cfg: OptimConfig) -> Optimizer:
    """SGD with momentum (Nesterov when `nesterov`)."""
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.nesterov and cfg.momentum > 0)


def _kaci_kwargs(cfg: OptimConfig) -> dict:
    return dict(lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, w_floor=cfg.w_floor, ratio_max=cfg.ratio_max,
                update_clip=cfg.update_clip, weight_decay=cfg.weight_decay)


@OPTIMIZERS.register("kacifann")
def kacifann(params: Iterable, cfg: OptimConfig) -> Optimizer:
    """KacıFANN: gradient scaled by ((loss+ε)/(W_ref+ε))^(α−1), clipped (see fer.training.kaci)."""
    return KaciFANN(params, **_kaci_kwargs(cfg))


@OPTIMIZERS.register("momentum_kaci")
def momentum_kaci(params: Iterable, cfg: OptimConfig) -> Optimizer:
    """Momentum-Kacı: the KacıFANN update accumulated in a momentum buffer (see fer.training.kaci)."""
    return MomentumKaci(params, momentum=cfg.momentum, **_kaci_kwargs(cfg))


def build_optimizer(params: Iterable, cfg: OptimConfig) -> Optimizer:
    """The optimizer `cfg.name` over `params`."""
    return OPTIMIZERS.get(cfg.name)(params, cfg)


@SCHEDULERS.register("none", cadence="epoch")
def constant(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int) -> None:
    """Constant learning rate."""
    return None


@SCHEDULERS.register("onecycle", cadence="batch")
def onecycle(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int) -> LRScheduler:
    """OneCycle: warm up to `max_lr`, then anneal (stepped per batch)."""
    # Peak per parameter group: `max_lr` scales every group's lr alike (backbone/head keep their ratio).
    base = optimizer.param_groups[0]["lr"]
    scale = cfg.max_lr / base if cfg.max_lr and base else 1.0
    max_lr = [g["lr"] * scale for g in optimizer.param_groups]
    # Momentum cycling needs a momentum (SGD, Momentum-Kacı) or betas (Adam); KacıFANN has neither.
    cycle = any(k in optimizer.defaults for k in ("momentum", "betas"))
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, epochs=epochs, cycle_momentum=cycle,
                                               steps_per_epoch=steps_per_epoch, pct_start=cfg.pct_start)


@SCHEDULERS.register("cosine", cadence="epoch")
def cosine(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int) -> LRScheduler:
    """Cosine annealing to `min_lr` over the run."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs), eta_min=cfg.min_lr)


@SCHEDULERS.register("step", cadence="epoch")
def step(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int) -> LRScheduler:
    """Multiply by `gamma` every `step_size` epochs."""
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)


@SCHEDULERS.register("multistep", cadence="epoch")
def multistep(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int) -> LRScheduler:
    """Multiply by `gamma` at each epoch in `milestones`."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(cfg.milestones), gamma=cfg.gamma)


@SCHEDULERS.register("plateau", cadence="plateau")
def plateau(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int) -> ReduceLROnPlateau:
    """Multiply by `factor` when validation accuracy stalls for `patience` epochs."""
    return ReduceLROnPlateau(optimizer, mode="max", factor=cfg.factor, patience=cfg.patience)


@SCHEDULERS.register("warmup_cosine", cadence="batch")
def warmup_cosine(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int) -> LRScheduler:
    """Linear warm-up for `warmup_epochs`, then cosine to `min_lr` (stepped per batch)."""
    total = max(1, epochs * steps_per_epoch)
    warmup = min(total - 1, cfg.warmup_epochs * steps_per_epoch)
    base = optimizer.param_groups[0]["lr"]
    floor = cfg.min_lr / base if base else 0.0  # relative, so every parameter group keeps its ratio

    def factor(step_no: int) -> float:
        if step_no < warmup:
            return (step_no + 1) / warmup
        progress = (step_no - warmup) / max(1, total - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def build_scheduler(optimizer: Optimizer, cfg: SchedConfig, epochs: int, steps_per_epoch: int):
    """(scheduler or None, cadence) for `cfg.name`."""
    sched = SCHEDULERS.get(cfg.name)(optimizer, cfg, epochs, steps_per_epoch)
    return sched, SCHEDULERS.info(cfg.name)["cadence"]
