"""Keep native libraries' log lines off the terminal: MediaPipe's LiteRT prints ~10 INFO/W0000 lines.

Those lines are written by C++ straight to file descriptor 2 (from several threads, at start-up,
first inference and shutdown), and GLOG_minloglevel does not stop them. So while a command runs,
descriptor 2 points at /dev/null and Python's `sys.stderr` writes to a copy of the real stderr:
our own messages still reach the user, the native noise does not.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def native_stderr_silenced(restore: bool = True) -> Iterator[None]:
    """Silence what native code writes to fd 2; Python's sys.stderr keeps working.

    A command that exits right after passes `restore=False`: the lines LiteRT prints while the
    process shuts down then stay silent too.
    """
    try:
        sys.stderr.flush()
        real = os.dup(2)
    except (OSError, ValueError):  # no real descriptor 2 (e.g. an embedded interpreter): nothing to do
        yield
        return
    python_stderr = sys.stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    sys.stderr = os.fdopen(os.dup(real), "w", buffering=1, encoding=python_stderr.encoding or "utf-8",
                           errors="backslashreplace")
    try:
        yield
    finally:
        sys.stderr.flush()
        if restore:
            sys.stderr.close()
            sys.stderr = python_stderr
            os.dup2(real, 2)
        os.close(real)
