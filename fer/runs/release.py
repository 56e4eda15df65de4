"""The model that ships inside the package, and how a finished run becomes it (`fer release RUN`).

`fer/runs/shipped/` is an ordinary run folder (best checkpoint and its int8 export, config, metrics,
status, evaluations, log) plus `CARD.md` and `RUN_ID`, so every viewer treats it like any other run;
the leaderboard lists it as source "built-in". `release_run` writes such a folder from a completed
run, with the card generated from the run's own files.
"""
from __future__ import annotations

import json
from pathlib import Path

from typing import Any, Dict, List

from fer.core.errors import UserError
from fer.core.files import read_json, sha256_of
from fer.runs.store import SHIPPED_RUN_DIR, read_metrics
from fer.runs.writer import export_run

# What a release copies (eval and predictions of the run's test split are added by name).
SHIPPED_FILES = ("best.pt", "config.json", "status.json", "metrics.jsonl", "train.log", "eval_val.json")
INT8_EXPORT = "model.int8.onnx"  # fer export RUN --int8: shipped when it was made from this very best.pt
MAX_BYTES = 20 * 1024 * 1024


def default_model_summary() -> str:
    """One line for the UI: the shipped model's name and PublicTest accuracy (or that it is missing)."""
    config = read_json(SHIPPED_RUN_DIR / "config.json")
    test = read_json(SHIPPED_RUN_DIR / "eval_PublicTest.json")
    if not config or not (SHIPPED_RUN_DIR / "best.pt").is_file():
        return "no default model shipped"
    accuracy = f", PublicTest {test['accuracy']:.1%}" if test else ""
    return f"{config['name']} ({config['model']['name']}{accuracy})"


INT8_WEIGHTS_NOTE = ("Its weights are stored as int8 with one scale per output channel (a quarter of the fp32 "
                     "bytes); the results below were measured with those weights, re-calibrated on validation.")


def run_card(run_dir: Path, command: str, int8_weights: bool = False) -> str:
    """A Markdown card: data, recipe, results per class, calibration, how to reproduce."""
    config = read_json(run_dir / "config.json")
    test = read_json(run_dir / f"eval_{config['data']['test_split']}.json")
    lines = [
        f"# Default model: {config['name']} ({config['model']['name']})", "",
        "Ships inside `fer-studio` and is used whenever no run is chosen (photo upload, webcam, `fer predict`)."
        + (" " + INT8_WEIGHTS_NOTE if int8_weights else ""), "",
        "## Data", "",
        f"FER2013 Training ({config['data']['val_fraction']:.0%} stratified, seeded validation split held out), "
        f"test split {test['split']} ({test['n']} images), evaluated once with the best-validation checkpoint.", "",
        "## Recipe", "",
        "```json", json.dumps({k: config[k] for k in ("model", "augmentation", "optim", "sched", "loss", "train")},
                              indent=2), "```", "",
        *_results_lines(run_dir, test), *_calibration_lines(run_dir, test),
        "## Reproduce", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def _results_lines(run_dir: Path, test: Dict[str, Any]) -> List[str]:
    status = read_json(run_dir / "status.json")
    metrics = read_metrics(run_dir)
    val = read_json(run_dir / "eval_val.json")
    best = metrics.loc[metrics["val_acc"].idxmax()]
    seconds = metrics["seconds"]
    lines = [
        "## Results", "",
        f"- {test['split']} accuracy **{test['accuracy']:.2%}**, macro-F1 {test['macro_f1']:.3f}",
        *_deduplicated_line(test),
        f"- validation accuracy {val['accuracy']:.2%} (best epoch {int(best['epoch'])} of {len(metrics)})",
        f"- training time {seconds.sum() / 60:.1f} min of epochs on {status.get('device', 'CPU')}; "
        f"median epoch {seconds.median():.0f} s, so {seconds.median() * len(metrics) / 60:.0f} min "
        f"at that pace (epochs that shared the CPU with other work took longer)",
        "", "| class | precision | recall | F1 | support |", "|---|---|---|---|---|",
    ]
    for name, row in test["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |")
    names = test["class_names"]
    lines += ["", f"Confusion matrix on {test['split']} (rows: true class, columns: predicted):", "",
              "| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, test["confusion_matrix"]):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return lines + [""]


def _deduplicated_line(test: Dict[str, Any]) -> List[str]:
    dedup = test.get("deduplicated") or {}
    if not dedup.get("removed") or dedup.get("accuracy") is None:
        return []
    return [f"- de-duplicated {test['split']} (without the {dedup['removed']} faces that are pixel copies of "
            f"Training faces; {dedup['n']} left): accuracy {dedup['accuracy']:.2%}, macro-F1 {dedup['macro_f1']:.3f}"]


def _calibration_lines(run_dir: Path, test: Dict[str, Any]) -> List[str]:
    val = read_json(run_dir / "eval_val.json") or {}
    if float(test.get("temperature", 1.0)) == 1.0 or "ece_uncalibrated" not in val:
        return []
    return ["## Calibration", "",
            f"Temperature T = {test['temperature']:.3f}, fitted on the validation split (every predictor applies "
            f"it): expected calibration error {val['ece_uncalibrated']:.4f} → {val['ece']:.4f} on validation and "
            f"{test['ece_uncalibrated']:.4f} → {test['ece']:.4f} on {test['split']}.", *_tta_temperatures(run_dir), ""]


def _tta_temperatures(run_dir: Path) -> List[str]:
    # Each TTA mode averages different logits, so each has its own temperature (fitted on validation).
    from fer.runs.checkpoint import load_checkpoint  # torch: pages import this module and must not pay for it

    calibration = load_checkpoint(run_dir / "best.pt").get("calibration") or {}
    temperatures = calibration.get("temperatures") or {}
    if len(temperatures) < 2:
        return []
    listed = ", ".join(f"{mode} {value:.3f}" for mode, value in temperatures.items())
    return ["", f"Per test-time augmentation (each fitted on validation; a predictor uses its mode's): {listed}."]


def release_files(run_dir: Path) -> List[str]:
    """The run's files a release ships: checkpoint, its matching int8 export, records and test evaluation."""
    run_dir = Path(run_dir)
    config = read_json(run_dir / "config.json", {}) or {}
    split = (config.get("data") or {}).get("test_split") or "PublicTest"
    names = [*SHIPPED_FILES, f"eval_{split}.json", f"predictions_{split}.csv"]
    export = run_dir / INT8_EXPORT
    # The export names its source checkpoint's SHA-256 in its metadata: a stale one is left behind.
    if export.is_file() and sha256_of(run_dir / "best.pt").encode() in export.read_bytes():
        names.append(INT8_EXPORT)
    return [n for n in names if (run_dir / n).is_file()]


def release_run(run_dir: Path, dest: Path = SHIPPED_RUN_DIR, command: str = "", int8_weights: bool = False) -> Path:
    """Write a completed run as a shipped-model folder `dest` with its card; refuses runs over 20 MB.

    `dest` may be new or an earlier release (it holds RUN_ID), never any other folder.
    """
    run_dir, dest = Path(run_dir), Path(dest)
    status = read_json(run_dir / "status.json", {}) or {}
    if status.get("state") != "completed" or not (run_dir / "best.pt").is_file():
        raise UserError(f"{run_dir.name} has not completed (state {status.get('state')!r}): only a finished run "
                        "with its best.pt can be released")
    files = release_files(run_dir)
    size = sum((run_dir / f).stat().st_size for f in files)
    if size > MAX_BYTES:
        raise UserError(f"{run_dir.name}: {size / 1e6:.1f} MB is over the {MAX_BYTES / 2**20:.0f} MB limit for a "
                        "shipped model")
    if dest.exists() and not (dest / "RUN_ID").is_file():
        raise UserError(f"{dest} exists and is not a released model (no RUN_ID): choose a new folder")
    command = command or "FER_DATA=/path/to/fer2013 fer train --config config.json   # the config.json beside this card"
    # Where the run's data and runs folder were on the machine that trained it means nothing elsewhere:
    # the released config reads FER_DATA (or data/) and FER_RUNS_DIR, so the card's command works anywhere.
    config = read_json(run_dir / "config.json")
    config["data"]["path"], config["runs_dir"] = "", ""
    texts = {"config.json": json.dumps(config, indent=2) + "\n", "CARD.md": run_card(run_dir, command, int8_weights),
             "RUN_ID": run_dir.name + "\n"}
    return export_run(run_dir, dest, [f for f in files if f != "config.json"], texts)
