"""The model that ships inside the package, and how a finished run becomes it.

`fer/runs/shipped/` is an ordinary run folder (best checkpoint, config, metrics, status,
evaluations, log) plus `CARD.md`, so every viewer treats it like any other run; the leaderboard
lists it as source "built-in".
"""
from __future__ import annotations

import json
from pathlib import Path

from fer.runs.writer import export_run
from fer.runs.store import SHIPPED_RUN_DIR, read_metrics
from fer.core.files import read_json

SHIPPED_FILES = ("best.pt", "config.json", "status.json", "metrics.jsonl", "train.log", "eval_val.json",
                 "eval_PublicTest.json", "predictions_PublicTest.csv")
MAX_BYTES = 20 * 1024 * 1024


def default_model_summary() -> str:
    """One line for the UI: the shipped model's name and PublicTest accuracy (or that it is missing)."""
    config = read_json(SHIPPED_RUN_DIR / "config.json")
    test = read_json(SHIPPED_RUN_DIR / "eval_PublicTest.json")
    if not config or not (SHIPPED_RUN_DIR / "best.pt").is_file():
        return "no default model shipped"
    accuracy = f", PublicTest {test['accuracy']:.1%}" if test else ""
    return f"{config['name']} ({config['model']['name']}{accuracy})"


def run_card(run_dir: Path, command: str) -> str:
    """A Markdown card: data, recipe, results per class, how to reproduce."""
    config = read_json(run_dir / "config.json")
    status = read_json(run_dir / "status.json")
    metrics = read_metrics(run_dir)
    test = read_json(run_dir / f"eval_{config['data']['test_split']}.json")
    val = read_json(run_dir / "eval_val.json")
    best = metrics.loc[metrics["val_acc"].idxmax()]
    lines = [
        f"# Default model: {config['name']} ({config['model']['name']})", "",
        "Ships inside `fer-studio` and is used whenever no run is chosen (photo upload, webcam, `fer predict`).", "",
        "## Data", "",
        f"FER2013 Training ({config['data']['val_fraction']:.0%} stratified, seeded validation split held out), "
        f"test split {test['split']} ({test['n']} images), evaluated once with the best-validation checkpoint.", "",
        "## Recipe", "",
        "```json", json.dumps({k: config[k] for k in ("model", "augmentation", "optim", "sched", "loss", "train")},
                              indent=2), "```", "",
        "## Results", "",
        f"- {test['split']} accuracy **{test['accuracy']:.2%}**, macro-F1 {test['macro_f1']:.3f}",
        f"- validation accuracy {val['accuracy']:.2%} (best epoch {int(best['epoch'])} of {len(metrics)})",
        f"- training time {metrics['seconds'].sum() / 60:.1f} min of epochs on {status.get('device', 'CPU')}; "
        f"median epoch {metrics['seconds'].median():.0f} s, so {metrics['seconds'].median() * len(metrics) / 60:.0f} min "
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
    lines += ["", "## Reproduce", "", "```bash", command, "```", ""]
    return "\n".join(lines)


def package_run(run_dir: Path, command: str, dest: Path = SHIPPED_RUN_DIR) -> Path:
    """Copy a finished run's files into `dest` with its card; refuses runs over 20 MB or not completed."""
    run_dir = Path(run_dir)
    if read_json(run_dir / "status.json", {}).get("state") != "completed":
        raise ValueError(f"{run_dir} has not completed")
    size = sum((run_dir / f).stat().st_size for f in SHIPPED_FILES if (run_dir / f).is_file())
    if size > MAX_BYTES:
        raise ValueError(f"{run_dir}: {size / 1e6:.1f} MB is over the 20 MB limit for a shipped model")
    return export_run(run_dir, dest, SHIPPED_FILES, {"CARD.md": run_card(run_dir, command), "RUN_ID": run_dir.name + "\n"})
