"""Driving a sweep: Optuna proposes trials, each trial is an ordinary run through the job queue.

`run_sweep` asks the study for up to `jobs` trials at a time, queues each as a run folder (tagged
`sweep:NAME`, `trial:N`) for the worker, on this machine or a Ray cluster, and polls the folders:
every finished epoch's validation accuracy is reported to Optuna, and a trial the pruner gives up
on is asked to stop (it ends `pruned`). The value Optuna maximises is the run's best validation
accuracy; test splits never steer a sweep. A driver that stops (Ctrl-C, a closed terminal) leaves
its trials' runs training; running the sweep again adopts them and continues the study.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from fer.config import ConfigError, load_config
from fer.core.files import pid_alive
from fer.core.registry import Registry
from fer.data import DataError
from fer.jobs.queue import LOCAL, set_worker_slots
from fer.jobs.submit import fitted_to_data, submit
from fer.jobs.sweeps.space import parse_space, read_space
from fer.jobs.sweeps.study import (METRIC, SweepError, default_storage, definition, require_optuna, sampled_config, storage_problem,
                                   space_json, study_space, trial_config)
from fer.runs.store import FINISHED_STATES, default_runs_dir, read_metrics, read_status
from fer.runs.writer import request_cancel
from fer.training.validate import check_config

PRUNERS: Registry[Callable[..., Any]] = Registry("pruner")


@PRUNERS.register("median", title="stop a trial whose accuracy at an epoch is below the median of earlier trials")
def median_pruner(settings: "SweepSettings", epochs: int):
    """Optuna's MedianPruner after `startup_trials` finished trials and `warmup_epochs` epochs."""
    from optuna.pruners import MedianPruner

    return MedianPruner(n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup_epochs)


@PRUNERS.register("hyperband", title="successive halving over epochs, in several brackets")
def hyperband_pruner(settings: "SweepSettings", epochs: int):
    """Optuna's HyperbandPruner with epochs as the resource (1 … the base config's epochs)."""
    from optuna.pruners import HyperbandPruner

    return HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)


@PRUNERS.register("none", title="every trial trains all its epochs")
def no_pruner(settings: "SweepSettings", epochs: int):
    """Optuna's NopPruner."""
    from optuna.pruners import NopPruner

    return NopPruner()


@dataclass
class SweepSettings:
    """How a sweep runs; stored on the study beside the base config and the space."""

    name: str
    trials: int  # the study's total: a resumed sweep with a larger number adds trials
    jobs: int = 1  # trials training at once
    pruner: str = "median"
    startup_trials: int = 5  # finished trials before the median pruner prunes anything
    warmup_epochs: int = 0  # epochs every trial trains before it can be pruned
    seed: Optional[int] = None  # TPE's seed; leave unset when several machines share one study
    target: str = LOCAL  # "local", or a Ray target (fer.jobs.ray)


@dataclass
class _InFlight:
    trial: Any  # optuna.trial.Trial
    run_dir: Path
    reported: int = 0
    pruning: str = ""


def _driver() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _driver_gone(trial) -> bool:
    """Whether the driver that asked for a RUNNING trial died (on this host): its trial is free to adopt."""
    host, _, pid = str(trial.user_attrs.get("driver", "")).rpartition(":")
    return host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))


def open_study(settings: SweepSettings, config_path: Optional[str | Path] = None,
               space_path: Optional[str | Path] = None, overrides: Sequence[str] = (),
               runs_dir: Optional[Path] = None, storage: Optional[str] = None):
    """Create the study (storing base config, space and settings) or load it to continue; returns it."""
    optuna = require_optuna()
    if settings.pruner not in PRUNERS:
        raise SweepError(f"unknown pruner {settings.pruner!r}; choose from: {', '.join(PRUNERS.names())}")
    storage = storage or default_storage(settings.name, runs_dir)
    db = Path(storage[len("sqlite:///"):]) if storage.startswith("sqlite:///") else None
    existing = None
    if db is None or db.is_file():  # (opening a SQLite URL would create the file before the space is checked)
        try:
            existing = optuna.load_study(study_name=settings.name, storage=storage)
        except KeyError:
            pass
        except Exception as e:  # noqa: BLE001 - a missing driver, a refused connection: one line
            raise SweepError(f"cannot open the sweep storage: {storage_problem(e)}") from None
    if existing is None:
        if space_path is None:
            raise SweepError(f"sweep {settings.name!r} does not exist yet: give it --space (and --config)")
        space = read_space(space_path)
        base = load_config(config_path, overrides)
        if runs_dir:
            base.runs_dir = str(runs_dir)
        _check_space(base, parse_space(space))  # every key, range end and choice, before anything is stored
        stored = {"base": base.to_dict(), "space": space, "metric": METRIC, **asdict(settings)}
        epochs = base.train.epochs
    else:
        stored = definition(existing)
        if space_path is not None and space_json(read_space(space_path)) != space_json(stored["space"]):
            raise SweepError(f"sweep {settings.name!r} was created with another search space; resume it without "
                             "--space, or start a new sweep with another --name")
        if config_path is not None or overrides:
            raise SweepError(f"sweep {settings.name!r} keeps the base config it was created with; resume it "
                             "without --config/--set, or start a new sweep with another --name")
        epochs = stored["base"]["train"]["epochs"]
    # A resumed driver re-seeds past the trials so far, so its random start does not repeat earlier picks.
    seed = None if settings.seed is None else settings.seed + (len(existing.trials) if existing else 0)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=settings.name, storage=storage, load_if_exists=True,
                                direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed),
                                pruner=PRUNERS.get(settings.pruner)(settings, epochs))
    if existing is None:
        study.set_user_attr("fer_sweep", stored)
    return study


def _check_space(base, params: Dict[str, Any]) -> None:
    """Each choice and each range end, set alone on the base config, must pass the run checks."""
    for key, param in params.items():
        dist = param.distribution
        values = dist.choices if hasattr(dist, "choices") else (dist.low, dist.high)
        for value in values:
            cfg = sampled_config(base, {key: param}, {key: value})
            try:
                check_config(cfg)
            except ConfigError as e:
                raise ConfigError(f"search space {key} = {param.value(value)!r}: {e}") from None


def run_sweep(study, settings: SweepSettings, runs_dir: Optional[Path] = None, poll_s: float = 0.5,
              on_event: Optional[Callable[[str], None]] = None) -> Dict[str, int]:
    """Run trials until the study has `settings.trials`, `settings.jobs` at a time; counts per final state."""
    say = on_event or (lambda line: None)
    root = Path(runs_dir or definition(study)["base"].get("runs_dir") or default_runs_dir())
    if settings.target == LOCAL:
        set_worker_slots(root, max(1, settings.jobs))
    space = study_space(study)
    in_flight: Dict[int, _InFlight] = {}
    optuna = require_optuna()
    for t in study.get_trials(deepcopy=False, states=[optuna.trial.TrialState.RUNNING]):
        run = t.user_attrs.get("run")
        if run and (root / run).is_dir() and _driver_gone(t):  # left by a driver that stopped: carry on with it
            trial = optuna.trial.Trial(study, t._trial_id)
            trial.set_user_attr("driver", _driver())
            in_flight[t.number] = _InFlight(trial, root / run, reported=len(t.intermediate_values))
            say(f"trial {t.number}: adopted (run {run})")
    counts: Dict[str, int] = {}
    while True:
        while len(in_flight) < max(1, settings.jobs) and len(study.trials) < settings.trials:
            trial = study.ask(fixed_distributions={k: p.distribution for k, p in space.items()})
            cfg = trial_config(study, trial.params, f"{study.study_name}-t{trial.number}",
                               [f"sweep:{study.study_name}", f"trial:{trial.number}"])
            try:
                run_dir = submit(check_config(fitted_to_data([cfg])[0]), root, settings.target)
            except (ConfigError, DataError) as e:  # this combination cannot train: Optuna learns it failed
                trial.set_user_attr("error", str(e))
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                counts["failed"] = counts.get("failed", 0) + 1
                say(f"trial {trial.number}: not started: {e}")
                continue
            trial.set_user_attr("run", run_dir.name)
            trial.set_user_attr("driver", _driver())
            in_flight[trial.number] = _InFlight(trial, run_dir)
            say(f"trial {trial.number}: queued {run_dir.name} ({_params_text(trial.params)})")
        if not in_flight:
            return counts
        for number, job in list(in_flight.items()):
            state = _follow(job)
            if state is not None:
                del in_flight[number]
                counts[state] = counts.get(state, 0) + 1
                say(_finished_line(number, state, job))
        time.sleep(poll_s)


def _follow(job: _InFlight) -> Optional[str]:
    """Report new epochs, prune when the pruner says so, and tell Optuna once the run ends; its end state."""
    from optuna.trial import TrialState

    metrics = read_metrics(job.run_dir)
    for row in metrics.iloc[job.reported:].itertuples():
        job.trial.report(float(row.val_acc), step=int(row.epoch))
        job.reported += 1
        if not job.pruning and job.trial.should_prune():
            job.pruning = f"pruned by the sweep at epoch {int(row.epoch)} (val accuracy {row.val_acc:.4f})"
            request_cancel(job.run_dir, prune=job.pruning)
    status = read_status(job.run_dir)
    state = status.get("state")
    if state not in FINISHED_STATES:
        return None
    if state == "completed":
        value = status.get("best_val_acc")
        if value is None and len(metrics):
            value = float(metrics["val_acc"].max())
        job.trial.study.tell(job.trial, value)
    elif state == "pruned" and job.reported:
        job.trial.study.tell(job.trial, state=TrialState.PRUNED)
    else:  # failed, cancelled by hand, or interrupted: Optuna learns nothing from it
        job.trial.set_user_attr("stopped", state)
        job.trial.study.tell(job.trial, state=TrialState.FAIL)
    return state


def _params_text(params: Dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def _finished_line(number: int, state: str, job: _InFlight) -> str:
    status = read_status(job.run_dir)
    if state == "completed":
        return f"trial {number}: completed, best val accuracy {status.get('best_val_acc', float('nan')):.4f}"
    if state == "pruned":
        return f"trial {number}: {status.get('pruned') or 'pruned'}"
    return f"trial {number}: {state}" + (f" ({status['error']})" if status.get("error") else "")
