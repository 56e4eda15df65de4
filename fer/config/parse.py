"""Reading a run config: defaults, then a YAML/JSON file, then nested layers, then `--set key=value`.

`apply` sets fields from typed values or from the user's text, read as the field's type (so
`train.amp=off` stays the string "off"); `from_dict` rebuilds a saved `config.json` and refuses
unknown keys. YAML is read with a safe loader and YAML 1.2 booleans.
"""
from __future__ import annotations

import json
import re
import reprlib
import typing
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import yaml

from fer.config.schema import ConfigError, RunConfig, field_type

MAX_CONFIG_CHARS = 256 * 1024  # a config file or a form's text; real ones are a few hundred characters
MAX_VALUE_CHARS = 16 * 1024  # one --set value or form field
MAX_DEPTH = 32  # nesting of lists and mappings (real configs use 3)
_SHORT = reprlib.Repr()  # a value in a message: its start, never all of it
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxlevel = 60, 60, 6, 6, 3


def clip(value: Any) -> str:
    """A value as messages show it: repr'd, and cut short (a hostile value may be huge or deep)."""
    return _SHORT.repr(value)


class _Loader(yaml.SafeLoader):
    """YAML with only true/false as booleans (YAML 1.2): `amp: off` and `name: yes` stay text.

    Aliases and anchors are refused (a few hundred bytes of nested aliases expand to gigabytes) and
    nesting is capped, so what a text holds is never much bigger than the text.
    """

    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(None, None, "anchors and aliases (&name, *name) are not allowed in "
                                              "configs", event.start_mark)
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep",
                                              event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "tTfF":
    _Loader.add_implicit_resolver("tag:yaml.org,2002:bool",
                                  re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), [_first])


def yaml_problem(error: yaml.YAMLError) -> str:
    """What is wrong and where (line, column), without the text around it: a file's contents never reach a message."""
    problem = getattr(error, "problem", None) or getattr(error, "context", None) or \
        (str(error) if type(error) is yaml.YAMLError else type(error).__name__)  # a plain one is our own words
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else str(problem)


def read_yaml(text: str, limit: int = MAX_CONFIG_CHARS, what: str = "a config"):
    """Parse YAML/JSON text the way configs are read (safe, YAML 1.2 booleans, no aliases, bounded)."""
    if len(text) > limit:
        raise yaml.YAMLError(f"{len(text):,} characters, more than the {limit:,} {what} may hold")
    return yaml.load(text, Loader=_Loader)


_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


def parse_value(text: str, annotation: Any, key: str) -> Any:
    """The user's text read as the field's type: str stays text, bool/int/float parse, the rest is YAML."""
    if annotation is str:
        return text
    stripped = text.strip()
    if annotation is bool:
        if stripped.lower() in _TRUE | _FALSE:
            return stripped.lower() in _TRUE
        raise ConfigError(f"{key}: expected true or false, got {clip(text)}")
    if annotation is int:
        try:
            return int(stripped)
        except ValueError:
            raise ConfigError(f"{key}: expected int, got {clip(text)}") from None
    if annotation is float:
        try:
            return float(stripped)
        except ValueError:
            raise ConfigError(f"{key}: expected float, got {clip(text)}") from None
    if not stripped:
        raise ConfigError(f"{key}: expected a value, got nothing")
    try:
        value = read_yaml(stripped, MAX_VALUE_CHARS, "one value")
    except yaml.YAMLError as e:
        raise ConfigError(f"{key}: not valid YAML ({yaml_problem(e)}): {clip(text)}") from None
    return text if value is None else value  # e.g. 'run-7': keep the text when YAML reads nothing


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Check `value` against a field's type, converting the harmless cases (int -> float)."""
    origin = typing.get_origin(annotation)
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):
        # YAML 1.1 reads "1e-08" (as JSON writes it) as a string: accept any float literal.
        return parse_value(value, float, key)
    if annotation is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)  # `name: 2024` in a file is the run name "2024"
    if annotation in (int, str, bool):
        if type(value) is annotation:
            return value
        raise ConfigError(f"{key}: expected {annotation.__name__}, got {clip(value)}")
    if origin in (list, List, Sequence):
        if isinstance(value, (list, tuple)):
            (item_type,) = typing.get_args(annotation) or (Any,)
            return [_coerce(v, item_type, f"{key}[{i}]") if item_type is not Any else v
                    for i, v in enumerate(value)]
        raise ConfigError(f"{key}: expected a list, got {clip(value)}")
    if origin in (dict, Dict):
        if isinstance(value, dict):
            return dict(value)
        raise ConfigError(f"{key}: expected a mapping, got {clip(value)}")
    return value


def from_dict(cls: type, data: Dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from a nested dict, rejecting unknown keys."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {clip(data)}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"unknown config key(s) {clip(sorted(prefix + str(k) for k in unknown))}; "
                          f"valid under {prefix or 'the top level'}: {sorted(known)}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = from_dict(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, prefix + name)
    return cls(**kwargs)


def _merge(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _nested(key: str, value: Any) -> Dict[str, Any]:
    node: Dict[str, Any] = {}
    cursor = node
    parts = key.split(".")
    for p in parts[:-1]:
        cursor = cursor.setdefault(p, {})
    cursor[parts[-1]] = value
    return node


def parse_override(item: str) -> Dict[str, Any]:
    """'optim.lr=0.01' -> {'optim': {'lr': 0.01}}, the value read as the field's type."""
    if "=" not in item:
        raise ConfigError(f"--set expects key=value, got {clip(item)}")
    key, raw = item.split("=", 1)
    key = key.strip()
    return _nested(key, parse_value(raw, field_type(key), key))


def apply(cfg: RunConfig, changes: Mapping[str, Any]) -> RunConfig:
    """A new config with each dotted field of `changes` set; text is read as the field's type.

    A mapping field (model.kwargs) is replaced, not merged, so a form can remove keys from it.
    """
    merged = cfg.to_dict()
    for key, value in changes.items():
        annotation = field_type(key)
        if isinstance(value, str) and annotation is not str:
            value = parse_value(value, annotation, key)
        cursor = merged
        *parents, leaf = key.split(".")
        for part in parents:
            cursor = cursor[part]
        cursor[leaf] = value
    return from_dict(RunConfig, merged)


def load_config(path: Optional[str | Path] = None, overrides: Sequence[str] = (),
                layers: Sequence[Dict[str, Any]] = ()) -> RunConfig:
    """Defaults, then the YAML/JSON file at `path`, then nested-dict `layers`, then `key=value` overrides.

    A layer that sets `model.name` brings its own `model.kwargs` (kwargs of another model would not fit).
    """
    merged = RunConfig().to_dict()
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the config file ({type(e).__name__}: "
                              f"{getattr(e, 'strerror', None) or e})") from None
        try:
            # A safe loader: tags such as !!python/object are refused, never constructed.
            loaded = read_yaml(text) or {}  # YAML is a superset of JSON
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML/JSON: {yaml_problem(e)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: a config file holds a mapping of settings, got {type(loaded).__name__}")
        merged = _merge(merged, loaded)
    for layer in layers:
        _check_override_path(layer)
        merged = _merge(merged, layer)
        if "name" in layer.get("model", {}):
            merged["model"]["kwargs"] = dict(layer["model"].get("kwargs", {}))
    for item in overrides:
        merged = _merge(merged, parse_override(item))
    return from_dict(RunConfig, merged)


def _check_override_path(override: Dict[str, Any], cls: type = RunConfig, prefix: str = "") -> None:
    # A dict-typed field (model.kwargs) takes any sub-key; dataclass fields must exist.
    hints = typing.get_type_hints(cls)
    for k, v in override.items():
        if k not in hints:
            raise ConfigError(f"unknown config key {clip(prefix + str(k))}; valid: {sorted(hints)}")
        if isinstance(v, dict) and is_dataclass(hints[k]):
            _check_override_path(v, hints[k], f"{prefix}{k}.")


def flatten(d: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
    """{'optim': {'lr': 1}} -> {'optim.lr': 1}; lists become strings for table display."""
    out: Dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = json.dumps(v) if isinstance(v, (list, dict)) else v
    return out
