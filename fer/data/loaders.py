"""Torch datasets and loaders over the in-memory uint8 faces (no decoding in the training loop)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, Sampler, WeightedRandomSampler

from fer.data.augment import Augment


class FaceDataset(Dataset):
    """(uint8 1×48×48 tensor, label) pairs; augmentation, if any, runs per item on uint8.

    Labels are class indices, or N×C float probability targets (FER+ soft labels), which PyTorch's
    cross-entropy takes as they are."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: Optional[Augment] = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
        labels = np.asarray(labels)
        self.labels = torch.from_numpy(labels.astype(np.float32 if labels.ndim == 2 else np.int64))
        self.augment = augment

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i]
        return (self.augment(x) if self.augment is not None else x), self.labels[i]


def inverse_frequency_weights(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Per-class weights n / (k · count_c), as scikit-learn's 'balanced' (absent classes get 0)."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.zeros(num_classes)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


class ShardSampler(Sampler):
    """One process's share of a sampler's order, for DistributedDataParallel (a distributed sampler).

    Every process draws the same order (the generator is seeded identically per epoch, so a resumed run
    retraces it), pads it to a multiple of `world` and takes every `world`-th index from `rank`: disjoint
    shards of equal length, so every process takes the same number of steps.
    """

    def __init__(self, base: Sampler, rank: int, world: int) -> None:
        self.base, self.rank, self.world = base, rank, world

    def __len__(self) -> int:
        return -(-len(self.base) // self.world)

    def __iter__(self):
        order = list(self.base)
        order += order[: len(self) * self.world - len(order)]
        return iter(order[self.rank::self.world])


def training_order(labels: np.ndarray, sampler: str, num_classes: int, generator: torch.Generator,
                   rank: int = 0, world: int = 1) -> Sampler:
    """The order of one epoch's training faces (shuffled, or class-balanced with sampler='weighted'), process
    `rank`'s shard of it: the DataLoader path and the resident fast path draw it alike."""
    if sampler == "weighted":
        per_sample = inverse_frequency_weights(labels, num_classes)[labels]
        order: Sampler = WeightedRandomSampler(torch.as_tensor(per_sample), num_samples=len(labels), replacement=True,
                                               generator=generator)
    elif sampler == "none":
        order = RandomSampler(range(len(labels)), generator=generator)
    else:
        raise ValueError(f"data.sampler must be 'none' or 'weighted', got {sampler!r}")
    return ShardSampler(order, rank, world) if world > 1 else order


def drops_last(shard: int, batch_size: int) -> bool:
    """Whether an epoch drops its last batch: only when it would hold one face, which breaks BatchNorm in train mode."""
    return shard % batch_size == 1


def train_loader(images: np.ndarray, labels: np.ndarray, augment: Optional[Augment], batch_size: int,
                 sampler: str, num_classes: int, generator: torch.Generator, num_workers: int = 0,
                 rank: int = 0, world: int = 1, pin_memory: bool = False,
                 targets: Optional[np.ndarray] = None) -> DataLoader:
    """Shuffled (or class-balanced with sampler='weighted') training batches; process `rank`'s shard of them.

    `targets` (N×C probabilities) replace the class-index labels as what the loss sees."""
    order = training_order(labels, sampler, num_classes, generator, rank, world)
    return DataLoader(FaceDataset(images, labels if targets is None else targets, augment), batch_size=batch_size,
                      sampler=order, num_workers=num_workers, drop_last=drops_last(len(order), batch_size),
                      persistent_workers=num_workers > 0, pin_memory=pin_memory)


def eval_loader(images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> DataLoader:
    """Ordered, un-augmented batches for evaluation and prediction."""
    return DataLoader(FaceDataset(images, labels), batch_size=batch_size, shuffle=False)
