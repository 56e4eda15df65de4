"""What a training run tells its folder, as callbacks (Lightning's Callback is the model).

The training loop never touches a file: it calls a `Recorder`. `RunRecorder` writes through the one
run writer (status, metrics, checkpoints, evaluations, the log), checks for cancel requests and
draws the optional progress bar; `QuietRecorder`, for ranks other than 0 of a multi-process run,
records nothing. Both implement every method of the `Recorder` protocol (a test checks it).
"""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterator, Mapping, Optional, Protocol

from fer.core.files import is_disk_full, utc_now
from fer.runs import writer as run_writer
from fer.runs.store import read_config, read_status
from fer.training.tracking import Trackers

STATUS_EVERY_S = 1.0  # throttle status.json (and batches.jsonl) writes during an epoch
LOSS_SMOOTHING = 0.9  # exponential moving average of the batch loss for the live curve


# The epoch log line's numbers and their formats (a feature run has no loss or learning rate: "–").
_LOGGED = (("train_loss", ".4f"), ("train_acc", ".4f"), ("val_loss", ".4f"), ("val_acc", ".4f"), ("lr", ".2e"),
           ("seconds", ".1f"), ("images_per_s", ".0f"))


def _number(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else "–"


class Cancelled(Exception):
    """Raised inside the loop when a cancel was requested (CANCEL file, SIGTERM or Ctrl-C)."""


class Recorder(Protocol):
    """What a training loop may tell its run, and ask of it."""

    run_dir: Path
    log: logging.Logger
    stop_signal: Optional[str]  # set by a signal handler; the loop stops at its next check

    def __enter__(self) -> "Recorder": ...

    def __exit__(self, *exc: Any) -> None: ...

    def started(self, start_epoch: int, batches: int, device: str) -> None:
        """The loop is about to run epoch `start_epoch` (1, or later when resuming)."""

    def epoch(self, epoch: int, batches: int, batch_size: int) -> ContextManager[Callable[[int, int, float], None]]:
        """A per-batch callback for one epoch."""

    def validating(self, epoch: int) -> None:
        """The epoch's training pass is done; the validation pass runs."""

    def epoch_done(self, row: Mapping[str, Any], batches: int, best_val_acc: float) -> None:
        """One finished epoch's metrics row."""

    def nonfinite(self, epoch: int, skipped: int, batches: int) -> None:
        """Batches of the epoch were skipped for a NaN/inf loss."""

    def checkpoint(self, name: str, payload: Dict[str, Any]) -> None:
        """Save a checkpoint payload (best.pt, last.pt)."""

    def fitted(self, arrays: Mapping[str, Mapping[str, Any]], documents: Mapping[str, Any]) -> None:
        """Save a fitted non-network classifier: .npz arrays and JSON documents, by file name."""

    def evaluating(self) -> None:
        """Training is done; the best model is being scored on validation and test."""

    def evaluation(self, role: str, metrics: Dict[str, Any], predictions: Any) -> None:
        """A scored split of the final evaluation (role: val or test)."""

    def completed(self, **fields: Any) -> None:
        """Training and the final evaluation are done."""

    def cancelled(self, reason: str) -> None:
        """The run stopped on request (or a sweep pruned it)."""

    def failed(self, error: BaseException) -> None:
        """The run raised."""

    def cancel_requested(self) -> bool:
        """Whether someone asked the run to stop."""


class RunRecorder:
    """The training loop's only link to its run folder."""

    def __init__(self, run_dir: Path, epochs: int, progress: bool = False) -> None:
        self.run_dir, self.epochs, self.progress = Path(run_dir), epochs, progress
        self.stop_signal: Optional[str] = None  # set by a signal handler; the loop stops at its next check
        self.log: logging.Logger = run_writer.open_log(self.run_dir, echo=progress)
        run_writer.reserve_space(self.run_dir)
        self.trackers = Trackers([], self.log)

    def close(self) -> None:
        """Release the log file and any tracker; drop a cancel request that arrived too late to matter."""
        if self.trackers.active:  # the run ended without a final state (e.g. killed mid-epoch)
            self.trackers.finish(read_status(self.run_dir).get("state", "failed"))
        run_writer.clear_cancel(self.run_dir)
        run_writer.close_log(self.log)
        run_writer.release_space(self.run_dir)

    def __enter__(self) -> "RunRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def started(self, start_epoch: int, batches: int, device: str) -> None:
        """The loop is about to run epoch `start_epoch` (1, or later when resuming)."""
        status = read_status(self.run_dir)
        for warning in status.get("warnings") or ():  # found when the run was created (fer.training.validate)
            self.log.warning("warning: %s", warning)
        first_start = status.get("started_at")
        self.trackers = Trackers.start(read_config(self.run_dir), self.run_dir, self.log)
        run_writer.truncate_metrics(self.run_dir, start_epoch - 1)  # rows newer than the checkpoint are redone
        run_writer.write_status(self.run_dir, "running", epoch=start_epoch, epochs=self.epochs, batch=0,
                                batches=batches, device=device, started_at=first_start or utc_now(),
                                error=None, finished_at=None, phase="training", waiting=None)

    def validating(self, epoch: int) -> None:
        """The epoch's training pass is done; the validation pass runs."""
        run_writer.write_status(self.run_dir, "running", epoch=epoch, phase="validating")

    def evaluating(self) -> None:
        """Training is done; the best checkpoint is being scored on validation and test (it takes a while)."""
        self.log.info("evaluating the best checkpoint on the validation and test splits")
        run_writer.write_status(self.run_dir, "running", phase="evaluating")

    def completed(self, **fields: Any) -> None:
        """Training and the final evaluation are done."""
        run_writer.write_status(self.run_dir, "completed", finished_at=utc_now(), phase=None, **fields)
        self.trackers.finish("completed", [self.run_dir / "best.pt", self.run_dir / "config.json"])

    def cancelled(self, reason: str) -> None:
        """The run stopped on request (or a sweep pruned it); `fer train --resume` continues it."""
        pruned = "" if self.stop_signal else run_writer.prune_reason(self.run_dir)
        state = "pruned" if pruned else "cancelled"
        self.log.info("%s (%s); resume with: fer train --resume %s", state, pruned or reason, self.run_dir)
        run_writer.write_status(self.run_dir, state, finished_at=utc_now(), **({"pruned": pruned} if pruned else {}))
        self.trackers.finish(state)

    def failed(self, error: BaseException) -> None:
        """The run raised: the traceback goes to the log, the message to the status."""
        message = f"{type(error).__name__}: {error}"
        if is_disk_full(error):
            run_writer.release_space(self.run_dir)  # room for these last lines
            message = (f"no space left on device in {self.run_dir.parent} ({error}); the last finished epoch's "
                       f"checkpoints are intact: free space, then fer train --resume {self.run_dir.name}")
            self.log.error("training failed: %s", message)
        else:
            self.log.exception("training failed")
        run_writer.write_status(self.run_dir, "failed", error=message, finished_at=utc_now())
        self.trackers.finish("failed")

    # --- per epoch and per batch -------------------------------------------------------------------------------
    def cancel_requested(self) -> bool:
        """Whether someone asked the run to stop: a CANCEL file (`fer cancel`, the dashboard) or a SIGTERM."""
        return bool(self.stop_signal) or (self.run_dir / run_writer.CANCEL_FILE).exists()

    @contextmanager
    def epoch(self, epoch: int, batches: int, batch_size: int) -> Iterator[Callable[[int, int, float], None]]:
        """A per-batch callback for one epoch: throttled status and loss curve, optional tqdm bar."""
        bar = None
        if self.progress:
            from tqdm import tqdm  # only when drawing a bar

            bar = tqdm(total=batches, desc=f"epoch {epoch}/{self.epochs}", leave=False, file=sys.stderr)
        started, last_write, smoothed = time.time(), 0.0, None
        # The ETA before the first epoch ends comes from this start time and the batches done since.
        run_writer.write_status(self.run_dir, "running", epoch=epoch, batch=0, batches=batches, phase="training",
                                epoch_started=started)

        def on_batch(batch: int, total: int, loss: float) -> None:
            nonlocal last_write, smoothed
            smoothed = loss if smoothed is None else LOSS_SMOOTHING * smoothed + (1 - LOSS_SMOOTHING) * loss
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}")
            now = time.monotonic()
            if now - last_write >= STATUS_EVERY_S or batch == total:
                last_write = now
                speed = batch * batch_size / max(1e-6, time.time() - started)
                run_writer.write_status(self.run_dir, "running", epoch=epoch, epochs=self.epochs, batch=batch,
                                        batches=total, loss=round(loss, 4), images_per_s=round(speed, 1))
                run_writer.append_batch_loss(self.run_dir, {"epoch": epoch, "batch": batch, "batches": total,
                                                            "loss": round(smoothed, 5)})

        try:
            yield on_batch
        finally:
            if bar is not None:
                bar.close()

    def epoch_done(self, row: Mapping[str, Any], batches: int, best_val_acc: float) -> None:
        """One finished epoch: its metrics row, the status and a log line."""
        run_writer.append_metrics(self.run_dir, row)
        self.trackers.log_epoch(row)
        run_writer.write_status(self.run_dir, "running", epoch=row["epoch"], batch=batches, best_val_acc=best_val_acc)
        self.log.info("epoch %d/%d  train loss %s acc %s | val loss %s acc %s%s | lr %s | %ss %s img/s",
                      row["epoch"], self.epochs, *(_number(row.get(k), f) for k, f in _LOGGED[:4]),
                      " *" if row.get("best") else "", *(_number(row.get(k), f) for k, f in _LOGGED[4:]))

    def nonfinite(self, epoch: int, skipped: int, batches: int) -> None:
        """Batches of the epoch were skipped for a NaN/inf loss: a warning in the log and the status."""
        warning = f"epoch {epoch}: {skipped} of {batches} batches had a non-finite loss and were skipped"
        self.log.warning("warning: %s", warning)
        warnings = [w for w in read_status(self.run_dir).get("warnings") or [] if not w.startswith(f"epoch {epoch}:")]
        run_writer.write_status(self.run_dir, "running", warnings=[*warnings, warning])

    def checkpoint(self, name: str, payload: Dict[str, Any]) -> None:
        """Save a checkpoint payload (best.pt, last.pt) atomically."""
        run_writer.save_checkpoint(self.run_dir, name, payload)

    def fitted(self, arrays: Mapping[str, Mapping[str, Any]], documents: Mapping[str, Any]) -> None:
        """Save a fitted non-network classifier (e.g. the blendshape run's): .npz arrays and JSON, by file name."""
        for name, content in arrays.items():
            run_writer.save_arrays(self.run_dir, name, content)
        for name, content in documents.items():
            run_writer.write_json(self.run_dir / name, content)

    def evaluation(self, role: str, metrics: Dict[str, Any], predictions: Any) -> None:
        """A scored split of the final evaluation (role: val or test)."""
        run_writer.record_evaluation(self.run_dir, metrics, predictions)
        self.trackers.log_evaluation(role, metrics)
        self.log.info("%s (%s, %s epoch %d): accuracy %.4f, macro-F1 %.4f", role, metrics["split"],
                      metrics.get("checkpoint", "best"), metrics.get("epoch", 0), metrics["accuracy"],
                      metrics["macro_f1"])


class QuietRecorder:
    """The recorder of ranks other than 0 in a multi-process run: they train, rank 0 writes the folder."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.stop_signal: Optional[str] = None
        self.log = logging.getLogger(f"fer.training.rank.{self.run_dir.name}")
        self.log.addHandler(logging.NullHandler())
        self.log.propagate = False

    def __enter__(self) -> "QuietRecorder":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def cancel_requested(self) -> bool:
        """Only rank 0 reads the request; the ranks agree on it together."""
        return False

    @contextmanager
    def epoch(self, epoch: int, batches: int, batch_size: int) -> Iterator[Callable[[int, int, float], None]]:
        """A per-batch callback that reports nothing."""
        yield lambda batch, total, loss: None

    # Rank 0 records all of these; the other ranks only train.
    def started(self, start_epoch: int, batches: int, device: str) -> None:
        """Rank 0 records this."""

    def validating(self, epoch: int) -> None:
        """Rank 0 records this."""

    def epoch_done(self, row: Mapping[str, Any], batches: int, best_val_acc: float) -> None:
        """Rank 0 records this."""

    def nonfinite(self, epoch: int, skipped: int, batches: int) -> None:
        """Rank 0 records this."""

    def checkpoint(self, name: str, payload: Dict[str, Any]) -> None:
        """Rank 0 records this."""

    def fitted(self, arrays: Mapping[str, Mapping[str, Any]], documents: Mapping[str, Any]) -> None:
        """Rank 0 records this."""

    def evaluating(self) -> None:
        """Rank 0 records this."""

    def evaluation(self, role: str, metrics: Dict[str, Any], predictions: Any) -> None:
        """Rank 0 records this."""

    def completed(self, **fields: Any) -> None:
        """Rank 0 records this."""

    def cancelled(self, reason: str) -> None:
        """Rank 0 records this."""

    def failed(self, error: BaseException) -> None:
        """The exception goes up to torchrun's error file (fer.training.rank's @record); rank 0 is told by the launcher."""
