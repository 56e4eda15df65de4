"""Hyperparameter sweeps with Optuna: a search space over any config field, TPE search, pruning.

Each trial is an ordinary run through the job queue (this machine, or a Ray cluster); the study is
stored in SQLite in the runs folder, or in any RDB that several machines share. Optuna is an
optional extra (`pip install 'fer-studio[sweep]'`): importing this package does not import it.
"""
from fer.jobs.sweeps.runner import PRUNERS, SweepSettings, open_study, run_sweep
from fer.jobs.sweeps.space import Param, parse_space, read_space
from fer.jobs.sweeps.study import (SweepError, best_config, best_trial, default_storage, definition, history,
                                   importances, list_sweeps, load_study, parallel_coordinates, reproduce_command,
                                   summary, sweeps_dir, trials_table)

__all__ = ["PRUNERS", "Param", "SweepError", "SweepSettings", "best_config", "best_trial", "default_storage",
           "definition", "history", "importances", "list_sweeps", "load_study", "open_study", "parallel_coordinates",
           "parse_space",
           "read_space", "reproduce_command", "run_sweep", "summary", "sweeps_dir", "trials_table"]
