"""Reading run folders: one folder per run, the contract between training and every viewer.

    checkpoints/<run_id>/
        config.json        the resolved RunConfig
        status.json        queued | running (epoch/batch progress) | completed | failed | cancelled
        metrics.jsonl      one JSON row per finished epoch, appended as training goes
        train.log          the log
        last.pt, best.pt   checkpoints (latest epoch; best validation accuracy)
        eval_<split>.json  accuracy, macro-F1, per-class scores, confusion matrix
        predictions_<split>.csv   per-image true label, prediction and probabilities
        CANCEL             present when a cancel was requested

Every write goes through `fer.runs.writer`; this module only reads (status, metrics, progress, the
log's tail, the leaderboard). The model shipped in the package is a run folder too (`SHIPPED_RUN_DIR`).
"""
from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from fer.config import RunConfig, flatten, from_dict
from fer.core.constants import file_safe_split
from fer.core.files import cache_dir, checkpoint_file_problem, pid_alive, read_json
from fer.runs.identity import is_fer_run, run_identity
from fer.runs.rowcache import BOARDS, ROWS

if TYPE_CHECKING:  # pandas loads with the first table: `fer predict` and `--help` never need it
    import pandas as pd

# pruned: a sweep stopped the trial early for its poor validation accuracy (fer.jobs.sweeps).
STATES = ("queued", "running", "completed", "failed", "cancelled", "interrupted", "pruned")
FINISHED_STATES = ("completed", "failed", "cancelled", "interrupted", "pruned")
RESUMABLE_STATES = ("cancelled", "interrupted", "failed", "pruned")  # continue from last.pt
STARTABLE_STATES = ("queued",) + RESUMABLE_STATES  # what a trainer may claim
# The model that ships inside the package: an ordinary run folder (see fer.runs.release).
SHIPPED_RUN_DIR = Path(__file__).parent / "shipped"


def shipped_evaluations_dir() -> Path:
    """Where evaluations of the shipped model go: the installed package is never written to."""
    return cache_dir() / "default_run"


def board_id(run_dir: Path) -> str:
    """The run id the leaderboard shows for a run folder ("default" for the shipped model, else its folder name)."""
    return "default" if Path(run_dir).resolve() == SHIPPED_RUN_DIR.resolve() else Path(run_dir).name


def inside_package(path: Path) -> bool:
    """Whether `path` lies inside the installed fer package (read-only to fer at run time)."""
    return Path(path).resolve().is_relative_to(Path(__file__).parents[1].resolve())


def evaluation_dir(run_dir: Path) -> Path:
    """The folder a run's new evaluations are written to: the run folder, or for the shipped model the cache."""
    return shipped_evaluations_dir() if inside_package(run_dir) else Path(run_dir)


def evaluation_file(run_dir: Path, name: str) -> Path:
    """A run's evaluation file (eval_*.json, predictions_*.csv): the newest written, else the shipped one."""
    written = evaluation_dir(run_dir) / name
    return written if written.is_file() else Path(run_dir) / name


def default_runs_dir() -> Path:
    """Where your runs live: `FER_RUNS_DIR` when set, else `checkpoints/` in the working directory."""
    return Path(os.environ.get("FER_RUNS_DIR") or "checkpoints")


def read_status(run_dir: Path) -> Dict[str, Any]:
    """status.json; a 'running' run whose process died on this host reads as 'interrupted'."""
    status = read_json(Path(run_dir) / "status.json", {})
    status = status if isinstance(status, dict) else {}
    if status.get("state") == "running" and status.get("host") == socket.gethostname() \
            and status.get("pid") and not pid_alive(int(status["pid"])):
        status["state"] = "interrupted"
    return status


def status_int(status: Dict[str, Any], key: str) -> int:
    """A number in a status (priority, queue time, resume count); a hand-edited or damaged value counts as 0."""
    try:
        return int(status.get(key) or 0)
    except (TypeError, ValueError):
        return 0


def run_folders(root: Path) -> List[Path]:
    """fer's own run folders in `root` (never a link, never a foreign folder): the runs the queue and its worker see."""
    # Hidden names are fer's own bookkeeping (.trash, a run still being created as .new-…), never runs.
    return [p for p in Path(root).glob("*") if not p.name.startswith(".") and is_fer_run(p)] \
        if Path(root).is_dir() else []


def read_jsonl(path: Path) -> List[Dict[str, Any]]:
    """The JSON lines of a file as dicts (empty when missing); a torn or foreign line is ignored."""
    return _read_jsonl_counted(path)[0]


def _read_jsonl_counted(path: Path) -> tuple:
    """(the JSON lines that are dicts, how many non-blank lines were not), in one read."""
    rows: List[Dict[str, Any]] = []
    bad = 0
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return rows, bad
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            bad += bool(line.strip())
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    return rows, bad


# Files whose presence makes a folder in the runs folder a run, even a broken one.
RUN_FILES = ("config.json", "status.json", "metrics.jsonl", "best.pt", "last.pt")


def is_run_folder(path: Path) -> bool:
    """Whether `path` is a run folder (whole or broken): a real folder holding one of a run's files."""
    return path.is_dir() and not path.is_symlink() and not path.name.startswith(".") \
        and any((path / name).is_file() for name in RUN_FILES)


checkpoint_problem = checkpoint_file_problem  # the leaderboard's cheap look at best.pt / last.pt


def run_problems(run_dir: Path) -> List[str]:
    """What is wrong with a run folder's files (empty when nothing is): the leaderboard shows it."""
    run_dir, problems = Path(run_dir), []
    for name, default in (("config.json", None), ("status.json", None)):
        if not (run_dir / name).is_file():
            problems.append(f"no {name}")
        elif not isinstance(read_json(run_dir / name, default), dict):
            problems.append(f"{name} is unreadable")
    bad = _read_jsonl_counted(run_dir / "metrics.jsonl")[1]
    if bad:
        problems.append(f"metrics.jsonl has {bad} unreadable line{'s' if bad > 1 else ''}")
    for name in ("best.pt", "last.pt"):
        if (problem := checkpoint_problem(run_dir / name)) is not None:
            problems.append(problem)
    return problems


def read_metric_rows(run_dir: Path) -> List[Dict[str, Any]]:
    """Per-epoch metrics as dicts (empty when none yet)."""
    return read_jsonl(Path(run_dir) / "metrics.jsonl")


def read_batch_losses(run_dir: Path) -> pd.DataFrame:
    """The smoothed training loss during epochs: columns epoch, batch, batches, progress (in epochs), loss."""
    import pandas as pd

    df = pd.DataFrame(read_jsonl(Path(run_dir) / "batches.jsonl"))
    if df.empty:
        return pd.DataFrame(columns=["epoch", "batch", "batches", "progress", "loss"])
    df["progress"] = df["epoch"] - 1 + df["batch"] / df["batches"]
    return df


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """Per-epoch metrics as a DataFrame (empty when none yet)."""
    import pandas as pd

    return pd.DataFrame(read_metric_rows(run_dir))


def read_config(run_dir: Path) -> RunConfig:
    """The RunConfig saved in a run folder."""
    return from_dict(RunConfig, read_json(Path(run_dir) / "config.json"))


@dataclass
class Progress:
    """Where a run stands: phase, epoch and batch, throughput, and the estimated time left."""

    state: str
    phase: str  # training, validating (after each epoch) or evaluating (the final test), while running
    epoch: int
    epochs: int
    batch: int
    batches: int
    images_per_s: Optional[float]
    eta_s: Optional[float]  # from finished epochs, or from the current epoch's batches before the first ends

    @property
    def epoch_fraction(self) -> float:
        """Share of the run's epochs already finished."""
        return min(1.0, max(0, self.epoch - 1) / max(1, self.epochs))

    @property
    def batch_fraction(self) -> float:
        """Share of the current epoch's batches done."""
        return min(1.0, self.batch / max(1, self.batches))


def run_progress(run_dir: Path, now: Optional[float] = None) -> Progress:
    """The run's progress from status.json, its finished epochs' timings or, before the first epoch
    ends, the pace of the current epoch's batches."""
    status = read_status(run_dir)
    metrics = read_metric_rows(run_dir)
    epochs, epoch = int(status.get("epochs") or 1), int(status.get("epoch") or 1)
    batches, batch = int(status.get("batches") or 1), int(status.get("batch") or 0)
    left_in_epochs = epochs - epoch + 1 - batch / max(1, batches)
    seconds = [m["seconds"] for m in metrics if isinstance(m.get("seconds"), (int, float))]
    eta, speed = None, metrics[-1].get("images_per_s") if metrics else None
    if seconds:
        eta = max(0.0, sum(seconds) / len(seconds) * left_in_epochs)
    elif batch > 0 and status.get("epoch_started"):
        elapsed = (now or time.time()) - float(status["epoch_started"])
        eta = max(0.0, elapsed / batch * batches * left_in_epochs)
        speed = status.get("images_per_s")
    return Progress(status.get("state", "unknown"), status.get("phase") or "training", epoch, epochs, batch, batches,
                    speed, eta)


def log_tail(run_dir: Path, lines: int = 8, max_bytes: int = 16_384) -> str:
    """The last `lines` lines of train.log (reading only its end), or "" when there is none."""
    path = Path(run_dir) / "train.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - max_bytes))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(tail.splitlines()[-lines:])


MAX_REF_CHARS = 255  # a file name's limit on Linux, macOS and Windows


def resolve_run(ref: str | Path, runs_dir: Optional[Path] = None) -> Path:
    """A run folder from a path, a run id, or a unique prefix/suffix of one.

    A path is taken only when it is a run folder (it holds config.json); anything else is looked up
    by name inside the runs folder, so `../../etc`, NUL bytes or a 10,000-character name never reach
    a path outside it.
    """
    text = str(ref)
    if not text or "\0" in text:
        raise ValueError(f"not a run reference: {text[:60]!r}{'…' if len(text) > 60 else ''}")
    if len(text) > 4096:
        raise FileNotFoundError(f"no run {text[:60]!r}… ({len(text):,} characters)")
    path = Path(text)
    if (path / "config.json").is_file():
        return path
    if text == "default" and (SHIPPED_RUN_DIR / "config.json").is_file():
        return SHIPPED_RUN_DIR
    root = Path(runs_dir or default_runs_dir())
    if len(path.parts) != 1 or text in (".", "..") or len(text) > MAX_REF_CHARS:
        raise FileNotFoundError(f"no run folder at {text[:200]!r} (a path must be a run folder holding config.json)")
    if (root / text / "config.json").is_file():
        return root / text
    matches = [p for p in root.glob("[!.]*") if (p / "config.json").is_file() and text in p.name] \
        if root.is_dir() else []
    if not matches and root.is_dir():  # a run's display name, e.g. after a rename
        matches = [p for p in root.glob("[!.]*") if _config_name(p) == text]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise FileNotFoundError(f"no run {text!r} in {root}")
    raise ValueError(f"{text!r} matches several runs: {', '.join(sorted(p.name for p in matches))}")


def _config_name(run_dir: Path) -> Any:
    config = read_json(run_dir / "config.json", {})
    return config.get("name") if isinstance(config, dict) else None


def run_summary(run_dir: Path) -> Dict[str, Any]:
    """One leaderboard row: identity, status, flattened config, final metrics, and what is broken."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", {})
    config = config if isinstance(config, dict) else {}
    status = read_status(run_dir)
    # Plain Python over the rows: a DataFrame per run would dominate a 1,000-run leaderboard.
    metrics = read_metric_rows(run_dir)
    scored = [m for m in metrics if _number(m.get("val_acc")) and _number(m.get("epoch"))]
    best = max(scored, key=lambda m: m["val_acc"]) if scored else None
    problems = run_problems(run_dir)
    if run_identity(run_dir) == "foreign":
        problems.insert(0, "not a run folder fer wrote: listed only, never written or deleted")
    row: Dict[str, Any] = {"run_id": run_dir.name, "path": str(run_dir), "name": _text(config.get("name")),
                           "tags": ",".join(map(str, config.get("tags") or []))
                           if isinstance(config.get("tags"), list) else "",
                           "status": _text(status.get("state")) or "unknown",
                           "problem": "; ".join(problems) or None,
                           "model": _text(_section(config, "model").get("name")),
                           "optimizer": _text(_section(config, "optim").get("name")),
                           "scheduler": _text(_section(config, "sched").get("name")),
                           "augmentation": _text(config.get("augmentation")),
                           "epochs_done": max((int(m["epoch"]) for m in metrics if _number(m.get("epoch"))), default=0),
                           "best_val_acc": float(best["val_acc"]) if best else None,
                           "final_train_acc": metrics[-1].get("train_acc") if metrics else None,
                           "train_seconds": float(sum(m.get("seconds") or 0 for m in metrics
                                                      if _number(m.get("seconds")))) if metrics else None}
    # Overfitting signal: train minus validation accuracy at the best (checkpointed) epoch.
    row["best_epoch"] = int(best["epoch"]) if best else None
    row["train_val_gap"] = float(best["train_acc"] - best["val_acc"]) \
        if best and _number(best.get("train_acc")) else None
    test = read_json(run_dir / f"eval_{_safe_split(_section(config, 'data').get('test_split'))}.json")
    test = test if isinstance(test, dict) else None
    test = test or {}
    row["test_split"] = _text(test.get("split"))
    row["test_n"] = test.get("n") if _number(test.get("n")) else None
    row["test_acc"] = test.get("accuracy") if _number(test.get("accuracy")) else None
    row["test_macro_f1"] = test.get("macro_f1") if _number(test.get("macro_f1")) else None
    row["created_at"] = status.get("created_at")
    row.update({f"config.{k}": v for k, v in flatten(config).items()})
    return row


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _section(config: Dict[str, Any], key: str) -> Dict[str, Any]:
    value = config.get(key)
    return value if isinstance(value, dict) else {}


def _safe_split(split: Any) -> str:
    """A split name fit for a file name (a hand-edited config must not point the reader elsewhere)."""
    return split if file_safe_split(split) else "PublicTest"


# Leaderboard columns for people, accuracy first; `label` is the name made unique (see list_runs).
BOARD_COLUMNS = ["label", "test_acc", "test_macro_f1", "best_val_acc", "test_split", "test_n", "status", "problem",
                 "model", "optimizer", "scheduler", "augmentation", "epochs_done", "tags", "source", "run_id"]


def list_runs(runs_dir: Optional[Path] = None, include_default: bool = False) -> pd.DataFrame:
    """The leaderboard: one row per run folder, best test accuracy first, then validation accuracy.

    `include_default` adds the model shipped in the package (run id and name "default", source
    "built-in"). `label` is what people see: the run's name, with the end of its id where names repeat.
    """
    root = Path(runs_dir or default_runs_dir())
    # Unchanged runs come from the row cache, and concurrent callers share one build (fer.runs.rowcache);
    # each gets its own copy to filter or extend.
    return BOARDS.get(f"{root.resolve()}|{include_default}", lambda: _board(root, include_default)).copy()


def _board(root: Path, include_default: bool) -> pd.DataFrame:
    import pandas as pd

    rows = _local_rows(root)
    if include_default and (SHIPPED_RUN_DIR / "config.json").is_file():
        rows.append({**run_summary(SHIPPED_RUN_DIR), "run_id": board_id(SHIPPED_RUN_DIR), "name": "default",
                     "source": "built-in"})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["run_id", "name", "label", "status", "problem", "model", "best_val_acc",
                                     "test_acc", "test_n"])
    for column in ("test_acc", "best_val_acc"):
        df[column] = pd.to_numeric(df.get(column), errors="coerce")
    names = df["name"].fillna(df["run_id"]).astype(str)
    repeated = names.duplicated(keep=False)
    df["label"] = names.where(~repeated, names + " · " + df["run_id"].str[-4:])
    return df.sort_values(["test_acc", "best_val_acc", "run_id"], ascending=[False, False, False],
                          na_position="last").reset_index(drop=True)


def _local_rows(root: Path) -> List[Dict[str, Any]]:
    dirs = sorted(p for p in root.glob("*") if is_run_folder(p)) if root.is_dir() else []
    return [{**ROWS.row(p, _summary_or_problem), "source": "local"} for p in dirs]


def _summary_or_problem(run_dir: Path) -> Dict[str, Any]:
    """The run's row; a folder too broken to summarise still gets one, saying why (one bad run never hides the rest)."""
    try:
        return run_summary(run_dir)
    except Exception as e:  # a hand-edited file of a shape no check above foresaw
        return {"run_id": run_dir.name, "path": str(run_dir), "name": None, "status": "unknown",
                "test_acc": None, "best_val_acc": None, "problem": f"unreadable run folder ({type(e).__name__}: {e})"[:300]}
