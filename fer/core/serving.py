"""A local dashboard server's two small needs: a free port, and knowing when it answers.

Shared by the scripts that start `streamlit run` themselves (the benchmarks, the screenshot script, the
browser tests); standard library only.
"""
from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(url: str, timeout_s: float = 120.0) -> bool:
    """Poll Streamlit's health endpoint under `url` until it answers; False when `timeout_s` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url.rstrip("/") + "/_stcore/health", timeout=1)
            return True
        except OSError:
            time.sleep(0.5)
    return False
