"""Files: whole-file writes that a reader or a crash never sees half done, and small readers.

Run folders (through `fer.runs.writer`), the decoded-dataset cache, the feature cache and the
model-file cache all write with `atomic_write`: a temp file in the same folder, fsync, rename, fsync
the folder. `read_json`, `utc_now`, `pid_alive`, `sha256_of` and the checkpoint-file sniff serve every layer.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional


ZIP_MAGIC = b"PK\x03\x04"  # how every torch.save file (a zip, since PyTorch 1.6) begins


def cache_dir() -> Path:
    """`FER_CACHE_DIR` when set, else `~/.cache/fer-studio`."""
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer-studio")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_file_problem(path: Path) -> Optional[str]:
    """Why a checkpoint file cannot load, from its first bytes alone; None when it may (or is missing)."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except FileNotFoundError:
        return None
    except OSError as e:
        return f"{path.name} unreadable ({e.strerror})"
    if not head:
        return f"{path.name} is empty (0 bytes)"
    if head != ZIP_MAGIC:
        return f"{path.name} is not a PyTorch checkpoint"
    return None

# Below this many free bytes a failed write is taken for a full disk, whatever the writer's error says
# (torch.save reports ENOSPC as a RuntimeError from its zip writer).
FULL_BELOW_BYTES = 64 * 1024


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged process may still write in `folder`'s file system."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (or one it was raised from) says the disk is full."""
    while error is not None:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        error = error.__cause__ or error.__context__
    return False


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], None]) -> None:
    """Write `path` through `write(binary file)` into a temp file, fsync it, then rename it into place.

    Whatever fails, `path` keeps its old content: a full disk or a kill only ever loses the temp file.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except Exception as e:
        if not is_disk_full(e) and free_bytes(path.parent) < FULL_BELOW_BYTES:
            raise OSError(errno.ENOSPC, f"No space left on device writing {path.name} "
                                        f"({free_bytes(path.parent):,} bytes free in {path.parent})") from e
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    _fsync_dir(path.parent)  # the rename itself survives a power cut only once the folder is synced


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_text(path: Path, text: str) -> None:
    """Atomically write a UTF-8 text file."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json(path: Path, data: Any) -> None:
    """Atomically write indented JSON."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: Path, default: Any = None) -> Any:
    """Parsed JSON, or `default` when the file is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):  # RecursionError: a file nested thousands deep
        return default


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def process_start(pid: int) -> Optional[float]:
    """When process `pid` started (seconds since the epoch), or None if it does not run: with the pid, it
    names one process, where a pid alone may have been reused since it was written down."""
    import psutil  # light, and only needed here

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except (psutil.Error, OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether process `pid` runs on this host; an exited but unreaped (zombie) process does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # e.g. a worker whose parent (Streamlit) never waits for it
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
