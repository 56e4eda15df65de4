"""FER2013 data: readers (CSV and image folders), the decoded cache, staged faces (a Ray node's copy),
FER+ labels, splits, a run's data (`RunData`), statistics, augmentation presets, the one face → model-input
preprocessing, and torch datasets and loaders, and the resident fast path (batched, resident). Imports
`fer.core` and `fer.config`; PyTorch only in augment, batched, preprocess, loaders and resident.

Names below load on first use (PEP 562), so a prediction that needs only `fer.data.preprocess` does
not pay for pandas and scikit-learn, which the readers and splits bring in.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOME = {"default_data_path": "cache", "load_fer2013": "cache",
         "DataError": "facedata", "FaceData": "facedata", "LoadReport": "facedata",
         "FERPLUS_CLASSES": "ferplus", "apply_ferplus": "ferplus", "load_run_data": "ferplus",
         "run_class_names": "ferplus", "read_fer_csv": "readers", "read_image_folders": "readers",
         "RunData": "rundata", "Splits": "splits", "make_splits": "splits", "splits_for": "splits"}

__all__ = sorted(_HOME)

if TYPE_CHECKING:
    # for type checkers and editors; __all__ is built from _HOME
    from fer.data.cache import default_data_path, load_fer2013  # noqa: F401
    from fer.data.facedata import DataError, FaceData, LoadReport  # noqa: F401
    from fer.data.ferplus import FERPLUS_CLASSES, apply_ferplus, load_run_data, run_class_names  # noqa: F401
    from fer.data.readers import read_fer_csv, read_image_folders  # noqa: F401
    from fer.data.rundata import RunData  # noqa: F401
    from fer.data.splits import Splits, make_splits, splits_for  # noqa: F401


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'fer.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"fer.data.{_HOME[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
