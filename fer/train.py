"""Run a training job: build everything from one RunConfig and write the run folder as it goes.

`train(cfg)` starts a new run; `train(run_dir=...)` starts a queued run or resumes one from its
last checkpoint after a crash or cancel. Every epoch appends metrics, saves `last.pt` (and
`best.pt` when validation accuracy improves) and updates `status.json`. At the end the best
checkpoint is evaluated on the test split.
"""
from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import f1_score

from fer.augment import AUGMENTATIONS, build_augmentation
from fer.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from fer.config import RunConfig, from_dict, save_config
from fer.data import default_data_path, load_fer2013
from fer.data.readers import resolve_source
from fer.data.splits import VAL_SOURCES
from fer.data.loaders import eval_loader, inverse_frequency_weights, train_loader
from fer.device import amp_dtype, describe_device, select_device
from fer.engine import evaluate, train_one_epoch
from fer.evaluate import evaluate_split, splits_for
from fer.models import MODELS, count_parameters, create_model
from fer.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler
from fer.runs import (append_metrics, default_runs_dir, new_run_id, read_json, truncate_metrics, utc_now,
                      write_status)
from fer.transfer import apply_freeze, parameter_groups

STATUS_EVERY_S = 1.0  # throttle status.json writes during an epoch


class Cancelled(Exception):
    """Raised inside the loop when a cancel was requested (CANCEL file, SIGTERM or Ctrl-C)."""


def validate_config(cfg: RunConfig) -> None:
    """Fail fast, before a run folder exists, on names no registry knows and a missing data source."""
    MODELS.get(cfg.model.name)
    OPTIMIZERS.get(cfg.optim.name)
    SCHEDULERS.get(cfg.sched.name)
    AUGMENTATIONS.get(cfg.augmentation)
    amp_dtype(cfg.train.amp, select_device(cfg.train.device))
    if cfg.data.sampler not in ("none", "weighted"):
        raise ValueError(f"data.sampler must be 'none' or 'weighted', got {cfg.data.sampler!r}")
    if cfg.data.val_source not in VAL_SOURCES:
        raise ValueError(f"data.val_source must be one of {VAL_SOURCES}, got {cfg.data.val_source!r}")
    if cfg.train.epochs < 1 or cfg.train.batch_size < 1:
        raise ValueError("train.epochs and train.batch_size must be at least 1")
    resolve_source(cfg.data.path or default_data_path())


def create_run(cfg: RunConfig, runs_dir: Optional[Path] = None) -> Path:
    """Make the run folder with config.json and a 'queued' status; training may start later."""
    validate_config(cfg)
    root = Path(runs_dir or cfg.runs_dir or default_runs_dir())
    # Record where the data really came from, so `fer eval` finds it later from any directory.
    cfg.data.path = str(Path(cfg.data.path or default_data_path()).expanduser().resolve())
    root.mkdir(parents=True, exist_ok=True)
    run_dir = root / new_run_id(cfg.name)
    run_dir.mkdir()
    save_config(cfg, run_dir / "config.json")
    write_status(run_dir, "queued", created_at=utc_now(), epochs=cfg.train.epochs)
    return run_dir


def load_run_config(run_dir: Path) -> RunConfig:
    """The RunConfig saved in a run folder."""
    return from_dict(RunConfig, read_json(Path(run_dir) / "config.json"))


def _run_logger(run_dir: Path, echo: bool) -> logging.Logger:
    logger = logging.getLogger(f"fer.run.{run_dir.name}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.handlers.clear()
    fh = logging.FileHandler(run_dir / "train.log")
    fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(fh)
    if echo:
        sh = _TqdmHandler()
        sh.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(sh)
    return logger


class _TqdmHandler(logging.Handler):
    """Log lines that do not break an active tqdm bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm
        tqdm.write(self.format(record), file=sys.stderr)


@contextmanager
def _sigterm_cancels():
    """Turn SIGTERM into `Cancelled` while training (only possible on the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Cancelled("SIGTERM")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(cfg: Optional[RunConfig] = None, run_dir: Optional[Path] = None, progress: bool = False) -> Path:
    """Train a new run from `cfg`, or start/resume the run at `run_dir`; returns the run folder."""
    if run_dir is None:
        if cfg is None:
            raise ValueError("train() needs a config or a run folder")
        run_dir = create_run(cfg)
    else:
        run_dir = Path(run_dir)
        cfg = load_run_config(run_dir)
    log = _run_logger(run_dir, echo=progress)
    cancel_file = run_dir / "CANCEL"
    cancel_file.unlink(missing_ok=True)
    try:
        with _sigterm_cancels():
            _fit(cfg, run_dir, log, progress)
    except (Cancelled, KeyboardInterrupt) as e:
        log.info("cancelled (%s); resume with: fer train --resume %s", e or "interrupt", run_dir)
        write_status(run_dir, "cancelled", finished_at=utc_now())
    except Exception as e:
        log.exception("training failed")
        write_status(run_dir, "failed", error=f"{type(e).__name__}: {e}", finished_at=utc_now())
        raise
    finally:
        cancel_file.unlink(missing_ok=True)
        for h in list(log.handlers):
            h.close()
            log.removeHandler(h)
    return run_dir


def _fit(cfg: RunConfig, run_dir: Path, log: logging.Logger, progress: bool) -> None:
    seed_everything(cfg.train.seed)
    device = select_device(cfg.train.device)
    dtype = amp_dtype(cfg.train.amp, device)
    spec = cfg.preprocessing()

    data = load_fer2013(cfg.data.path)
    splits = splits_for(cfg, data)
    log.info("data %s: %s; load report: %s", data.origin, splits.sizes(), data.report.summary())
    num_classes = len(data.class_names)

    model = create_model(cfg.model.name, num_classes=num_classes, in_chans=cfg.model.in_chans, **cfg.model.kwargs)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    log.info("model %s (%s parameters) on %s, autocast %s", cfg.model.name, f"{count_parameters(model):,}",
             describe_device(device), dtype)

    generator = torch.Generator()
    loader = train_loader(data.images[splits.train], data.labels[splits.train],
                          build_augmentation(cfg.augmentation, 48), cfg.train.batch_size, cfg.data.sampler,
                          num_classes, generator, cfg.data.num_workers)
    val_loader = eval_loader(data.images[splits.val], data.labels[splits.val], cfg.train.eval_batch_size)

    optimizer = build_optimizer(parameter_groups(model, cfg), cfg.optim)
    scheduler, cadence = build_scheduler(optimizer, cfg.sched, cfg.train.epochs, len(loader))
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    weights = None
    if cfg.loss.class_weights:
        weights = torch.tensor(inverse_frequency_weights(data.labels[splits.train], num_classes),
                               dtype=torch.float32, device=device)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.loss.label_smoothing)

    start_epoch, best_acc, since_best = 1, -1.0, 0
    last_path = run_dir / "last.pt"
    if last_path.is_file():
        ckpt = load_checkpoint(last_path, map_location=device)
        model.load_state_dict(ckpt["state_dict"])
        state = ckpt["training_state"]
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, best_acc, since_best = ckpt["epoch"] + 1, state["best_val_acc"], state["epochs_since_best"]
        log.info("resuming from %s at epoch %d (best val acc %.4f)", last_path.name, start_epoch, best_acc)
    truncate_metrics(run_dir, start_epoch - 1)  # rows newer than the checkpoint are redone

    status = read_json(run_dir / "status.json", {}) or {}
    write_status(run_dir, "running", epoch=start_epoch, epochs=cfg.train.epochs, batch=0, batches=len(loader),
                 device=describe_device(device), started_at=status.get("started_at") or utc_now(),
                 error=None, finished_at=None)
    config_dict = cfg.to_dict()
    stopped_early = False
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        # Seeding per epoch makes a resumed run retrace the uninterrupted one exactly.
        epoch_seed = cfg.train.seed * 100_003 + epoch
        seed_everything(epoch_seed)
        generator.manual_seed(epoch_seed)
        lr = optimizer.param_groups[0]["lr"]
        trainable = apply_freeze(model, cfg, epoch)
        if cfg.transfer.freeze_epochs > 0:
            log.info("epoch %d trains %s", epoch, trainable)
        on_batch = _BatchReporter(run_dir, epoch, cfg.train.epochs, progress, len(loader))
        try:
            result = train_one_epoch(model, loader, optimizer, criterion, device, spec, amp_dtype=dtype,
                                     scaler=scaler, grad_clip=cfg.train.grad_clip,
                                     batch_scheduler=scheduler if cadence == "batch" else None,
                                     channels_last=cfg.train.channels_last, on_batch=on_batch)
        finally:
            on_batch.close()
        val_loss, val_acc, probs, labels = evaluate(model, val_loader, device, spec, amp_dtype=dtype,
                                                    channels_last=cfg.train.channels_last)
        if cadence == "epoch" and scheduler is not None:
            scheduler.step()
        elif cadence == "plateau":
            scheduler.step(val_acc)
        improved = val_acc > best_acc
        best_acc, since_best = (val_acc, 0) if improved else (best_acc, since_best + 1)
        row = {"epoch": epoch, "train_loss": result.loss, "train_acc": result.accuracy, "val_loss": val_loss,
               "val_acc": val_acc, "val_macro_f1": float(f1_score(labels, probs.argmax(1), average="macro",
                                                                   labels=list(range(num_classes)), zero_division=0)),
               "lr": lr, "seconds": round(result.seconds, 3), "images_per_s": round(result.images_per_s, 1),
               "best": improved, "time": utc_now()}
        if hasattr(optimizer, "skipped_steps"):
            row["skipped_steps"] = optimizer.skipped_steps  # KacıFANN: steps skipped on a non-finite loss
        append_metrics(run_dir, row)
        if improved:
            save_checkpoint(run_dir / "best.pt", model, config_dict, data.class_names, spec, epoch, {"val": row})
        state = {"optimizer": optimizer.state_dict(), "best_val_acc": best_acc, "epochs_since_best": since_best,
                 "scheduler": scheduler.state_dict() if scheduler is not None else {},
                 "scaler": scaler.state_dict() if scaler is not None else {}}
        save_checkpoint(last_path, model, config_dict, data.class_names, spec, epoch, {"val": row}, state)
        write_status(run_dir, "running", epoch=epoch, batch=len(loader), best_val_acc=best_acc)
        log.info("epoch %d/%d  train loss %.4f acc %.4f | val loss %.4f acc %.4f%s | lr %.2e | %.1fs %.0f img/s",
                 epoch, cfg.train.epochs, result.loss, result.accuracy, val_loss, val_acc,
                 " *" if improved else "", lr, result.seconds, result.images_per_s)
        if cfg.train.early_stop_patience and since_best >= cfg.train.early_stop_patience:
            log.info("early stop: no better validation accuracy for %d epochs", since_best)
            stopped_early = True
            break

    test_metrics = _final_evaluation(cfg, run_dir, data, splits, device, spec, log)
    write_status(run_dir, "completed", finished_at=utc_now(), best_val_acc=best_acc, stopped_early=stopped_early,
                 test_acc=test_metrics.get("accuracy"))


def _final_evaluation(cfg: RunConfig, run_dir: Path, data, splits, device, spec, log) -> dict:
    """Evaluate best.pt on validation and test; store results in the run folder and in best.pt."""
    best = load_checkpoint(run_dir / "best.pt")
    model = model_from_checkpoint(best).to(device)
    results = {}
    for role, split_name in (("val", "val"), ("test", cfg.data.test_split)):
        index = getattr(splits, role)
        if len(index) == 0:
            log.info("no %s images (%s is not in %s): %s evaluation skipped", role, split_name, data.origin, role)
            continue
        metrics = evaluate_split(model, spec, data, index, split_name, run_dir, "best", best["epoch"], device,
                                 cfg.train.eval_batch_size)
        results[role] = {"split": split_name, "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
        log.info("%s (%s, best epoch %d): accuracy %.4f, macro-F1 %.4f", role, split_name, best["epoch"],
                 metrics["accuracy"], metrics["macro_f1"])
    save_checkpoint(run_dir / "best.pt", model, best["config"], tuple(best["class_names"]), spec, best["epoch"],
                    {**best["metrics"], **results})
    return results.get("test", {})


class _BatchReporter:
    """Per-batch callback: cancel check, throttled status updates, optional tqdm bar."""

    def __init__(self, run_dir: Path, epoch: int, epochs: int, progress: bool, total: int) -> None:
        self.run_dir, self.epoch, self.epochs = run_dir, epoch, epochs
        self.last_write = 0.0
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc=f"epoch {epoch}/{epochs}", leave=False, file=sys.stderr)

    def __call__(self, batch: int, batches: int, loss: float) -> None:
        if (self.run_dir / "CANCEL").exists():
            raise Cancelled("cancel requested")
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.3f}")
        now = time.monotonic()
        if now - self.last_write >= STATUS_EVERY_S or batch == batches:
            self.last_write = now
            write_status(self.run_dir, "running", epoch=self.epoch, epochs=self.epochs, batch=batch,
                         batches=batches, loss=round(loss, 4))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
