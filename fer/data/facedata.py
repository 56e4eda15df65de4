"""The one in-memory form of FER2013 that every reader produces."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from fer.core.constants import CLASS_NAMES, SPLITS, split_parts


class DataError(ValueError):
    """A data source that cannot be read at all (missing, empty, wrong layout)."""


@dataclass
class LoadReport:
    """What a reader skipped or changed, so bad input is counted and never silent."""

    skipped: Counter = field(default_factory=Counter)  # reason -> count
    examples: List[Tuple[str, str]] = field(default_factory=list)  # first few (source, reason)
    resized: int = 0
    notes: List[str] = field(default_factory=list)

    MAX_EXAMPLES = 20

    def skip(self, source: str, reason: str) -> None:
        """Count one skipped row/file and keep the first few as examples."""
        self.skipped[reason] += 1
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append((source, reason))

    @property
    def n_skipped(self) -> int:
        """Total rows/files skipped."""
        return sum(self.skipped.values())

    def summary(self) -> str:
        """One human sentence about what was skipped, resized or noted."""
        parts = [f"skipped {n} ({reason})" for reason, n in sorted(self.skipped.items())]
        if self.resized:
            parts.append(f"resized {self.resized} images to 48x48")
        parts.extend(self.notes)
        return "; ".join(parts) if parts else "no problems"

    def to_dict(self) -> Dict:
        """JSON-friendly form (stored in the decoded cache)."""
        return {"skipped": dict(self.skipped), "examples": [list(e) for e in self.examples],
                "resized": self.resized, "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: Dict) -> "LoadReport":
        """Inverse of `to_dict`."""
        return cls(Counter(d.get("skipped", {})), [tuple(e) for e in d.get("examples", [])],
                   int(d.get("resized", 0)), list(d.get("notes", [])))


@dataclass
class FaceData:
    """FER2013 in memory: uint8 N×48×48 images, int64 labels (FER2013 order), split codes, source ids."""

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray  # int8 index into SPLITS
    sources: np.ndarray  # str: file path relative to the root, or "csv:<row>"
    origin: str = ""
    report: LoadReport = field(default_factory=LoadReport)
    class_names: Tuple[str, ...] = CLASS_NAMES
    soft_labels: Optional[np.ndarray] = None  # N×C probability targets (FER+ "soft"); labels are their argmax

    def __post_init__(self) -> None:
        n = len(self.images)
        if not (len(self.labels) == len(self.splits) == len(self.sources) == n):
            raise ValueError("images, labels, splits and sources must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the images in FER2013 split `split` (Training/PublicTest/PrivateTest, or both tests)."""
        return np.flatnonzero(np.isin(self.splits, [SPLITS.index(part) for part in split_parts(split)]))

    def split_names(self) -> np.ndarray:
        """Split name of each image."""
        return np.asarray(SPLITS)[self.splits]

    def subset(self, index: np.ndarray) -> "FaceData":
        """A new FaceData with only the images at `index` (same report and origin)."""
        return FaceData(self.images[index], self.labels[index], self.splits[index], self.sources[index],
                        self.origin, self.report, self.class_names,
                        None if self.soft_labels is None else self.soft_labels[index])
