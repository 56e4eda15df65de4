"""The server's settings: what a dashboard visitor may choose among, and how visitors sign in.

Runs folders, data sources, weights folders, Ray clusters, MLflow servers and sweep databases come
from here, never from what a visitor types: the sidebar and the forms offer these lists, and any
path a visitor can still give must resolve inside an allowed root (`within`). They are read from a
TOML file (`FER_SETTINGS`, else `.streamlit/fer-studio.toml` when it exists), then from the
environment, which `fer dashboard`'s flags set:

    FER_RUNS_DIRS / FER_DATA_SOURCES   folders, separated by os.pathsep (first: the default choice)
    FER_RUNS_DIR / FER_DATA            one folder each, used when the plural variables are unset
    FER_NO_TOKEN                       no start token on localhost (fer dashboard --no-token)

    # .streamlit/fer-studio.toml
    runs_dirs = ["checkpoints", "/srv/fer/runs"]
    data_sources = ["data", "/srv/datasets/fer2013"]
    ray_targets = ["ray:auto"]               # offered on the Train page (none: this machine only)
    [auth]
    mode = "password"                        # none | token | password | oidc
    operators = ["alice"]                    # everyone else who signs in is a viewer
    [auth.users]
    alice = "scrypt$..."                     # fer dashboard --hash-password
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Tuple

from fer.core.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SETTINGS_FILE = Path(".streamlit") / "fer-studio.toml"
AUTH_MODES = ("none", "token", "password", "oidc")
ROLES = ("viewer", "operator")


class SettingsError(UserError):
    """The server's settings file cannot be used (the message names the file and the field)."""


class PathNotAllowed(UserError):
    """A path that does not resolve inside the roots the server allows."""


@dataclass(frozen=True)
class AuthSettings:
    """How visitors sign in and which role each gets."""

    mode: str = "none"  # none: local only; token: one shared token; password: [auth.users]; oidc: st.login
    local_token: bool = True  # mode none: a token printed at start, as Jupyter does (off on a one-user laptop)
    token_hash: str = ""  # mode token: the hash of the shared token (fer dashboard --hash-password)
    users: Mapping[str, str] = field(default_factory=dict)  # mode password: name -> password hash
    operators: Tuple[str, ...] = ()  # names or e-mail addresses with the operator role ("*": everyone)

    def role_of(self, identity: str) -> str:
        """The role of a signed-in identity: operator when listed (or "*" is), else viewer."""
        return "operator" if identity in self.operators or "*" in self.operators else "viewer"


@dataclass(frozen=True)
class ServerSettings:
    """Everything a visitor may choose among; see the module docstring for where it comes from."""

    runs_dirs: Tuple[str, ...] = ()
    data_sources: Tuple[str, ...] = ()
    weights_dirs: Tuple[str, ...] = ()  # where pretrained weights files may be read from (model.kwargs.weights_path)
    ray_targets: Tuple[str, ...] = ()  # "ray" (a local Ray instance), "ray:auto", "ray:HOST:PORT"
    mlflow_uris: Tuple[str, ...] = ()  # tracking.mlflow_uri choices beside the runs folder's own file store
    sweep_storages: Tuple[str, ...] = ()  # Optuna RDB URLs beside the runs folder's SQLite files
    trash_days: float = 7.0  # deleted runs stay restorable this long
    video_max_frames: int = 9_000  # frames the Video page decodes per clip (5 min at 30 fps)
    auth: AuthSettings = field(default_factory=AuthSettings)
    source: str = ""  # the settings file read, if any

    def sign_in_required(self) -> bool:
        """Whether visitors must sign in (always, unless the mode is none without the local token)."""
        return self.auth.mode != "none" or self.auth.local_token


def _strings(value: Any, key: str, where: str) -> Tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise SettingsError(f"{where}: {key} must be a list of non-empty strings")
    return tuple(v.strip() for v in value)


def _auth(table: Mapping[str, Any], where: str) -> AuthSettings:
    unknown = set(table) - {"mode", "local_token", "token_hash", "users", "operators"}
    if unknown:
        raise SettingsError(f"{where}: unknown [auth] setting(s) {sorted(unknown)}")
    mode = table.get("mode", "none")
    if mode not in AUTH_MODES:
        raise SettingsError(f"{where}: auth.mode must be one of {', '.join(AUTH_MODES)}")
    users = table.get("users", {})
    if not isinstance(users, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
        raise SettingsError(f"{where}: [auth.users] maps user names to password hashes")
    local_token = table.get("local_token", True)
    if not isinstance(local_token, bool):
        raise SettingsError(f"{where}: auth.local_token must be true or false")
    auth = AuthSettings(mode, local_token, str(table.get("token_hash", "")), dict(users),
                        _strings(table.get("operators"), "auth.operators", where))
    if mode == "token" and not auth.token_hash:
        raise SettingsError(f"{where}: auth.mode = \"token\" needs auth.token_hash (fer dashboard --hash-password)")
    if mode == "password" and not auth.users:
        raise SettingsError(f"{where}: auth.mode = \"password\" needs an [auth.users] table")
    return auth


def _read_file(path: Optional[Path]) -> Tuple[Dict[str, Any], str]:
    if path is None:
        return {}, ""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh), str(path)
    except OSError as e:
        raise SettingsError(f"{path}: cannot read the settings file ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:  # its message gives the line and column, never the text
        raise SettingsError(f"{path}: not valid TOML ({e})") from None


def _env_list(plural: str, singular: str) -> Tuple[str, ...]:
    if os.environ.get(plural):
        return tuple(p for p in os.environ[plural].split(os.pathsep) if p)
    return (os.environ[singular],) if os.environ.get(singular) else ()


def load_settings(path: Optional[str | Path] = None) -> ServerSettings:
    """The server's settings: the file (`path`, FER_SETTINGS, or .streamlit/fer-studio.toml), then the environment."""
    chosen = path or os.environ.get("FER_SETTINGS") or (SETTINGS_FILE if SETTINGS_FILE.is_file() else None)
    table, source = _read_file(Path(chosen) if chosen else None)
    known = {"runs_dirs", "data_sources", "weights_dirs", "ray_targets", "mlflow_uris", "sweep_storages", "trash_days",
             "video_max_frames", "auth"}
    unknown = set(table) - known
    if unknown:
        raise SettingsError(f"{source}: unknown setting(s) {sorted(unknown)}; known: {sorted(known)}")
    lists = {key: _strings(table.get(key), key, source) for key in known - {"trash_days", "video_max_frames", "auth"}}
    runs, data = _env_list("FER_RUNS_DIRS", "FER_RUNS_DIR"), _env_list("FER_DATA_SOURCES", "FER_DATA")
    trash_days = table.get("trash_days", 7.0)
    if not isinstance(trash_days, (int, float)) or isinstance(trash_days, bool) or trash_days < 0:
        raise SettingsError(f"{source}: trash_days must be a number of days, 0 or more")
    video_max_frames = table.get("video_max_frames", ServerSettings.video_max_frames)
    if not isinstance(video_max_frames, int) or isinstance(video_max_frames, bool) or video_max_frames < 1:
        raise SettingsError(f"{source}: video_max_frames must be a whole number of frames, 1 or more")
    auth = table.get("auth", {})
    if not isinstance(auth, dict):
        raise SettingsError(f"{source}: [auth] must be a table")
    auth_settings = _auth(auth, source or "settings")
    if os.environ.get("FER_NO_TOKEN"):  # fer dashboard --no-token
        auth_settings = replace(auth_settings, local_token=False)
    return ServerSettings(runs_dirs=runs or lists["runs_dirs"], data_sources=data or lists["data_sources"],
                          weights_dirs=lists["weights_dirs"], ray_targets=lists["ray_targets"],
                          mlflow_uris=lists["mlflow_uris"], sweep_storages=lists["sweep_storages"],
                          trash_days=float(trash_days), video_max_frames=video_max_frames, auth=auth_settings,
                          source=source)


def within(path: str | Path, roots: Iterable[str | Path], what: str = "path") -> Path:
    """`path` resolved (symlinks followed), when it lies inside one of `roots`; PathNotAllowed otherwise."""
    text = str(path)
    if not text or "\0" in text or len(text) > 4096:
        raise PathNotAllowed(f"not a usable {what}")
    resolved = Path(text).expanduser().resolve()
    allowed: Sequence[Path] = [Path(r).expanduser().resolve() for r in roots]
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        raise PathNotAllowed(f"this {what} is outside the folders this server allows")
    return resolved
