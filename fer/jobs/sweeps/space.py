"""A sweep's search space: config fields and the values Optuna may try for them.

A space file maps dotted config keys to a range or a list of choices:

    optim.lr: {low: 1.0e-4, high: 0.1, log: true}     # float, log-uniform
    model.kwargs.dropout: {low: 0.0, high: 0.5, step: 0.1}
    train.batch_size: {choices: [32, 64, 128]}
    model.kwargs.widths: {choices: [[32, 64, 128], [64, 128, 256]]}
    augmentation: [none, standard, strong]             # a bare list: categorical

A range is an integer range when the field is an int (or `type: int`), else a float range.
Optuna keeps categorical choices as plain scalars, so a list or mapping choice travels as its
JSON text and is decoded when the trial's config is built.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping

from fer.config import ConfigError, field_type, read_yaml

_RANGE_KEYS = {"low", "high", "log", "step", "type"}


@dataclass(frozen=True)
class Param:
    """One searched config field and its Optuna distribution."""

    key: str
    distribution: Any  # optuna.distributions.BaseDistribution
    encoded: bool = False  # categorical choices stored as JSON text

    def value(self, sampled: Any) -> Any:
        """The config value for what Optuna sampled."""
        return json.loads(sampled) if self.encoded else sampled


def read_space(path: str | Path) -> Dict[str, Any]:
    """The search space file (YAML or JSON) as a mapping; ConfigError when it is not one."""
    try:
        loaded = read_yaml(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the search space ({type(e).__name__})") from None
    except Exception as e:  # yaml.YAMLError: one line, as for config files
        raise ConfigError(f"{path}: not valid YAML/JSON: {' '.join(str(e).split())[:200]}") from None
    if not isinstance(loaded, dict) or not loaded:
        raise ConfigError(f"{path}: a search space maps config keys to ranges or choices (e.g. optim.lr: "
                          "{low: 1.0e-4, high: 0.1, log: true})")
    return loaded


def parse_space(space: Mapping[str, Any]) -> Dict[str, Param]:
    """Optuna distributions for a space mapping; ConfigError naming the key for anything malformed."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    params: Dict[str, Param] = {}
    for key, spec in space.items():
        key = str(key)
        annotation = field_type(key)  # an unknown key fails here, naming the valid ones
        if isinstance(spec, list):
            spec = {"choices": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"search space {key}: expected {{low, high}} or a list of choices, got {spec!r}")
        if "choices" in spec:
            choices = spec["choices"]
            if not isinstance(choices, list) or not choices or set(spec) - {"choices"}:
                raise ConfigError(f"search space {key}: choices is a non-empty list, and nothing else")
            encoded = any(isinstance(c, (list, dict)) for c in choices)
            values = tuple(json.dumps(c) for c in choices) if encoded else tuple(choices)
            params[key] = Param(key, CategoricalDistribution(values), encoded)
            continue
        unknown = set(spec) - _RANGE_KEYS
        if unknown or "low" not in spec or "high" not in spec:
            raise ConfigError(f"search space {key}: a range has low and high (and optionally log, step, type); "
                              f"got {sorted(spec)}")
        kind = spec.get("type") or ("int" if annotation is int else "float")
        try:
            if kind == "int":
                params[key] = Param(key, IntDistribution(int(spec["low"]), int(spec["high"]),
                                                         log=bool(spec.get("log", False)), step=int(spec.get("step", 1))))
            elif kind == "float":
                step = spec.get("step")
                params[key] = Param(key, FloatDistribution(float(spec["low"]), float(spec["high"]),
                                                           log=bool(spec.get("log", False)),
                                                           step=None if step is None else float(step)))
            else:
                raise ConfigError(f"search space {key}: type is int or float, got {kind!r}")
        except (TypeError, ValueError) as e:
            if isinstance(e, ConfigError):
                raise
            raise ConfigError(f"search space {key}: {e}") from None
    return params


def trial_layer(params: Mapping[str, Param], sampled: Mapping[str, Any]) -> Dict[str, Any]:
    """The sampled values as a nested config layer ({"optim": {"lr": 0.01}})."""
    layer: Dict[str, Any] = {}
    for key, param in params.items():
        cursor = layer
        *parents, leaf = key.split(".")
        for part in parents:
            cursor = cursor.setdefault(part, {})
        cursor[leaf] = param.value(sampled[key])
    return layer


def as_overrides(params: Mapping[str, Param], sampled: Mapping[str, Any]) -> list:
    """The sampled values as `--set key=value` items (what reproduces a trial from its base config)."""
    return [f"{key}={json.dumps(param.value(sampled[key])) if param.encoded else sampled[key]}"
            for key, param in params.items()]
