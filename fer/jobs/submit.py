"""Submitting training jobs: every background run goes through the one queue (`fer.jobs.queue`).

`submit` queues the run folder of a config `check_config` has passed (so one launch is checked once);
`submit_suite` checks a whole suite's configs, then queues them in order (a bad one queues none);
`run_suite` also waits for them (what `fer suite run` does). The queue's worker trains them, on this
machine or, for `target` "ray"/"ray:ADDRESS", as tasks on that Ray cluster (fer.jobs.ray).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from fer.config import RunConfig
from fer.core.constants import SPLITS
from fer.data import DataError, default_data_path, load_fer2013
from fer.jobs.queue import LOCAL, set_worker_slots
from fer.jobs.ray import require_ray
from fer.jobs.suites import fit_to_data, suite_configs
from fer.jobs.worker import ensure_worker, wait
from fer.training.fit import create_run
from fer.training.validate import CheckedConfig, check_config


def submit(checked: CheckedConfig, runs_dir: Optional[Path] = None, target: str = LOCAL) -> Path:
    """Queue a checked run and make sure a worker will train it (here, or on the Ray cluster `target`)."""
    return submit_all([checked], runs_dir, target)[0]


def submit_all(checked: Sequence[CheckedConfig], runs_dir: Optional[Path] = None,
               target: str = LOCAL) -> List[Path]:
    """Queue several checked runs, in order, and make sure a worker will train them."""
    if target != LOCAL:
        require_ray()  # say how to install Ray before queuing anything
    where = {} if target == LOCAL else {"target": target}
    run_dirs = [create_run(c, runs_dir, **where) for c in checked]
    if run_dirs:
        ensure_worker(run_dirs[0].parent)
    return run_dirs


def fitted_to_data(configs: Sequence[RunConfig]) -> List[RunConfig]:
    """The configs, each moved to PublicTest where its data lacks its test split (see `fit_to_data`)."""
    splits: Dict[str, set] = {}
    out = []
    for cfg in configs:
        path = cfg.data.path or str(default_data_path())
        if path not in splits:
            try:
                splits[path] = set(load_fer2013(path).split_names())
            except DataError:  # no data there: check_config will say so when the run is created
                splits[path] = set(SPLITS)
        out.append(fit_to_data(cfg, splits[path]))
    return out


def submit_suite(name: str, epochs: int = 0, repeats: int = 1, overrides: Sequence[str] = (),
                 runs_dir: Optional[Path] = None, config_path: Optional[str | Path] = None,
                 target: str = LOCAL, variants: Sequence[str] = ()) -> List[Path]:
    """Queue every run of a suite (its variants, or those named, × repeats), fitted to the data's splits.

    Every config is checked before any run folder is made, so a bad one queues nothing."""
    configs = suite_configs(name, repeats, epochs, overrides, config_path, variants)
    return submit_all([check_config(cfg) for cfg in fitted_to_data(configs)], runs_dir, target)


def run_suite(name: str, repeats: int = 1, epochs: int = 0, overrides: Sequence[str] = (),
              config_path: Optional[str | Path] = None, runs_dir: Optional[Path] = None,
              slots: Optional[int] = None, on_finish: Optional[Callable[[Path, Dict], None]] = None,
              target: str = LOCAL, variants: Sequence[str] = ()) -> Dict[Path, str]:
    """Queue a suite on the worker (with `slots` parallel jobs when given) and wait for all its runs."""
    if slots is not None:
        set_worker_slots(runs_dir, slots)
    run_dirs = submit_suite(name, epochs, repeats, overrides, runs_dir, config_path, target, variants)
    return wait(run_dirs, on_finish=on_finish)
