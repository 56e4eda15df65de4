"""Optional experiment trackers: Weights & Biases, MLflow and TensorBoard, as the studies used them.

The run folder stays the source of truth; a tracker gets a copy of what the recorder writes: the
config, per-epoch metrics, tags, each final evaluation (metrics and confusion matrix) and, at the end,
the best checkpoint and config as artifacts. Trackers are extras (`pip install 'fer-studio[wandb]'`…):
one that is missing, offline or raising logs a warning once and is switched off; the run goes on.
A resumed run continues the same tracker run (W&B id and MLflow tag derived from the run folder).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from fer.config import RunConfig
from fer.core.extras import install_hint
from fer.core.registry import Registry
from fer.runs import writer as run_writer

TRACKERS: Registry[Callable[[RunConfig, Path], "Tracker"]] = Registry("tracker")
RUN_TAG = "fer.run_id"  # MLflow tag naming the run folder, so a resumed run finds its MLflow run again


def flatten(config: Mapping[str, Any], prefix: str = "") -> Dict[str, Any]:
    """Nested config → {"optim.lr": 0.001, …} (lists and model kwargs as JSON text)."""
    out: Dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict) and key != "kwargs":
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = json.dumps(value) if isinstance(value, (list, dict)) else value
    return out


def final_metrics(role: str, metrics: Mapping[str, Any]) -> Dict[str, float]:
    """A final evaluation's accuracy and macro-F1, named as the run's status names them (test_acc, best_val_acc)."""
    prefix = "best_val" if role == "val" else role  # "val_acc" is already the per-epoch curve
    return {f"{prefix}_acc": float(metrics["accuracy"]), f"{prefix}_macro_f1": float(metrics["macro_f1"])}


def numeric(row: Mapping[str, Any]) -> Dict[str, float]:
    """The numbers of a metrics row (booleans and text left out)."""
    return {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


class Tracker:
    """What a tracker is told; every method may raise, `Trackers` contains it."""

    name = "tracker"

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One finished epoch's metrics row (step = epoch)."""

    def log_evaluation(self, role: str, metrics: Mapping[str, Any]) -> None:
        """A final evaluation of one split (role val or test): its metrics and confusion matrix."""

    def finish(self, state: str, files: List[Path]) -> None:
        """The run ended in `state`; `files` (best checkpoint, config) go up as artifacts when completed."""


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """Weights & Biases: `WANDB_MODE=offline` keeps it on disk (`wandb sync` later)."""

    name = "wandb"

    def __init__(self, cfg: RunConfig, run_dir: Path, folder: Path) -> None:
        import wandb  # an optional extra: imported only when asked for

        self.wandb = wandb
        run_id = "fer-" + hashlib.sha1(run_dir.name.encode()).hexdigest()[:16]
        self.run = wandb.init(project=cfg.tracking.wandb_project, name=cfg.name, id=run_id, resume="allow",
                              config=cfg.to_dict(), tags=[t[:64] for t in cfg.tags], dir=str(folder),
                              settings=wandb.Settings(silent=True))
        self.run_dir = run_dir

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        self.run.log(numeric(row), step=int(row["epoch"]))

    def log_evaluation(self, role: str, metrics: Mapping[str, Any]) -> None:
        names = list(metrics["class_names"])
        table = self.wandb.Table(columns=["true"] + names,
                                 data=[[t] + list(r) for t, r in zip(names, metrics["confusion_matrix"])])
        self.run.log({f"{role}/confusion_matrix": table})
        self.run.summary.update(final_metrics(role, metrics))

    def finish(self, state: str, files: List[Path]) -> None:
        if state == "completed" and files:
            artifact = self.wandb.Artifact(f"model-{self.run.id}", type="model",
                                           metadata={"run_folder": self.run_dir.name})
            for path in files:
                artifact.add_file(str(path))
            self.run.log_artifact(artifact)
        self.run.finish(exit_code=0 if state in ("completed", "cancelled", "pruned") else 1)


@TRACKERS.register("mlflow")
class MlflowTracker(Tracker):
    """MLflow: the URI from the config, else MLFLOW_TRACKING_URI, else a file store in the runs folder."""

    name = "mlflow"

    def __init__(self, cfg: RunConfig, run_dir: Path, folder: Path) -> None:
        from mlflow.tracking import MlflowClient  # an optional extra

        uri = cfg.tracking.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or \
            (run_dir.parent / "mlruns").resolve().as_uri()
        if uri.startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode and asks for this opt-in to use it.
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(uri)
        experiment = self.client.get_experiment_by_name(cfg.tracking.mlflow_experiment)
        experiment_id = experiment.experiment_id if experiment else \
            self.client.create_experiment(cfg.tracking.mlflow_experiment)
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{RUN_TAG}` = '{run_dir.name}'")
        if found:  # a resumed run: continue its MLflow run
            self.run_id = found[0].info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            tags = {RUN_TAG: run_dir.name, "mlflow.runName": cfg.name}
            tags.update({t.split(":", 1)[0]: t.split(":", 1)[1] if ":" in t else "true" for t in cfg.tags})
            self.run_id = self.client.create_run(experiment_id, tags=tags).info.run_id
            for key, value in flatten(cfg.to_dict()).items():
                self.client.log_param(self.run_id, key, str(value)[:6000])

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for key, value in numeric(row).items():
            self.client.log_metric(self.run_id, key, value, step=int(row["epoch"]))

    def log_evaluation(self, role: str, metrics: Mapping[str, Any]) -> None:
        for key, value in final_metrics(role, metrics).items():
            self.client.log_metric(self.run_id, key, value)
        self.client.log_dict(self.run_id, {"class_names": list(metrics["class_names"]),
                                           "matrix": metrics["confusion_matrix"]},
                             f"evaluation/confusion_{role}.json")

    def finish(self, state: str, files: List[Path]) -> None:
        if state == "completed":
            for path in files:
                self.client.log_artifact(self.run_id, str(path), "run")
        self.client.set_terminated(self.run_id, {"completed": "FINISHED", "cancelled": "KILLED", "pruned": "KILLED"}.get(state, "FAILED"))


@TRACKERS.register("tensorboard")
class TensorboardTracker(Tracker):
    """TensorBoard event files in the run folder (`tensorboard --logdir <runs folder>`)."""

    name = "tensorboard"

    def __init__(self, cfg: RunConfig, run_dir: Path, folder: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard extra

        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
        self.writer.add_text("config", "```json\n" + cfg.to_json() + "```")
        self.writer.add_text("tags", ", ".join(cfg.tags) or "(none)")

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        for key, value in numeric(row).items():
            if key != "epoch":
                self.writer.add_scalar(key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key,
                                       value, int(row["epoch"]))
        self.writer.flush()

    def log_evaluation(self, role: str, metrics: Mapping[str, Any]) -> None:
        matrix = np.asarray(metrics["confusion_matrix"], dtype=float)
        rows = matrix / np.maximum(matrix.sum(1, keepdims=True), 1)  # row-normalised: recall on the diagonal
        self.writer.add_image(f"{role}/confusion_matrix", rows[None], 0)
        self.writer.add_scalar(f"{role}/final_accuracy", float(metrics["accuracy"]), 0)
        header = "| true \\ pred | " + " | ".join(metrics["class_names"]) + " |\n"
        header += "|---" * (len(metrics["class_names"]) + 1) + "|\n"
        body = "".join(f"| {name} | " + " | ".join(str(int(v)) for v in r) + " |\n"
                       for name, r in zip(metrics["class_names"], matrix))
        self.writer.add_text(f"{role}/confusion_matrix", header + body)
        self.writer.flush()

    def finish(self, state: str, files: List[Path]) -> None:
        self.writer.close()


class Trackers:
    """The trackers a run asked for; a failing one is reported once in the log and dropped."""

    def __init__(self, trackers: List[Tracker], log: logging.Logger) -> None:
        self.trackers, self.log = trackers, log

    @property
    def active(self) -> bool:
        """Whether any tracker is still reporting."""
        return bool(self.trackers)

    @classmethod
    def start(cls, cfg: RunConfig, run_dir: Path, log: logging.Logger) -> "Trackers":
        """Start each tracker `cfg.tracking` turns on (warning, not failing, on any that cannot start)."""
        started = []
        wanted = [name for name in TRACKERS.names() if getattr(cfg.tracking, name)]
        folder = run_writer.tracker_dir(run_dir) if wanted else run_dir
        for name in wanted:
            try:
                started.append(TRACKERS.get(name)(cfg, run_dir, folder))
                log.info("tracking with %s", name)
            except ImportError:
                log.warning("warning: tracker %s is off for this run: not installed (%s)", name, install_hint(name))
            except Exception as e:  # offline, refused, misconfigured: the run goes on without it
                log.warning("warning: tracker %s is off for this run: %s: %s", name, type(e).__name__, e)
        return cls(started, log)

    def _each(self, method: str, *args: Any) -> None:
        for tracker in list(self.trackers):
            try:
                getattr(tracker, method)(*args)
            except Exception as e:
                self.log.warning("warning: tracker %s failed (%s: %s) and is off for the rest of this run",
                                 tracker.name, type(e).__name__, e)
                self.trackers.remove(tracker)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """Forward an epoch's metrics."""
        self._each("log_epoch", row)

    def log_evaluation(self, role: str, metrics: Mapping[str, Any]) -> None:
        """Forward a final evaluation."""
        self._each("log_evaluation", role, metrics)

    def finish(self, state: str, files: Optional[List[Path]] = None) -> None:
        """Close every tracker (artifacts first when the run completed)."""
        self._each("finish", state, [p for p in files or [] if p.is_file()])
        self.trackers = []
