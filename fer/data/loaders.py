"""Torch datasets and loaders over the in-memory uint8 faces (no decoding in the training loop)."""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from fer.augment import Augment


class FaceDataset(Dataset):
    """(uint8 1×48×48 tensor, label) pairs; augmentation, if any, runs per item on uint8."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, augment: Optional[Augment] = None) -> None:
        self.images = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
        self.labels = torch.from_numpy(np.asarray(labels, dtype=np.int64))
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


def train_loader(images: np.ndarray, labels: np.ndarray, augment: Optional[Augment], batch_size: int,
                 sampler: str, num_classes: int, generator: torch.Generator, num_workers: int = 0) -> DataLoader:
    """Shuffled (or class-balanced with sampler='weighted') training batches."""
    if sampler == "weighted":
        per_sample = inverse_frequency_weights(labels, num_classes)[labels]
        sampling = WeightedRandomSampler(torch.as_tensor(per_sample), num_samples=len(labels), replacement=True,
                                         generator=generator)
    elif sampler == "none":
        sampling = None
    else:
        raise ValueError(f"data.sampler must be 'none' or 'weighted', got {sampler!r}")
    # A last batch of one image breaks BatchNorm in train mode; drop it only then.
    return DataLoader(FaceDataset(images, labels, augment), batch_size=batch_size, shuffle=sampling is None,
                      sampler=sampling, generator=generator if sampling is None else None,
                      num_workers=num_workers, drop_last=len(labels) % batch_size == 1,
                      persistent_workers=num_workers > 0)


def eval_loader(images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> DataLoader:
    """Ordered, un-augmented batches for evaluation and prediction."""
    return DataLoader(FaceDataset(images, labels), batch_size=batch_size, shuffle=False)
