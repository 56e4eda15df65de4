"""KacıFANN and Momentum-Kacı: loss-scaled gradient descent from the FER2013 optimizer study.

Both scale each gradient element by how large the current loss is relative to that weight:

    ratio = clip((loss + ε) / (W_ref + ε), 1/ratio_max, ratio_max)
    u     = ratio^(α − 1) ⊙ g
    KacıFANN:        W ← W − lr · clip(u, −update_clip, update_clip)
    Momentum-Kacı:   m ← μ·m + u;   W ← W − lr · clip(m, −update_clip, update_clip)

`W_ref` is a positive reference weight per element: the weight itself where it is positive,
otherwise the previous positive reference (initially `init_ref`), never below `w_floor`. With
α = 1 both reduce to SGD (with momentum). `step(loss)` takes the batch loss; a non-finite loss
skips the step and is counted in `skipped_steps`. Weight decay is decoupled (W ← W·(1 − lr·wd)).
All arithmetic is in float32, so fp16/bf16 parameters and gradients are safe; under AMP with a
GradScaler, pass the unscaled loss and let the scaler unscale the gradients first.
"""
from __future__ import annotations

import math
from typing import Callable, Iterable, Optional

import torch
from torch.optim import Optimizer


class KaciFANN(Optimizer):
    """KacıFANN: u = ((loss+ε)/(W_ref+ε))^(α−1) ⊙ g; W ← W − lr·clip(u)."""

    takes_loss = True  # the training loop passes `loss=` to `step`

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 1.2, eps: float = 1e-8,
                 w_floor: float = 1e-3, ratio_max: float = 1e3, update_clip: float = 1.0,
                 init_ref: float = 1.0, weight_decay: float = 0.0, **extra) -> None:
        if lr < 0 or eps <= 0 or w_floor <= 0 or ratio_max < 1 or update_clip <= 0 or init_ref <= 0:
            raise ValueError("KacıFANN needs lr ≥ 0, eps > 0, w_floor > 0, ratio_max ≥ 1, update_clip > 0, init_ref > 0")
        defaults = dict(lr=lr, alpha=alpha, eps=eps, w_floor=w_floor, ratio_max=ratio_max,
                        update_clip=update_clip, init_ref=init_ref, weight_decay=weight_decay, **extra)
        super().__init__(params, defaults)
        self.skipped_steps = 0

    def _direction(self, state: dict, u: torch.Tensor, group: dict) -> torch.Tensor:
        return u

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], torch.Tensor]] = None,
             loss: Optional[torch.Tensor | float] = None) -> Optional[torch.Tensor]:
        """One update from the current gradients and the batch `loss` (or `closure()`)."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if loss is None:
            raise ValueError(f"{type(self).__name__}.step needs the loss: call step(loss=loss)")
        value = float(loss)
        if not math.isfinite(value):
            self.skipped_steps += 1
            return loss if isinstance(loss, torch.Tensor) else None
        for group in self.param_groups:
            lr, alpha, eps = group["lr"], group["alpha"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                w = p.detach().float()
                if "ref" not in state:
                    state["ref"] = torch.full_like(w, group["init_ref"])
                # Keep the last positive weight as the reference where the weight is not positive.
                ref = torch.where(w > 0, w, state["ref"]).clamp_min_(group["w_floor"])
                state["ref"] = ref
                ratio = ((value + eps) / (ref + eps)).clamp_(1.0 / group["ratio_max"], group["ratio_max"])
                u = torch.nan_to_num(ratio.pow_(alpha - 1.0).mul_(p.grad.float()), nan=0.0, posinf=0.0, neginf=0.0)
                direction = self._direction(state, u, group)
                if group["weight_decay"]:
                    w.mul_(1.0 - lr * group["weight_decay"])
                w.add_(direction.clamp(-group["update_clip"], group["update_clip"]), alpha=-lr)
                p.copy_(w)
        return loss if isinstance(loss, torch.Tensor) else None


class MomentumKaci(KaciFANN):
    """Momentum-Kacı: m ← μ·m + u (u as in KacıFANN); W ← W − lr·clip(m)."""

    def __init__(self, params: Iterable, lr: float = 1e-2, momentum: float = 0.9, **kwargs) -> None:
        if not 0 <= momentum < 1:
            raise ValueError("momentum must be in [0, 1)")
        # A 'momentum' default also lets OneCycleLR cycle it, as it does for SGD.
        super().__init__(params, lr=lr, momentum=momentum, **kwargs)

    def _direction(self, state: dict, u: torch.Tensor, group: dict) -> torch.Tensor:
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = u.clone()
        else:
            state["momentum_buffer"].mul_(group["momentum"]).add_(u)
        return state["momentum_buffer"]
