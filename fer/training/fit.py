"""Run a training job: everything is built from one RunConfig; a RunRecorder writes the run folder.

`train(cfg)` creates a run and trains it in this process; `train(run_dir=...)` trains an existing
run folder: a queued one (the worker's `fer train --run`) or one resumed from `last.pt` after a
crash or cancel (`fer train --resume`). Each epoch appends metrics, saves `last.pt` (and `best.pt`
when validation accuracy improves) and updates the status; at the end the best checkpoint is
scored on the validation and test splits.
"""
from __future__ import annotations

import random
import signal
import threading
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Dict, Iterator, Optional

import numpy as np
import torch
import torch.nn as nn
from sklearn.metrics import f1_score
from torch.nn.parallel import DistributedDataParallel

from fer.config import RunConfig
from fer.core.device import amp_dtype, describe_device, select_device
from fer.core.files import utc_now
from fer.data import RunData
from fer.inference.blendshapes import KIND as BLENDSHAPE_KIND
from fer.inference.predictor import Predictor
from fer.models import count_parameters, create_model
from fer.runs.checkpoint import checkpoint_payload, load_checkpoint
from fer.runs.leftovers import tidy_run
from fer.runs.store import STARTABLE_STATES, default_runs_dir, read_config
from fer.runs.writer import claim_run, create_run as create_run_folder, own_run, training_lock
from fer.training.distill import consistent_teacher, teacher_targets
from fer.training.distributed import DistContext, close_process_group, init_process_group, launch
from fer.training.evaluate import Evaluation, fit_calibration, score
from fer.training.loops import EpochResult, train_one_epoch, validate
from fer.training.optim import build_optimizer, build_scheduler
from fer.training.recorder import Cancelled, QuietRecorder, Recorder, RunRecorder
from fer.training.transfer import apply_freeze, parameter_groups
from fer.training.validate import CheckedConfig, check_config

CANCEL_CHECK_EVERY = 10  # batches between cancel checks in a multi-process run (each is a collective)


def create_run(checked: CheckedConfig, runs_dir: Optional[Path] = None, **status: Any) -> Path:
    """The run folder of a checked config, as 'queued' (with extra `status` fields); training may start later.

    Warnings from the check (a huge model, an emulated precision) go into the status and the run's log.
    """
    if not isinstance(checked, CheckedConfig):
        raise TypeError("create_run takes the CheckedConfig that check_config returns")
    cfg = checked.config
    return create_run_folder(cfg, Path(runs_dir or cfg.runs_dir or default_runs_dir()),
                             warnings=list(checked.warnings), **status)


@contextmanager
def _sigterm_cancels(recorder) -> Iterator[None]:
    """Turn SIGTERM into a cancel request, seen at the next batch (only possible on the main thread).

    The handler only sets a flag: an exception raised wherever the signal lands (inside torch.save's
    writer, say) can come back re-wrapped as a RuntimeError, and the run would read as failed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        recorder.stop_signal = "SIGTERM"

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


def train(cfg: Optional[RunConfig] = None, run_dir: Optional[Path] = None, progress: bool = False,
          dist_ctx: Optional[DistContext] = None, start_from: Collection[str] = STARTABLE_STATES) -> Path:
    """Train a new run from `cfg`, or the existing run at `run_dir` (queued or resumed); returns its folder.

    The run starts only if it is in one of `start_from` when this process claims it (StateChanged
    otherwise: e.g. cancelled a moment before). A run with `train.gpus` > 1 is launched here as that
    many processes (torchrun's launcher), each of which comes back into this function with its `dist_ctx`.
    """
    if run_dir is None:
        if cfg is None:
            raise ValueError("train() needs a config or a run folder")
        run_dir = create_run(check_config(cfg), launched_from="python")  # not a queue job: its caller owns it
    else:
        run_dir = own_run(Path(run_dir))  # never a link or a folder fer did not write
        cfg = read_config(run_dir)
    # One process trains a run at a time; ranks of a multi-process run share their launcher's lock.
    with training_lock(run_dir) if dist_ctx is None else nullcontext():
        if dist_ctx is None:
            claim_run(run_dir, start_from)
            tidy_run(run_dir, owner=True)  # a killed earlier attempt's temp files: removed, or recovered
        if dist_ctx is None and cfg.train.gpus > 1:
            launch(run_dir, cfg.train.gpus)
            return run_dir
        _train_here(cfg, run_dir, progress, dist_ctx or DistContext())
    return run_dir


def _train_here(cfg: RunConfig, run_dir: Path, progress: bool, ctx: DistContext) -> None:
    recorder = RunRecorder(run_dir, cfg.train.epochs, progress) if ctx.main else QuietRecorder(run_dir)
    with recorder:
        try:
            with _sigterm_cancels(recorder):
                if cfg.model.name == BLENDSHAPE_KIND:  # MediaPipe features and a linear classifier
                    from fer.training.blendshape_run import fit_blendshape_run

                    fit_blendshape_run(cfg, recorder)
                elif cfg.model.name == "ensemble" and cfg.model.kwargs.get("runs"):  # trained runs, assembled
                    from fer.training.ensemble import fit_ensemble_run

                    fit_ensemble_run(cfg, recorder)
                else:
                    _fit(cfg, recorder, ctx)
        except (Cancelled, KeyboardInterrupt) as e:
            recorder.cancelled(str(e) or "interrupt")
        except Exception as e:
            recorder.failed(e)
            raise
        finally:
            close_process_group()


@dataclass
class _Job:
    """Everything one run trains with, built from its config."""

    cfg: RunConfig
    ctx: DistContext
    run_data: RunData
    device: torch.device
    dtype: Optional[torch.dtype]
    module: nn.Module  # the model itself: checkpoints, validation
    model: nn.Module  # what trains: the module, or DistributedDataParallel around it
    loader: Any
    val_loader: Any
    generator: torch.Generator
    accumulate: int
    optimizer: torch.optim.Optimizer
    scheduler: Any
    cadence: str
    scaler: Optional[torch.amp.GradScaler]
    criterion: nn.Module

    def payload(self, epoch: int, metrics: Dict[str, Any], state: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """A self-describing checkpoint of the model now."""
        return checkpoint_payload(self.module, self.cfg.to_dict(), self.run_data.class_names,
                                  self.cfg.preprocessing(), epoch, metrics, state)


@dataclass
class _Best:
    """Model selection so far: the best validation accuracy and the epochs since it."""

    val_acc: float = -1.0
    since: int = 0

    def update(self, val_acc: float) -> bool:
        """Take one epoch's accuracy; whether it is a new best."""
        improved = val_acc > self.val_acc
        self.val_acc, self.since = (val_acc, 0) if improved else (self.val_acc, self.since + 1)
        return improved


def _build_model(cfg: RunConfig, ctx: DistContext, device: torch.device, num_classes: int) -> nn.Module:
    module = create_model(cfg.model.name, num_classes=num_classes, in_chans=cfg.model.in_chans, **cfg.model.kwargs)
    if ctx.active and cfg.train.sync_bn:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
    return module.to(device, memory_format=memory_format)


def _build(cfg: RunConfig, recorder: Recorder, ctx: DistContext) -> _Job:
    device = ctx.device(select_device(cfg.train.device))
    init_process_group(ctx, device)
    dtype = amp_dtype(cfg.train.amp, device)
    run_data = RunData.from_config(cfg)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels once
    recorder.log.info("data %s: %s; load report: %s", run_data.data.origin, run_data.splits.sizes(),
                      run_data.data.report.summary())
    if cfg.distill.teacher and not cfg.distill.consistent:
        _distil(cfg, run_data, recorder)
    module = _build_model(cfg, ctx, device, run_data.num_classes)
    recorder.log.info("model %s (%s parameters) on %s, autocast %s%s", cfg.model.name,
                      f"{count_parameters(module):,}", describe_device(device), dtype,
                      f", {ctx.world} processes (DistributedDataParallel)" if ctx.active else "")
    generator = torch.Generator()
    loader, source = run_data.train_batches(generator, device, ctx.rank, ctx.world)
    if cfg.distill.teacher and cfg.distill.consistent:
        loader = consistent_teacher(cfg, run_data, loader, device, dtype)
        source += f"; targets from {', '.join(cfg.distill.teacher)} on each augmented batch (tta {cfg.distill.tta})"
    recorder.log.info("training batches: %s", source)
    per_step = cfg.train.batch_size * ctx.world
    accumulate = max(1, cfg.train.global_batch // per_step) if cfg.train.global_batch else 1
    optimizer = build_optimizer(parameter_groups(module, cfg), cfg.optim)
    scheduler, cadence = build_scheduler(optimizer, cfg.sched, cfg.train.epochs, -(-len(loader) // accumulate))
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    weights = run_data.class_weights()
    if weights is not None:
        weights = torch.tensor(weights, dtype=torch.float32, device=device)
    criterion = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.loss.label_smoothing)
    return _Job(cfg, ctx, run_data, device, dtype, module, module, loader, run_data.val_loader(), generator,
                accumulate, optimizer, scheduler, cadence, scaler, criterion)


def _distil(cfg: RunConfig, run_data: RunData, recorder: Recorder) -> None:
    """Replace the training targets by the teacher's (fer.training.distill), saying how good the teacher is."""
    taught = teacher_targets(cfg, run_data, threads=torch.get_num_threads())
    run_data.teacher_targets = taught["targets"]
    val = taught["val_accuracy"]
    recorder.log.info("distilling from %s (%s, tta %s): teacher val acc %s, agrees with %.1f%% of training labels; "
                      "targets %.2f teacher + %.2f label, teacher temperature %.2f", taught["teacher"],
                      taught["backend"], cfg.distill.tta, "n/a" if val is None else f"{val:.4f}",
                      100 * taught["train_agreement"], cfg.distill.weight, 1 - cfg.distill.weight,
                      cfg.distill.temperature)


def _restore(job: _Job, last_path: Path, recorder: Recorder) -> tuple:
    """(first epoch, best so far): from last.pt when resuming, else a fresh start."""
    if not last_path.is_file():
        return 1, _Best()
    ckpt = load_checkpoint(last_path, map_location=job.device)
    job.module.load_state_dict(ckpt["state_dict"])
    state = ckpt["training_state"]
    job.optimizer.load_state_dict(state["optimizer"])
    if job.scheduler is not None and state.get("scheduler"):
        job.scheduler.load_state_dict(state["scheduler"])
    if job.scaler is not None and state.get("scaler"):
        job.scaler.load_state_dict(state["scaler"])
    recorder.log.info("resuming from %s at epoch %d (best val acc %.4f)", last_path.name, ckpt["epoch"] + 1,
                      state["best_val_acc"])
    return ckpt["epoch"] + 1, _Best(state["best_val_acc"], state["epochs_since_best"])


def _validate(job: _Job) -> tuple:
    """(val loss, val accuracy, val macro-F1), computed by rank 0 on the whole validation split and shared."""
    loss = acc = f1 = 0.0
    if job.ctx.main:  # the plain module: DistributedDataParallel's forward is a collective
        loss, acc, probs, labels = validate(job.module, job.val_loader, job.device, job.cfg.preprocessing(),
                                            amp_dtype=job.dtype, channels_last=job.cfg.train.channels_last)
        f1 = float(f1_score(labels, probs.argmax(1), average="macro", labels=list(range(job.run_data.num_classes)),
                            zero_division=0))
    return tuple(job.ctx.from_main([loss, acc, f1]))  # every rank steps schedulers and stops on the same numbers


def _fit(cfg: RunConfig, recorder: Recorder, ctx: DistContext) -> None:
    seed_everything(cfg.train.seed)
    job = _build(cfg, recorder, ctx)
    start_epoch, best = _restore(job, recorder.run_dir / "last.pt", recorder)
    if ctx.active:  # wrapped after loading, so every rank starts from the same (unwrapped) weights
        job.model = DistributedDataParallel(job.module, device_ids=[job.device.index] if job.device.type == "cuda"
                                            else None)
    if cfg.train.compile:  # the training step only: checkpoints and validation keep the plain module
        job.model = torch.compile(job.model)
        recorder.log.info("training step compiled with torch.compile (the first batches pay the compilation)")
    recorder.started(start_epoch, len(job.loader),
                     (f"{ctx.world} × " if ctx.active else "") + describe_device(job.device))
    stopped_early = False
    for epoch in range(start_epoch, cfg.train.epochs + 1):
        lr = job.optimizer.param_groups[0]["lr"]  # the rate the epoch starts with (its metrics row says it)
        result = _train_epoch(job, recorder, epoch)
        _end_of_epoch(job, recorder, epoch, result, best, lr)
        if cfg.train.early_stop_patience and best.since >= cfg.train.early_stop_patience:
            recorder.log.info("early stop: no better validation accuracy for %d epochs", best.since)
            stopped_early = True
            break
    ctx.barrier()  # every rank has finished training before rank 0 scores the best checkpoint
    if recorder.stop_signal and ctx.main:
        raise Cancelled(recorder.stop_signal)
    if ctx.main:
        recorder.evaluating()
        test = _final_evaluation(job, recorder)
        recorder.completed(best_val_acc=best.val_acc, stopped_early=stopped_early, test_acc=test.get("accuracy"))


def _train_epoch(job: _Job, recorder: Recorder, epoch: int) -> EpochResult:
    """One epoch's training pass, stopping at the next batch when a cancel arrives."""
    cfg, ctx = job.cfg, job.ctx
    # Seeding per epoch makes a resumed run retrace the uninterrupted one exactly.
    epoch_seed = cfg.train.seed * 100_003 + epoch
    seed_everything(epoch_seed)
    job.generator.manual_seed(epoch_seed)
    trainable = apply_freeze(job.module, cfg, epoch)
    if cfg.transfer.freeze_epochs > 0:
        recorder.log.info("epoch %d trains %s", epoch, trainable)
    with recorder.epoch(epoch, len(job.loader), cfg.train.batch_size * ctx.world) as report:
        def on_batch(batch: int, batches: int, loss: float) -> None:
            # Every process stops at the same batch: a cancel seen by rank 0 is agreed on by all.
            if (not ctx.active or batch % CANCEL_CHECK_EVERY == 0 or batch == batches) and \
                    ctx.any(recorder.cancel_requested()):
                raise Cancelled(recorder.stop_signal or "cancel requested")
            report(batch, batches, loss)

        result = train_one_epoch(job.model, job.loader, job.optimizer, job.criterion, job.device,
                                 cfg.preprocessing(), amp_dtype=job.dtype, scaler=job.scaler,
                                 grad_clip=cfg.train.grad_clip, channels_last=cfg.train.channels_last,
                                 batch_scheduler=job.scheduler if job.cadence == "batch" else None,
                                 accumulate=job.accumulate, nonfinite=cfg.train.nonfinite, on_batch=on_batch)
    if recorder.stop_signal and not ctx.active:  # a SIGTERM after the last batch's check
        raise Cancelled(recorder.stop_signal)
    return result


def _end_of_epoch(job: _Job, recorder: Recorder, epoch: int, result: EpochResult, best: _Best, lr: float) -> None:
    """Validate, step the schedule, and record the epoch: its metrics row and checkpoints."""
    recorder.validating(epoch)
    loss_sum, correct, images = job.ctx.sum([result.loss * result.images, result.accuracy * result.images,
                                             result.images])  # the epoch over every process's shard
    val_loss, val_acc, val_f1 = _validate(job)
    if job.cadence == "epoch" and job.scheduler is not None:
        job.scheduler.step()
    elif job.cadence == "plateau":
        job.scheduler.step(val_acc)
    improved = best.update(val_acc)
    row = {"epoch": epoch, "train_loss": loss_sum / images, "train_acc": correct / images, "val_loss": val_loss,
           "val_acc": val_acc, "val_macro_f1": val_f1, "lr": lr, "seconds": round(result.seconds, 3),
           "images_per_s": round(images / max(result.seconds, 1e-9), 1), "best": improved, "time": utc_now()}
    if result.nonfinite_batches:
        row["nonfinite_batches"] = result.nonfinite_batches
        recorder.nonfinite(epoch, result.nonfinite_batches, len(job.loader))
    if hasattr(job.optimizer, "skipped_steps"):
        row["skipped_steps"] = job.optimizer.skipped_steps  # KacıFANN: steps skipped on a non-finite loss
    recorder.epoch_done(row, len(job.loader), best.val_acc)
    if improved:
        recorder.checkpoint("best.pt", job.payload(epoch, {"val": row}))
    state = {"optimizer": job.optimizer.state_dict(), "best_val_acc": best.val_acc, "epochs_since_best": best.since,
             "scheduler": job.scheduler.state_dict() if job.scheduler is not None else {},
             "scaler": job.scaler.state_dict() if job.scaler is not None else {}}
    recorder.checkpoint("last.pt", job.payload(epoch, {"val": row}, state))


def _final_evaluation(job: _Job, recorder: Recorder) -> Dict[str, Any]:
    """Score best.pt on validation and test (as `fer eval` would); the results also go into best.pt."""
    best = load_checkpoint(recorder.run_dir / "best.pt")
    predictor = Predictor.from_loaded(best, name=recorder.run_dir.name, checkpoint="best", device=job.device,
                                      batch_size=job.cfg.train.eval_batch_size)
    data, splits = job.run_data.data, job.run_data.splits
    results: Dict[str, Any] = {}
    calibration: Dict[str, Any] = {}
    scored: Dict[str, Evaluation] = {}
    if len(splits.val):  # temperature scaling, fitted on validation (never on a test split)
        calibration, scored["val"] = fit_calibration(predictor, data, splits.val)
        recorder.log.info("calibration: temperatures fitted on validation per TTA mode: %s",
                          ", ".join(f"{m} {t:.3f}" for m, t in calibration["temperatures"].items()))
    for role, split_name in (("val", "val"), ("test", job.cfg.data.test_split)):
        index = getattr(splits, role)
        if len(index) == 0:
            recorder.log.info("no %s images (%s is not in %s): %s evaluation skipped", role, split_name,
                              data.origin, role)
            continue
        result = scored.get(role) or score(predictor, data, index, split_name)
        recorder.evaluation(role, result.metrics, result.predictions)
        results[role] = {"split": split_name, "accuracy": result.metrics["accuracy"],
                         "macro_f1": result.metrics["macro_f1"], "ece": result.metrics["ece"]}
    recorder.checkpoint("best.pt", {**best, "metrics": {**best["metrics"], **results},
                                    **({"calibration": calibration} if calibration else {})})
    return results.get("test", {})
