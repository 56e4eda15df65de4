"""The resident fast path: the training split as one uint8 tensor on the training device, batched as it trains.

FER2013's Training split is ~66 MB as uint8 faces, so it fits on any device. Each epoch draws the same
order as the DataLoader path (`training_order`: the same sampler, generator and shards), then slices and
augments whole batches there (`fer.data.batched`): no Python per face, no worker processes, no copy to
the device per batch. Runs fall back to the DataLoader path when the augmentation has no batched form or
the split would take too much of a GPU's free memory; the run's log says which path it took.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np
import torch
from torch.utils.data import Sampler

from fer.data.batched import BatchAugment
from fer.data.loaders import drops_last, training_order

GPU_SHARE = 0.25  # at most this share of a GPU's free memory goes to the resident faces (the model needs the rest)


class ResidentBatches:
    """Training batches sliced from faces held on the device: (uint8 N×1×S×S faces, targets) per batch."""

    def __init__(self, faces: torch.Tensor, targets: torch.Tensor, order: Sampler, batch_size: int,
                 augment: Optional[BatchAugment] = None) -> None:
        self.faces, self.targets, self.order, self.batch_size, self.augment = faces, targets, order, batch_size, augment
        self.drop_last = drops_last(len(order), batch_size)

    def __len__(self) -> int:
        n = len(self.order)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        # A DataLoader draws a base seed from the global RNG as each epoch starts; drawing it here too keeps
        # that stream (dropout masks, augmentation) where the DataLoader path has it.
        torch.empty((), dtype=torch.int64).random_()
        index = torch.as_tensor(list(self.order), dtype=torch.int64).to(self.faces.device)
        stop = len(self) * self.batch_size if self.drop_last else len(index)
        for start in range(0, stop, self.batch_size):
            batch = index[start:start + self.batch_size]
            faces = self.faces[batch]
            yield (self.augment(faces) if self.augment is not None else faces), self.targets[batch]


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether `nbytes` of faces may stay resident on `device` (a CPU holds them in memory already)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= GPU_SHARE * free


def resident_batches(images: np.ndarray, labels: np.ndarray, augment: Optional[BatchAugment], batch_size: int,
                     sampler: str, num_classes: int, generator: torch.Generator, device: torch.device,
                     rank: int = 0, world: int = 1, targets: Optional[np.ndarray] = None) -> ResidentBatches:
    """The resident counterpart of `fer.data.loaders.train_loader`: same arguments, same order, same targets."""
    faces = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1).to(device)
    kept = np.asarray(labels if targets is None else targets)
    kept = torch.from_numpy(kept.astype(np.float32 if kept.ndim == 2 else np.int64)).to(device)
    order = training_order(labels, sampler, num_classes, generator, rank, world)
    return ResidentBatches(faces, kept, order, batch_size, augment)
