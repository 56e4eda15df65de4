"""Train / validation / test index sets. A test split is never used for model selection."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from fer.config import RunConfig, TEST_SPLITS, VAL_SOURCES
from fer.core.constants import SPLITS, split_parts
from fer.data.facedata import DataError, FaceData


@dataclass
class Splits:
    """Indices into a FaceData for each role."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict:
        """Number of images per role."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def stratified_sample(index: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """At most `n` of `index`, keeping class proportions (seeded)."""
    if n <= 0 or n >= len(index):
        return index
    try:
        kept, _ = train_test_split(index, train_size=n, stratify=labels[index], random_state=seed)
    except ValueError:  # a class too rare to stratify at this size
        kept, _ = train_test_split(index, train_size=n, random_state=seed)
    return np.sort(kept)


def make_splits(data: FaceData, val_source: str = "train_fraction", val_fraction: float = 0.1,
                test_split: str = "PublicTest", seed: int = 0, limit: int = 0, test_limit: int = 0,
                train_splits: Sequence[str] = ("Training",), val_stratify: bool = True) -> Splits:
    """Carve validation from the pooled `train_splits` (seeded) or take a FER2013 split; test is separate."""
    if val_source not in VAL_SOURCES:
        raise ValueError(f"data.val_source must be one of {VAL_SOURCES}, got {val_source!r}")
    if test_split not in TEST_SPLITS:
        raise ValueError(f"data.test_split must be one of {TEST_SPLITS}, got {test_split!r}")
    if val_source in split_parts(test_split):
        raise ValueError(f"validation and test are both {test_split}: a test split is never used for "
                         "model selection; set data.test_split to the other test split")
    unknown = [s for s in train_splits if s not in SPLITS]
    if not train_splits or unknown:
        raise ValueError(f"data.train_splits must be FER2013 splits {SPLITS}, got {list(train_splits)}")
    for role, split in [*(("test", part) for part in split_parts(test_split)), ("validation", val_source)]:
        if split in train_splits:
            raise ValueError(f"{split} is both in data.train_splits and the {role} split: a split used for "
                             "training can not also measure it")
    training = np.sort(np.concatenate([data.split_indices(s) for s in train_splits]))
    if len(training) == 0:
        raise DataError(f"{data.origin}: no {' + '.join(train_splits)} images to train on")
    if val_source == "train_fraction":
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"data.val_fraction must be in (0, 1), got {val_fraction}")
        try:
            train, val = train_test_split(training, test_size=val_fraction, random_state=seed,
                                          stratify=data.labels[training] if val_stratify else None)
        except ValueError:
            train, val = train_test_split(training, test_size=val_fraction, random_state=seed)
        train, val = np.sort(train), np.sort(val)
    else:
        train, val = training, data.split_indices(val_source)
        if len(val) == 0:
            raise DataError(f"{data.origin}: validation split {val_source} is empty")
    test = data.split_indices(test_split)
    if limit:
        train = stratified_sample(train, data.labels, limit, seed)
        val = stratified_sample(val, data.labels, limit, seed)
    if test_limit:
        test = stratified_sample(test, data.labels, test_limit, seed)
    return Splits(train, val, test)


def splits_for(cfg: RunConfig, data: FaceData) -> Splits:
    """The train/val/test indices a run's config defines (the same at training and evaluation time)."""
    seed = cfg.train.seed if cfg.data.split_seed < 0 else cfg.data.split_seed
    return make_splits(data, cfg.data.val_source, cfg.data.val_fraction, cfg.data.test_split,
                       seed, cfg.data.limit, cfg.data.test_limit, cfg.data.train_splits, cfg.data.val_stratify)
