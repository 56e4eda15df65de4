"""Dataset statistics as plain functions: the dashboard and `fer data stats` call these."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Dict, Optional

import numpy as np
import pandas as pd

from fer.core.constants import SPLITS
from fer.data.facedata import FaceData


def class_counts(data: FaceData) -> pd.DataFrame:
    """Images per split (rows, only splits present) and class (columns), with a total column."""
    table = np.zeros((len(SPLITS), len(data.class_names)), dtype=np.int64)
    np.add.at(table, (data.splits.astype(np.int64), data.labels), 1)
    df = pd.DataFrame(table, index=list(SPLITS), columns=list(data.class_names))
    df = df[df.sum(axis=1) > 0]
    df["total"] = df.sum(axis=1)
    df.index.name = "split"
    return df


def imbalance_ratio(data: FaceData, split: str = "Training") -> float:
    """Largest over smallest class count in `split` (inf when a class is missing)."""
    counts = np.bincount(data.labels[data.split_indices(split)], minlength=len(data.class_names))
    return float("inf") if counts.min() == 0 else float(counts.max() / counts.min())


def pixel_stats(data: FaceData, split: Optional[str] = "Training") -> Dict:
    """Pixel mean and std (0-255 and 0-1 scales) and the 256-bin histogram of `split` (None: all)."""
    images = data.images if split is None else data.images[data.split_indices(split)]
    flat = images.reshape(-1)
    hist = np.bincount(flat, minlength=256)
    values = np.arange(256, dtype=np.float64)
    n = hist.sum()
    mean = float((hist * values).sum() / n)
    std = float(np.sqrt((hist * (values - mean) ** 2).sum() / n))
    return {"split": split or "all", "n_images": int(len(images)), "mean": mean, "std": std,
            "mean_01": mean / 255.0, "std_01": std / 255.0, "histogram": hist.tolist()}


def _image_hashes(images: np.ndarray) -> list:
    return [hashlib.blake2b(img.tobytes(), digest_size=16).digest() for img in images]


def duplicate_groups(data: FaceData) -> pd.DataFrame:
    """Every image that has an exact pixel duplicate: one row per image with its group id."""
    groups = defaultdict(list)
    for i, h in enumerate(_image_hashes(data.images)):
        groups[h].append(i)
    rows = []
    names = data.split_names()
    for gid, members in enumerate(m for m in groups.values() if len(m) > 1):
        for i in members:
            rows.append({"group": gid, "index": i, "source": str(data.sources[i]), "split": names[i],
                         "label": data.class_names[data.labels[i]]})
    return pd.DataFrame(rows, columns=["group", "index", "source", "split", "label"])


def duplicates_training(data: FaceData, index: np.ndarray) -> np.ndarray:
    """Mask over `index`: the faces whose exact pixels are also a Training face (leaked into the test)."""
    training = set(_image_hashes(data.images[data.split_indices("Training")]))
    return np.fromiter((h in training for h in _image_hashes(data.images[index])), dtype=bool, count=len(index))


def leakage_report(data: FaceData, dups: Optional[pd.DataFrame] = None) -> Dict:
    """Duplicate groups within and across splits, and groups whose copies disagree on the label."""
    dups = duplicate_groups(data) if dups is None else dups
    if dups.empty:
        return {"duplicate_groups": 0, "duplicate_images": 0, "within_split_groups": 0,
                "cross_split_groups": 0, "conflicting_label_groups": 0, "cross_split_pairs": {}}
    by_group = dups.groupby("group")
    n_splits = by_group["split"].nunique()
    pairs: Dict[str, int] = defaultdict(int)
    for _, g in by_group:
        present = sorted(set(g["split"]), key=SPLITS.index)
        for a in range(len(present)):
            for b in range(a + 1, len(present)):
                pairs[f"{present[a]}/{present[b]}"] += 1
    return {"duplicate_groups": int(by_group.ngroups), "duplicate_images": int(len(dups)),
            "within_split_groups": int((n_splits == 1).sum()), "cross_split_groups": int((n_splits > 1).sum()),
            "conflicting_label_groups": int((by_group["label"].nunique() > 1).sum()),
            "cross_split_pairs": dict(pairs)}


def mean_faces(data: FaceData, split: Optional[str] = "Training") -> np.ndarray:
    """Mean image per class (classes × 48 × 48, float32 in 0-255); zeros for an absent class."""
    index = np.arange(len(data)) if split is None else data.split_indices(split)
    out = np.zeros((len(data.class_names),) + data.images.shape[1:], dtype=np.float32)
    for c in range(len(data.class_names)):
        members = index[data.labels[index] == c]
        if len(members):
            out[c] = data.images[members].mean(axis=0, dtype=np.float64)
    return out


@dataclass
class DatasetReport:
    """Everything the Data page, the Overview and `fer data stats` show about a source, computed once."""

    origin: str
    n_images: int
    counts: pd.DataFrame  # split × class, with a total column
    imbalance: Dict[str, float]  # largest / smallest class, per split
    split: Optional[str]  # what `pixels` and `mean_faces` describe: Training when present, else all (None)
    pixels: Dict  # mean, std and the 256-bin histogram
    mean_faces: np.ndarray  # classes × 48 × 48
    duplicates: pd.DataFrame  # every image with an exact duplicate, by group
    leakage: Dict
    load_report: Dict

    def to_json(self) -> Dict:
        """What `fer data stats --json` prints (no histogram, mean faces or duplicate rows)."""
        return {"origin": self.origin, "n_images": self.n_images, "counts": self.counts.to_dict(orient="index"),
                "imbalance_ratio": dict(self.imbalance),
                "pixels": {k: v for k, v in self.pixels.items() if k != "histogram"},
                "leakage": self.leakage, "load_report": self.load_report}


def dataset_report(data: FaceData) -> DatasetReport:
    """The statistics of `data`: counts, imbalance, pixels and mean faces (of Training), duplicates, leakage."""
    counts = class_counts(data)
    split = "Training" if "Training" in counts.index else None
    dups = duplicate_groups(data)
    return DatasetReport(data.origin, len(data), counts, {s: imbalance_ratio(data, s) for s in counts.index},
                         split, pixel_stats(data, split), mean_faces(data, split), dups, leakage_report(data, dups),
                         data.report.to_dict())


def summarize(data: FaceData) -> Dict:
    """Everything `fer data stats` prints, as one JSON-friendly dict."""
    return dataset_report(data).to_json()


def sample_faces(data: FaceData, per_class: int = 8, split: Optional[str] = "Training", seed: int = 0) -> Dict[str, np.ndarray]:
    """A seeded random sample of faces per class name (k × 48 × 48 uint8 each)."""
    rng = np.random.default_rng(seed)
    index = np.arange(len(data)) if split is None else data.split_indices(split)
    out = {}
    for c, name in enumerate(data.class_names):
        members = index[data.labels[index] == c]
        out[name] = data.images[rng.choice(members, size=min(per_class, len(members)), replace=False)] \
            if len(members) else np.zeros((0,) + data.images.shape[1:], np.uint8)
    return out
