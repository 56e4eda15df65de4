"""The training and evaluation loops, small and free of file I/O (as in torchvision's references)."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from fer.data.preprocess import Preprocessing, to_model_input


class NonFiniteLoss(RuntimeError):
    """A training loss was NaN or infinite (train.nonfinite=stop), or every batch's was (skip)."""


@dataclass
class EpochResult:
    loss: float
    accuracy: float
    images: int
    seconds: float
    nonfinite_batches: int = 0  # batches skipped for a NaN/inf loss (train.nonfinite=skip)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


def autocast(device: torch.device, dtype: Optional[torch.dtype]):
    """An autocast context for `dtype`, or a no-op for fp32."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _inputs(x: torch.Tensor, device: torch.device, spec: Preprocessing, channels_last: bool) -> torch.Tensor:
    x = to_model_input(x.to(device, non_blocking=True), spec)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


@dataclass
class _StepState:
    """The gradient being accumulated for the next optimizer step."""

    loss: Any = 0.0  # the step's mean loss (a tensor once a batch adds to it), for KacıFANN-style optimizers
    poisoned: bool = False  # a batch of this step had a non-finite loss


def _optimizer_step(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: Optional[torch.amp.GradScaler],
                    grad_clip: float, step: _StepState, batch_scheduler) -> None:
    """Apply (or, when poisoned, drop) the accumulated gradient, then step a per-batch schedule."""
    if step.poisoned:  # the step would carry NaN/inf gradients into the weights: drop it
        optimizer.zero_grad(set_to_none=True)
    else:
        if scaler is not None:
            scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        # KacıFANN-style optimizers scale their step by the batch loss.
        kwargs = {"loss": step.loss} if getattr(optimizer, "takes_loss", False) else {}
        if scaler is not None:
            scaler.step(optimizer, **kwargs)
            scaler.update()
        else:
            optimizer.step(**kwargs)
        optimizer.zero_grad(set_to_none=True)
    step.loss, step.poisoned = 0.0, False
    if batch_scheduler is not None:
        batch_scheduler.step()  # after optimizer.step(), as PyTorch requires; skipped steps keep time too


def train_one_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer,
                    criterion: nn.Module, device: torch.device, spec: Preprocessing, *,
                    amp_dtype: Optional[torch.dtype] = None, scaler: Optional[torch.amp.GradScaler] = None,
                    grad_clip: float = 0.0, batch_scheduler=None, channels_last: bool = False,
                    accumulate: int = 1, nonfinite: str = "stop",
                    on_batch: Optional[Callable[[int, int, float], None]] = None) -> EpochResult:
    """One pass over `loader`: an optimizer step every `accumulate` batches (and after the last one),
    then `batch_scheduler.step()`. Under DistributedDataParallel the gradients are only averaged across
    processes on the batch that steps (`no_sync` on the others).

    A NaN or infinite batch loss raises NonFiniteLoss (`nonfinite="stop"`) or drops the gradients
    gathered for that step and goes on (`"skip"`), so NaNs never reach the weights."""
    model.train()
    total_loss, correct, seen, skipped = 0.0, 0, 0, 0
    start = time.perf_counter()
    n_batches = len(loader)
    optimizer.zero_grad(set_to_none=True)
    step = _StepState()
    for i, (x, y) in enumerate(loader):
        x = _inputs(x, device, spec, channels_last)
        y = y.to(device, non_blocking=True)
        steps = (i + 1) % accumulate == 0 or i + 1 == n_batches
        in_cycle = accumulate if i < n_batches - n_batches % accumulate else n_batches % accumulate
        sync = contextlib.nullcontext() if steps or not hasattr(model, "no_sync") else model.no_sync()
        with sync:
            with autocast(device, amp_dtype):
                logits = model(x)
                loss = criterion(logits.float(), y)
            scaled = loss / in_cycle  # the step sees the mean gradient over the accumulated batches
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        value = loss.item()
        if not math.isfinite(value):
            if nonfinite != "skip":
                raise NonFiniteLoss(f"non-finite training loss ({value}) at batch {i + 1} of {n_batches}: lower "
                                    "optim.lr, set train.grad_clip, or train.nonfinite=skip to drop such batches")
            skipped, step.poisoned = skipped + 1, True
        else:
            step.loss += loss.detach() / in_cycle
            n = y.shape[0]  # faces, also for N×C probability targets
            total_loss += value * n
            correct += (logits.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)).sum().item()  # soft targets too
            seen += n
        if steps:
            _optimizer_step(model, optimizer, scaler, grad_clip, step, batch_scheduler)
        if on_batch is not None:
            on_batch(i + 1, n_batches, value)
    if n_batches and skipped == n_batches:
        raise NonFiniteLoss(f"every one of the epoch's {n_batches} batches had a non-finite loss: the weights have "
                            "diverged; lower optim.lr or set train.grad_clip")
    return EpochResult(total_loss / max(seen, 1), correct / max(seen, 1), seen, time.perf_counter() - start,
                       skipped)


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, spec: Preprocessing, *,
            amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False):
    """(probabilities N×C float32, labels N) over an evaluation loader."""
    model.eval()
    probs, labels = [], []
    for x, y in loader:
        with autocast(device, amp_dtype):
            logits = model(_inputs(x, device, spec, channels_last))
        probs.append(torch.softmax(logits.float(), dim=1).cpu())
        labels.append(y)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def validate(model: nn.Module, loader: DataLoader, device: torch.device, spec: Preprocessing,
             **kwargs) -> tuple:
    """(cross-entropy, accuracy, probabilities, labels) on the validation loader, once per epoch.

    The loss is the plain cross-entropy (no smoothing or class weights), so runs compare fairly.
    """
    probs, labels = predict(model, loader, device, spec, **kwargs)
    if len(labels) == 0:
        return float("nan"), float("nan"), probs, labels
    nll = -np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-12, None))
    return float(nll.mean()), float(np.mean(probs.argmax(1) == labels)), probs, labels
