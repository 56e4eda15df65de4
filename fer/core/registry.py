"""One small registry type for everything users choose by name.

Models, optimizers, schedulers, augmentation presets (and later face detectors) are each a
`Registry`. Their `names()` feed the CLI choices, dashboard dropdowns and parametrised tests.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Generic, Iterator, List, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """A named collection of builders, filled with the `register` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: Dict[str, T] = {}
        self._info: Dict[str, Dict[str, Any]] = {}

    def register(self, name: str | None = None, **info: Any) -> Callable[[T], T]:
        """Decorator: add `fn` under `name` (default: its `__name__`) with optional metadata."""

        def decorator(fn: T) -> T:
            key = name or getattr(fn, "__name__")
            if key in self._entries:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = fn
            self._info[key] = dict(info)
            return fn

        return decorator

    def get(self, name: str) -> T:
        """The entry called `name`; a KeyError lists the valid names."""
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}") from None

    def info(self, name: str) -> Dict[str, Any]:
        """Metadata given at registration (e.g. a scheduler's stepping cadence)."""
        self.get(name)
        return self._info[name]

    def names(self) -> List[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def in_order(self) -> List[str]:
        """Registered names in the order they were registered."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
