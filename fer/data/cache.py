"""Decoded-dataset cache: decode 32k JPEGs once, then load one .npz in well under a second.

The cache key is a hash of every source file's relative path, size and mtime (plus the reader
version), so editing, adding or removing any file makes a fresh decode happen on its own.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from fer.core.files import atomic_write, cache_dir
from fer.data.facedata import FaceData, LoadReport
from fer.data.readers import Progress, read_fer_csv, read_image_folders, resolve_source

READER_VERSION = 1


def default_data_path() -> Path:
    """`FER_DATA` when set, else `data/` in the working directory."""
    return Path(os.environ.get("FER_DATA") or "data")




def source_fingerprint(kind: str, path: Path) -> str:
    """A hash of the source files' relative paths, sizes and mtimes."""
    h = hashlib.sha256(f"{READER_VERSION}|{kind}|{path.resolve()}".encode())
    if kind == "csv":
        st = path.stat()
        h.update(f"{st.st_size}|{st.st_mtime_ns}".encode())
        return h.hexdigest()[:20]
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            h.update(f"{os.path.relpath(full, path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def _cache_file(kind: str, resolved: Path) -> Path:
    return cache_dir() / f"fer2013-{source_fingerprint(kind, resolved)}.npz"


def load_fer2013(path: str | os.PathLike | None = None, use_cache: bool = True,
                 progress: Optional[Progress] = None) -> FaceData:
    """Load FER2013 from a CSV or image folders (default `FER_DATA` or `data/`), through the cache.

    `progress(share, message)` is called while a source is decoded (only the first time, without a cache).
    """
    kind, resolved = resolve_source(path if path is not None else default_data_path())
    if not use_cache:
        return _decode(kind, resolved, progress)
    cache_file = _cache_file(kind, resolved)
    data = _read_cache(cache_file, str(resolved))
    if data is None:
        data = _decode(kind, resolved, progress)
        _write_cache(cache_file, data)
    return data


def is_cached(path: str | os.PathLike | None = None) -> bool:
    """Whether loading `path` would read the decoded cache rather than decode the source."""
    kind, resolved = resolve_source(path if path is not None else default_data_path())
    return _cache_file(kind, resolved).is_file()


def _decode(kind: str, resolved: Path, progress: Optional[Progress]) -> FaceData:
    if kind == "csv":
        return read_fer_csv(resolved, progress=progress)
    return read_image_folders(resolved, progress=progress)


def _read_cache(cache_file: Path, origin: str) -> Optional[FaceData]:
    if not cache_file.is_file():
        return None
    try:
        with np.load(cache_file, allow_pickle=False) as z:
            report = LoadReport.from_dict(json.loads(str(z["report"])))
            return FaceData(z["images"], z["labels"], z["splits"], z["sources"], origin, report)
    except (OSError, ValueError, KeyError):
        return None  # a torn or foreign file: decode again and overwrite it


def _write_cache(cache_file: Path, data: FaceData) -> None:
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, lambda fh: np.savez(
            fh, images=data.images, labels=data.labels, splits=data.splits, sources=data.sources,
            report=np.asarray(json.dumps(data.report.to_dict()))))
    except OSError:
        pass  # a read-only or full cache folder only costs a decode next time
