"""A run's faces staged as one file for a training process that cannot see their source.

A Ray task on a node that shares no filesystem with the runs folder gets the run's decoded faces through
Ray's object store, writes them here as one .npz on the node, and starts `fer train` with
`FER_STAGED_DATA` naming that file: `load_run_data` then reads it instead of the run's `data.path`.
The file says which source and labels it holds (`staged_key`), so it never stands in for another run's data.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np

from fer.config import RunConfig
from fer.core.files import atomic_write
from fer.data.facedata import DataError, FaceData, LoadReport

STAGED_DATA_ENV = "FER_STAGED_DATA"


def staged_key(cfg: RunConfig) -> str:
    """What makes two runs' faces the same: the source and the labels (FER+ votes and mode)."""
    d = cfg.data
    return json.dumps({"path": d.path, "labels": d.labels, "ferplus_path": d.ferplus_path,
                       "ferplus_mode": d.ferplus_mode if d.labels == "ferplus" else ""}, sort_keys=True)


def save_staged(data: FaceData, path: Path, key: str) -> None:
    """Write `data` (as the run sees it, FER+ labels included) to one .npz, atomically."""
    soft = data.soft_labels if data.soft_labels is not None else np.zeros((0, 0), np.float32)
    meta = {"key": key, "origin": data.origin, "report": data.report.to_dict(), "class_names": list(data.class_names)}
    atomic_write(Path(path), lambda fh: np.savez(fh, images=data.images, labels=data.labels, splits=data.splits,
                                                 sources=data.sources, soft_labels=soft,
                                                 meta=np.asarray(json.dumps(meta))))


def load_staged(path: Path, key: str) -> FaceData:
    """The faces staged at `path`; DataError when the file is unreadable or holds another source's faces."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {name: z[name] for name in ("images", "labels", "splits", "sources", "soft_labels")}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"the staged faces {Path(path).name} cannot be read ({type(e).__name__})") from None
    if not isinstance(meta, dict) or meta.get("key") != key:
        raise DataError(f"the staged faces in {Path(path).name} are not this run's data source")
    soft = arrays["soft_labels"]
    return FaceData(arrays["images"], arrays["labels"], arrays["splits"], arrays["sources"], meta["origin"],
                    LoadReport.from_dict(meta["report"]), tuple(meta["class_names"]), soft if soft.size else None)


def staged_file() -> Optional[Path]:
    """The staged faces this process was started with (`FER_STAGED_DATA`), if any."""
    value = os.environ.get(STAGED_DATA_ENV)
    return Path(value) if value else None
