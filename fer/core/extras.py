"""Optional extras (Ray, Optuna, ONNX Runtime, the trackers): import one, or say in one line how to install it.

Every optional dependency is imported through `require` when a feature first needs it, so fer runs
without any extra installed and a missing one is a `UserError` naming the pip command, never a traceback.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Type

from fer.core.errors import UserError


class MissingExtra(UserError):
    """An optional dependency a feature needs is not installed."""


def install_hint(extra: str) -> str:
    """The pip command that installs the optional extra `extra`."""
    return f"pip install 'fer-studio[{extra}]'"


def require(module: str, extra: str, needed_by: str, error: Type[UserError] = MissingExtra) -> ModuleType:
    """`module`, imported; `error` saying "<needed_by>, an optional extra: pip install …" when it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise error(f"{needed_by}, an optional extra: {install_hint(extra)}") from None


def available(module: str) -> bool:
    """Whether an optional dependency can be imported."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
