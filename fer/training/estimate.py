"""How long a run will take on this machine, before it is launched.

The run's own model is built and timed for a few real training and evaluation steps on this
machine's device, at the run's batch size and precision (random pixels: speed does not depend on
them). Times per image, multiplied by the faces the run will see, give the estimate. It leaves out
data loading and augmentation (in memory, a small share for these models) and the start-up (a few
seconds). Against the two full CPU runs in docs/results.md: 88 min estimated for the shipped model's
77, 29 min for the plain CNN's 35.
"""
from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Dict

import torch
from torch import nn

from fer.config import RunConfig
from fer.core.constants import split_parts
from fer.core.device import amp_dtype, select_device
from fer.models import create_model

WEIGHT_KWARGS = ("pretrained", "weights_path")  # weights do not change speed; loading them may need the internet


@dataclass(frozen=True)
class Throughput:
    train_images_per_s: float
    eval_images_per_s: float
    device: str


@dataclass(frozen=True)
class Estimate:
    seconds: float
    train_images: int
    val_images: int
    test_images: int
    throughput: Throughput

    def describe(self) -> str:
        """One line: the total, and what it rests on."""
        minutes = self.seconds / 60
        total = f"{minutes:.0f} min" if minutes >= 2 else f"{self.seconds:.0f} s"
        return (f"about {total}: {self.train_images:,} training and {self.val_images:,} validation faces per epoch, "
                f"{self.test_images:,} test faces at the end, at {self.throughput.train_images_per_s:,.0f} training "
                f"images/s measured just now on {self.throughput.device}")


def _timed(step, repeats: int) -> float:
    step()  # warm-up: first-call allocations and kernel choices
    start = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - start) / repeats


def measure_throughput(cfg: RunConfig, num_classes: int = 7, repeats: int = 3) -> Throughput:
    """Images/s of the run's model for training and for evaluation, timed on this machine now."""
    device = select_device(cfg.train.device)
    kwargs = {k: v for k, v in cfg.model.kwargs.items() if k not in WEIGHT_KWARGS}
    model = create_model(cfg.model.name, num_classes=num_classes, in_chans=cfg.model.in_chans, **kwargs).to(device)
    dtype = amp_dtype(cfg.train.amp, device)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else nullcontext
    size, batch = cfg.model.input_size, cfg.train.batch_size
    images = torch.randn(batch, cfg.model.in_chans, size, size, device=device)
    labels = torch.randint(0, num_classes, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    loss_fn = nn.CrossEntropyLoss()

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    eval_batch = torch.randn(min(cfg.train.eval_batch_size, 256), cfg.model.in_chans, size, size, device=device)

    def eval_step() -> None:
        with torch.no_grad(), autocast():
            model(eval_batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    model.train()
    train_s = _timed(train_step, repeats)
    model.eval()
    eval_s = _timed(eval_step, repeats)
    where = str(device) + (f" ({str(dtype).replace('torch.', '')})" if dtype else "")
    return Throughput(batch / train_s, len(eval_batch) / eval_s, where)


def planned_images(cfg: RunConfig, split_sizes: Dict[str, int]) -> Dict[str, int]:
    """Faces per part of the run: training and validation per epoch, and the test split, from the split sizes."""
    pool = sum(split_sizes.get(s, 0) for s in cfg.data.train_splits)
    if cfg.data.val_source == "train_fraction":
        val = math.ceil(pool * cfg.data.val_fraction - 1e-9)  # as scikit-learn's train_test_split counts
        train = pool - val
    else:
        train, val = pool, split_sizes.get(cfg.data.val_source, 0)
    if cfg.data.limit:
        train, val = min(train, cfg.data.limit), min(val, cfg.data.limit)
    test = sum(split_sizes.get(part, 0) for part in split_parts(cfg.data.test_split))
    if cfg.data.test_limit:
        test = min(test, cfg.data.test_limit)
    return {"train": train, "val": val, "test": test}


def estimate_run(cfg: RunConfig, split_sizes: Dict[str, int], throughput: Throughput) -> Estimate:
    """The run's duration on this machine: every epoch's training and validation, then the test split."""
    n = planned_images(cfg, split_sizes)
    per_epoch = n["train"] / throughput.train_images_per_s + n["val"] / throughput.eval_images_per_s
    seconds = cfg.train.epochs * per_epoch + (n["val"] + n["test"]) / throughput.eval_images_per_s  # + the final scoring
    return Estimate(seconds, n["train"], n["val"], n["test"], throughput)
