"""A sweep's Optuna study: where it is stored, what it was defined with, and what it found.

The study lives in SQLite inside the runs folder (`<runs>/sweeps/NAME.db`) unless an RDB URL is
given (`--storage postgresql://…`), which lets drivers on many machines work on one study. The
sweep's definition (base config, search space, metric) is kept on the study itself, so resuming
or reporting needs only its name. Everything here reads; `fer.jobs.sweeps.runner` drives the study.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd

from fer.config import RunConfig, from_dict, load_config
from fer.core.errors import UserError
from fer.core.extras import require
from fer.jobs.sweeps.space import Param, as_overrides, parse_space, trial_layer
from fer.runs.store import default_runs_dir

SWEEPS_FOLDER = "sweeps"
METRIC = "val_acc"  # maximised: the best validation accuracy of the trial's run (never a test split)


class SweepError(UserError):
    """No such sweep, Optuna missing, or a definition that does not match the stored study."""


def require_optuna():
    """The `optuna` module (quiet: the sweep prints its own lines), or SweepError saying how to install it."""
    optuna = require("optuna", "sweep", "sweeps need Optuna", SweepError)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def sweeps_dir(runs_dir: Optional[Path] = None) -> Path:
    """Where SQLite studies live: the runs folder's sweeps/."""
    return Path(runs_dir or default_runs_dir()) / SWEEPS_FOLDER


def default_storage(name: str, runs_dir: Optional[Path] = None) -> str:
    """sqlite:///<runs>/sweeps/NAME.db."""
    if not name or any(c in name for c in "/\\\0") or name.startswith("."):
        raise SweepError(f"a sweep name is a plain file name, got {name!r}")
    return f"sqlite:///{(sweeps_dir(runs_dir) / f'{name}.db').resolve()}"


def list_sweeps(runs_dir: Optional[Path] = None) -> List[str]:
    """Names of the SQLite sweeps in the runs folder, newest first."""
    folder = sweeps_dir(runs_dir)
    files = sorted(folder.glob("*.db"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    return [p.stem for p in files]


def load_study(name: str, runs_dir: Optional[Path] = None, storage: Optional[str] = None):
    """The stored study NAME (read-only use); SweepError when there is none."""
    optuna = require_optuna()
    storage = storage or default_storage(name, runs_dir)
    if storage.startswith("sqlite:///") and not Path(storage[len("sqlite:///"):]).is_file():
        raise SweepError(f"no sweep {name!r} in {sweeps_dir(runs_dir)} (sweeps there: "
                         f"{', '.join(list_sweeps(runs_dir)) or 'none'})")
    try:
        return optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        raise SweepError(f"no study {name!r} in {_shown(storage)}") from None
    except Exception as e:  # noqa: BLE001 - a missing database driver, a refused connection, a bad URL
        raise SweepError(f"cannot open the sweep storage {_shown(storage)}: {storage_problem(e)}") from None


def _shown(storage: str) -> str:
    """A storage URL as messages show it: without its password."""
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", storage)


def storage_problem(error: BaseException) -> str:
    """What went wrong opening a storage, in one line (a missing driver says which package to install)."""
    missing = next((e for e in (error, error.__cause__, error.__context__) if isinstance(e, ModuleNotFoundError)), None)
    if missing is not None:  # Optuna wraps the driver's ImportError in its own
        return f"its database driver is not installed (pip install {missing.name})"
    return f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"


def definition(study) -> Dict[str, Any]:
    """What the sweep was created with: base config (dict), search space (mapping), settings."""
    stored = study.user_attrs.get("fer_sweep")
    if not isinstance(stored, dict):
        raise SweepError(f"study {study.study_name!r} was not made by fer sweep (no stored definition)")
    return stored


def study_space(study) -> Dict[str, Param]:
    """The sweep's parsed search space."""
    return parse_space(definition(study)["space"])


def trial_config(study, sampled: Dict[str, Any], name: str, tags: List[str]) -> RunConfig:
    """The run config of a trial: the stored base config, then the sampled values."""
    base = from_dict(RunConfig, definition(study)["base"])
    cfg = sampled_config(base, study_space(study), sampled)
    cfg.name, cfg.tags = name, list(dict.fromkeys([*base.tags, *tags]))
    return cfg


def sampled_config(base: RunConfig, params: Dict[str, Any], sampled: Dict[str, Any]) -> RunConfig:
    """The base config with sampled values of `params` layered on top."""
    # Layers: a trial that picks model.name brings its own model.kwargs (the base's would not fit).
    return load_config(None, (), layers=[base.to_dict(), trial_layer(params, sampled)])


def trials_table(study) -> pd.DataFrame:
    """One row per trial: number, state, value (best val accuracy), epochs reported, run, then each parameter."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                     "epochs": len(t.intermediate_values), "run": t.user_attrs.get("run"),
                     "started": t.datetime_start, "finished": t.datetime_complete,
                     **{f"param {k}": v for k, v in t.params.items()}})
    columns = ["trial", "state", "value", "epochs", "run", "started", "finished"]
    return pd.DataFrame(rows, columns=None if rows else columns)


def history(study) -> pd.DataFrame:
    """Finished trials in order with the best value so far (the optimisation history)."""
    table = trials_table(study)
    if table.empty:
        return pd.DataFrame(columns=["trial", "state", "value", "best so far"])
    table = table[table["state"].isin(["complete", "pruned"]) & table["value"].notna()].copy()
    complete = table["value"].where(table["state"] == "complete")
    table["best so far"] = complete.cummax().ffill()
    return table[["trial", "state", "value", "best so far"]].reset_index(drop=True)


def importances(study) -> Dict[str, float]:
    """fANOVA importance of each parameter for the value, over completed trials ({} below two of them)."""
    optuna = require_optuna()
    from optuna.importance import FanovaImportanceEvaluator

    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    if len(complete) < 2:
        return {}
    try:
        found = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
    except (ValueError, RuntimeError):  # e.g. a parameter that never varied among completed trials
        return {}
    return {k: float(v) for k, v in found.items() if not math.isnan(v)}


def best_trial(study):
    """The completed trial with the highest value, or None."""
    complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE" and t.value is not None]
    return max(complete, key=lambda t: t.value) if complete else None


def best_config(study, epochs: int = 0) -> RunConfig:
    """The best trial's settings as a new run (named NAME-best), optionally for `epochs` epochs."""
    best = best_trial(study)
    if best is None:
        raise SweepError(f"sweep {study.study_name!r} has no completed trial yet")
    cfg = trial_config(study, best.params, f"{study.study_name}-best", [f"from-sweep:{study.study_name}",
                                                                       f"from-trial:{best.number}"])
    if epochs:
        cfg.train.epochs = int(epochs)
    return cfg


def reproduce_command(study, runs_dir: Optional[Path] = None, epochs: int = 0) -> str:
    """The `fer train` command that trains the best trial's settings again."""
    best = best_trial(study)
    if best is None:
        return ""
    run = best.user_attrs.get("run")
    root = Path(runs_dir or default_runs_dir())
    sets = " ".join(f"--set {_quote(o)}" for o in as_overrides(study_space(study), best.params))
    extra = f" --epochs {epochs}" if epochs else ""
    return (f"fer train --config {root / run / 'config.json'} --set name={study.study_name}-best "
            f"--set 'tags=[from-sweep:{study.study_name}]'{extra}"
            + (f"\n# = the sweep's base config with: {sets}" if sets else ""))


def _quote(item: str) -> str:
    return f"'{item}'" if any(c in item for c in " []{}*$\"") else item


def summary(study) -> Dict[str, Any]:
    """Counts per state and the best trial, as `fer sweep report` and the dashboard show them."""
    table = trials_table(study)
    counts = table["state"].value_counts().to_dict() if not table.empty else {}
    best, stored = best_trial(study), definition(study)
    return {"name": study.study_name, "trials": len(table), "states": counts,
            "best": None if best is None else {"trial": best.number, "value": best.value, "params": best.params,
                                                 "run": best.user_attrs.get("run")},
            "settings": {k: v for k, v in stored.items() if k not in ("base", "space")},
            "space": stored["space"]}


def space_json(space: Dict[str, Any]) -> str:
    """A search space in one canonical text, to compare a resumed sweep's space with the stored one."""
    return json.dumps(space, sort_keys=True, default=str)


def parallel_coordinates(study) -> pd.DataFrame:
    """Finished trials in long form for a parallel-coordinates plot: one row per trial and axis.

    `position` puts each parameter on 0–1 (log ranges on a log scale, choices by their index) so
    the axes share one scale; `label` keeps the real value. The last axis is the trial's value.
    """
    space = study_space(study)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")
              and (t.value is not None or t.intermediate_values)]
    rows = []
    for t in trials:
        value = t.value if t.value is not None else list(t.intermediate_values.values())[-1]
        for key, param in space.items():
            if key in t.params:
                rows.append({"trial": t.number, "state": t.state.name.lower(), "axis": key,
                             "position": _position(param.distribution, t.params[key]), "label": str(t.params[key]),
                             "value": value})
        rows.append({"trial": t.number, "state": t.state.name.lower(), "axis": METRIC, "position": None,
                     "label": f"{value:.4f}", "value": value})
    table = pd.DataFrame(rows, columns=["trial", "state", "axis", "position", "label", "value"])
    if not table.empty:  # the value axis spans the values found
        values = table.loc[table["axis"] == METRIC, "value"]
        span = (values.max() - values.min()) or 1.0
        table.loc[table["axis"] == METRIC, "position"] = (values - values.min()) / span
    return table


def _position(distribution, value: Any) -> float:
    """Where `value` sits in its distribution, 0–1."""
    if hasattr(distribution, "choices"):
        choices = list(distribution.choices)
        return choices.index(value) / max(len(choices) - 1, 1)
    low, high = float(distribution.low), float(distribution.high)
    if getattr(distribution, "log", False):
        low, high, value = math.log(low), math.log(high), math.log(float(value))
    return (float(value) - low) / ((high - low) or 1.0)
