"""A run's data as one object: its faces as the run sees them, its splits, loaders and class weights.

`RunData.from_config(cfg)` is the one place a run's data is assembled: training builds its loaders
from it, `check_config` checks that every split it needs has faces, evaluation scores its splits,
and int8 export calibrates on its validation faces. The splits are computed once, from the config
alone (the seed, the validation source, the limits), so every user sees the same faces.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Optional, Sequence, Tuple

import numpy as np

from fer.config import RunConfig
from fer.core.constants import IMAGE_SIZE
from fer.data.facedata import DataError, FaceData
from fer.data.ferplus import load_run_data
from fer.data.splits import Splits, splits_for

if TYPE_CHECKING:  # the loaders import PyTorch; the checks and the CLI's light paths do not need it
    import torch
    from torch.utils.data import DataLoader

ROLES = ("train", "val", "test")


@dataclass
class RunData:
    """The faces (FER2013, or FER+ relabelled), the run's train/val/test indices, and what they feed."""

    cfg: RunConfig
    data: FaceData
    splits: Splits
    # A distilled run's targets for its training faces (N×C; fer.training.distill sets them before training).
    teacher_targets: Optional[np.ndarray] = None

    @classmethod
    def from_config(cls, cfg: RunConfig, path: Optional[str] = None) -> "RunData":
        """Load the run's source (or `path`) and compute its splits."""
        data = load_run_data(cfg, path)
        try:
            splits = splits_for(cfg, data)
        except ValueError as e:  # make_splits' own checks, e.g. a split too small to stratify
            raise DataError(str(e)) from None
        return cls(cfg, data, splits)

    @property
    def class_names(self) -> Sequence[str]:
        """The classes the run's model predicts (FER2013's seven, or FER+'s eight)."""
        return self.data.class_names

    @property
    def num_classes(self) -> int:
        """How many classes the run's model predicts."""
        return len(self.data.class_names)

    def check(self) -> None:
        """DataError when a split the run needs (train, val or test) has no faces."""
        cfg = self.cfg.data
        for role in ROLES:
            if len(getattr(self.splits, role)) == 0:
                where = {"test": f"data.test_split={cfg.test_split}", "val": f"data.val_source={cfg.val_source}",
                         "train": "Training"}[role]
                raise DataError(f"{self.data.origin} has no images for {where} ({role}); its splits are "
                                f"{', '.join(sorted(set(self.data.split_names())))}")

    def split(self, role: Optional[str] = None) -> Tuple[np.ndarray, str]:
        """(indices, split name) for a role (test, val, train, as the run defines them) or a FER2013 split name."""
        role = role or "test"
        names = {"train": "train", "val": "val", "test": self.cfg.data.test_split}
        if role in names:
            index, name = getattr(self.splits, role), names[role]
        else:
            index, name = self.data.split_indices(role), role
        if len(index) == 0:
            raise ValueError(f"split {role!r} is empty in {self.data.origin}")
        return index, name

    def soft_targets(self) -> Optional[np.ndarray]:
        """Probability targets of the training faces: a teacher's (distillation) or FER+ "soft" ones; None:
        the labels are the targets."""
        if self.teacher_targets is not None:
            return self.teacher_targets
        soft = self.cfg.data.labels == "ferplus" and self.cfg.data.ferplus_mode == "soft"
        return self.data.soft_labels[self.splits.train] if soft else None

    def class_weights(self) -> Optional[np.ndarray]:
        """Inverse-frequency weights of the training labels when `loss.class_weights` is on, else None."""
        if not self.cfg.loss.class_weights:
            return None
        from fer.data.loaders import inverse_frequency_weights

        return inverse_frequency_weights(self.data.labels[self.splits.train], self.num_classes)

    def train_loader(self, generator: "torch.Generator", rank: int = 0, world: int = 1,
                     pin_memory: bool = False) -> "DataLoader":
        """Augmented training batches (shuffled or class-balanced), process `rank`'s shard of them.

        Augmentation works on the stored 48×48 uint8 faces, before `to_model_input` resizes them."""
        from fer.data.augment import build_augmentation
        from fer.data.loaders import train_loader

        cfg, train = self.cfg, self.splits.train
        return train_loader(self.data.images[train], self.data.labels[train],
                            build_augmentation(cfg.augmentation, IMAGE_SIZE, cfg.aug),
                            cfg.train.batch_size, cfg.data.sampler, self.num_classes, generator,
                            cfg.data.num_workers, rank, world, pin_memory=pin_memory, targets=self.soft_targets())

    def train_batches(self, generator: "torch.Generator", device: "torch.device", rank: int = 0,
                      world: int = 1) -> Tuple[Iterable, str]:
        """Training batches and where they come from: resident on `device` (the fast path) or a DataLoader.

        `data.loader=auto` takes the fast path when the augmentation has a batched form and the split
        fits; `resident` insists on it (DataError otherwise); `dataloader` keeps the per-face path."""
        setting = self.cfg.data.loader
        reason = self.resident_refusal(device) if setting != "dataloader" else "data.loader=dataloader"
        if reason is None:
            from fer.data.batched import batched_augmentation
            from fer.data.resident import resident_batches

            cfg, train = self.cfg, self.splits.train
            augment = batched_augmentation(cfg.augmentation, cfg.aug)[1]
            batches = resident_batches(self.data.images[train], self.data.labels[train], augment,
                                       cfg.train.batch_size, cfg.data.sampler, self.num_classes, generator, device,
                                       rank, world, targets=self.soft_targets())
            return batches, f"resident on {device.type}, batched augmentation ({cfg.augmentation})"
        if setting == "resident":
            raise DataError(f"data.loader=resident is not possible here: {reason}")
        return self.train_loader(generator, rank, world, pin_memory=device.type == "cuda"), f"DataLoader ({reason})"

    def resident_refusal(self, device: Optional["torch.device"] = None) -> Optional[str]:
        """Why the fast path cannot take this run (on `device`, if given), or None when it can."""
        from fer.data.batched import batched_augmentation

        if not batched_augmentation(self.cfg.augmentation, self.cfg.aug)[0]:
            return f"augmentation {self.cfg.augmentation!r} has no batched form"
        if device is not None:
            from fer.data.resident import fits_on

            nbytes = len(self.splits.train) * self.data.images[0].nbytes
            if not fits_on(device, nbytes):
                return f"the training faces ({nbytes / 2**20:.0f} MiB) would take too much of the free memory"
        return None

    def val_loader(self) -> "DataLoader":
        """Ordered, un-augmented validation batches."""
        from fer.data.loaders import eval_loader

        val = self.splits.val
        return eval_loader(self.data.images[val], self.data.labels[val], self.cfg.train.eval_batch_size)

    def calibration_faces(self, n: int) -> np.ndarray:
        """Up to `n` validation faces (seeded), e.g. for int8 activation ranges; never a test split."""
        chosen = np.random.default_rng(0).permutation(self.splits.val)[:n]
        return self.data.images[np.sort(chosen)]
