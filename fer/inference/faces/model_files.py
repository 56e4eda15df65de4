"""MediaPipe model files: a checksum-verified cache, filled from MediaPipe's official URLs on first use.

The cache folder is `FER_MODEL_CACHE` (default `~/.cache/fer-studio/models`). A file counts only when
its SHA-256 matches; downloads are written atomically. When a file is missing and cannot be
downloaded (offline), `ModelFileUnavailable` says so, and callers fall back (see `detectors`).
Every holder of a MediaPipe task made from these files goes through `closed_at_exit`, so none is
left for the interpreter's teardown (see there).
"""
from __future__ import annotations

import atexit
import hashlib
import os
import threading
import weakref
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, TypeVar

from fer.core.errors import UserError
from fer.core.files import atomic_write, sha256_of

DOWNLOAD_TIMEOUT_S = 10.0
T = TypeVar("T")
_OPEN_TASKS: "weakref.WeakSet" = weakref.WeakSet()  # holders of MediaPipe tasks, weakly: GC still frees them
_OPEN_TASKS_LOCK = threading.Lock()


def closed_at_exit(task: T) -> T:
    """Register an object holding MediaPipe tasks to be closed (its `close()`) at exit, unless closed before.

    A task still open at interpreter teardown (one held by a cache, e.g. Streamlit's) closes from its
    `__del__` after the modules it needs are gone: it prints tracebacks, its C++ graph keeps running
    while the runtime's statics are destroyed, and the process can abort (`std::bad_alloc`) after
    all its work is done. `atexit` runs before that teardown.
    """
    with _OPEN_TASKS_LOCK:
        _OPEN_TASKS.add(task)
    return task


@atexit.register
def _close_open_tasks() -> None:
    with _OPEN_TASKS_LOCK:
        tasks = list(_OPEN_TASKS)
        _OPEN_TASKS.clear()
    for task in tasks:
        try:
            task.close()  # the holders' close() may run twice
        except Exception:  # noqa: BLE001 - exiting: a task that cannot close must not stop the others
            pass


@dataclass(frozen=True)
class ModelFile:
    name: str
    url: str
    sha256: str


MODEL_FILES: Dict[str, ModelFile] = {m.name: m for m in (
    ModelFile("blaze_face_short_range.tflite",
              "https://storage.googleapis.com/mediapipe-models/face_detector/blaze_face_short_range/float16/1/"
              "blaze_face_short_range.tflite",
              "b4578f35940bf5a1a655214a1cce5cab13eba73c1297cd78e1a04c2380b0152f"),
    ModelFile("face_landmarker.task",
              "https://storage.googleapis.com/mediapipe-models/face_landmarker/face_landmarker/float16/1/"
              "face_landmarker.task",
              "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff"),
)}


class ModelFileUnavailable(UserError, RuntimeError):
    """A model file is neither cached (with the right checksum) nor downloadable."""


def model_cache_dir() -> Path:
    """Where model files live: FER_MODEL_CACHE, else ~/.cache/fer-studio/models."""
    return Path(os.environ.get("FER_MODEL_CACHE") or Path.home() / ".cache" / "fer-studio" / "models").expanduser()


def _download(spec: ModelFile, dest: Path, timeout: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)

    def fetch(out) -> None:
        digest = hashlib.sha256()
        with urllib.request.urlopen(spec.url, timeout=timeout) as response:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
        if digest.hexdigest() != spec.sha256:  # raising here leaves no file behind
            raise ModelFileUnavailable(f"{spec.url} downloaded with SHA-256 {digest.hexdigest()}, "
                                       f"expected {spec.sha256}")

    atomic_write(dest, fetch)


def ensure_model_file(name: str, download: bool = True, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Path to the verified model file `name`, downloading it once if needed."""
    spec = MODEL_FILES[name]
    path = model_cache_dir() / name
    if path.is_file() and sha256_of(path) == spec.sha256:
        return path
    problem = "has the wrong checksum" if path.is_file() else "is not cached"
    if not download:
        raise ModelFileUnavailable(f"{name} {problem} in {path.parent} and downloading is off")
    try:
        _download(spec, path, timeout)
    except ModelFileUnavailable:
        raise
    except Exception as e:  # offline, DNS, HTTP or disk errors all mean: not available now
        raise ModelFileUnavailable(f"{name} {problem} in {path.parent} and could not be downloaded from "
                                   f"{spec.url} ({type(e).__name__}: {e})") from e
    return path
