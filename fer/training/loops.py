"""The training and evaluation loops, small and free of file I/O (as in torchvision's references)."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

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
    total_loss, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    n_batches = len(loader)
    # KacıFANN-style optimizers scale their step by the batch loss.
    takes_loss = getattr(optimizer, "takes_loss", False)
    optimizer.zero_grad(set_to_none=True)
    step_loss = 0.0
    skipped, poisoned = 0, False  # poisoned: this step's accumulated gradients hold a non-finite batch
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
            skipped += 1
            poisoned = True
        else:
            step_loss += loss.detach() / in_cycle
        if steps and poisoned:  # the step would carry NaN/inf gradients into the weights: drop it
            optimizer.zero_grad(set_to_none=True)
            step_loss, poisoned = 0.0, False
            if batch_scheduler is not None:
                batch_scheduler.step()  # the schedule keeps time with the batches
        elif steps:
            if scaler is not None:
                scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
            if grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            kwargs = {"loss": step_loss} if takes_loss else {}
            if scaler is not None:
                scaler.step(optimizer, **kwargs)
                scaler.update()
            else:
                optimizer.step(**kwargs)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            if batch_scheduler is not None:
                batch_scheduler.step()  # after optimizer.step(), as PyTorch requires
        if math.isfinite(value):
            n = y.numel()
            total_loss += value * n
            correct += (logits.argmax(1) == (y.argmax(1) if y.ndim == 2 else y)).sum().item()  # soft targets too
            seen += n
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
