"""The suite registry: a suite is a registered function `(epochs) -> [Variant]`.

Each variant is a nested config layer applied over the defaults (and an optional config file); user
`--set` overrides come last. Suite files register into `SUITES` and never import the package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

from fer.core.registry import Registry


@dataclass
class Variant:
    name: str
    layer: Dict[str, Any] = field(default_factory=dict)  # nested config overrides


SUITES: Registry[Callable[[int], List[Variant]]] = Registry("suite")


def merge(*layers: Dict[str, Any]) -> Dict[str, Any]:
    """Nested config layers merged left to right (later keys win, mappings merge)."""
    out: Dict[str, Any] = {}
    for layer in layers:
        for k, v in layer.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def plain_cnn(**kwargs: Any) -> Dict[str, Any]:
    """The config layer for a plain_cnn with these kwargs."""
    return {"model": {"name": "plain_cnn", "kwargs": kwargs}}
