"""Comparing runs: learning curves, config differences, confusion matrices and mistakes.

Read-only helpers over run folders; the dashboard's Runs and Confusion pages are views of these.
(Edits of a run, such as rename, retag and delete, belong to the run writer.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

import numpy as np
import pandas as pd

from fer.config import flatten
from fer.core.files import read_json
from fer.metrics.calibration import apply_temperature, reliability_table
from fer.runs.store import board_id, evaluation_dir, evaluation_file, read_metrics

CURVE_METRICS = ("train_loss", "val_loss", "train_acc", "val_acc", "val_macro_f1", "lr")


def mixed_test_sets(board: pd.DataFrame) -> Optional[str]:
    """A warning when the runs were scored on different test sets (split or size), else None."""
    scored = board.dropna(subset=["test_acc"]) if "test_acc" in board else board.iloc[0:0]
    if scored.empty or "test_n" not in scored:
        return None
    # Distinct pairs first: a 5,000-run board has a handful, and this runs on every page view.
    pairs = scored[["test_split", "test_n"]].dropna(subset=["test_n"]).drop_duplicates()
    sets = sorted({(str(split), int(n)) for split, n in zip(pairs["test_split"], pairs["test_n"])})
    if len(sets) <= 1:
        return None
    return ("These runs were scored on different test sets (" + ", ".join(f"{s}: {n:,} images" for s, n in sets)
            + "): their test accuracies do not compare directly.")


def curves(run_dirs: Sequence[Path], labels: Optional[Mapping[str, str]] = None) -> pd.DataFrame:
    """Long table of per-epoch metrics: run_id, run (its label), epoch, metric, value (for overlaid charts)."""
    frames = []
    for run_dir in map(Path, run_dirs):
        metrics = read_metrics(run_dir)
        if metrics.empty:
            continue
        cols = [c for c in CURVE_METRICS if c in metrics.columns]
        long = metrics[["epoch", *cols]].melt(id_vars="epoch", var_name="metric", value_name="value")
        run_id = board_id(run_dir)  # the shipped model is "default" here too, as on the leaderboard
        frames.append(long.assign(run_id=run_id, run=(labels or {}).get(run_id, run_id)).dropna(subset=["value"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["epoch", "metric", "value",
                                                                                     "run_id", "run"])


def config_diff(run_dirs: Sequence[Path], labels: Optional[Mapping[str, str]] = None) -> pd.DataFrame:
    """The config keys whose values differ between runs (rows: keys, columns: run labels, else ids)."""
    configs = {(labels or {}).get(board_id(r), board_id(r)): flatten(read_json(Path(r) / "config.json", {}) or {})
               for r in run_dirs}
    table = pd.DataFrame(configs).astype(str)
    if table.empty:
        return table
    differs = table.nunique(axis=1) > 1
    return table[differs & ~table.index.isin(["runs_dir"])]


def evaluations(run_dir: Path) -> Dict[str, dict]:
    """The run's stored evaluations by split name (eval_<split>.json); unreadable ones are left out."""
    found: Dict[str, dict] = {}
    for folder in dict.fromkeys([Path(run_dir), evaluation_dir(run_dir)]):  # later (newer) ones win
        for path in sorted(folder.glob("eval_*.json")):
            evaluation = read_json(path)
            if isinstance(evaluation, dict) and {"class_names", "confusion_matrix", "per_class"} <= set(evaluation):
                found[path.stem[len("eval_"):]] = evaluation
    return found


def confusion_frame(evaluation: dict, normalize: bool = False) -> pd.DataFrame:
    """The confusion matrix as a DataFrame (rows true, columns predicted), optionally row-normalised."""
    names = evaluation["class_names"]
    cm = pd.DataFrame(np.asarray(evaluation["confusion_matrix"], dtype=float), index=names, columns=names)
    if normalize:
        cm = cm.div(cm.sum(axis=1).replace(0, np.nan), axis=0).fillna(0.0)
    cm.index.name, cm.columns.name = "true", "predicted"
    return cm


def per_class_frame(evaluation: dict) -> pd.DataFrame:
    """Per-class precision, recall, F1 and support."""
    return pd.DataFrame(evaluation["per_class"]).T[["precision", "recall", "f1", "support"]]


def confusion_difference(a: dict, b: dict) -> pd.DataFrame:
    """Row-normalised confusion of run B minus run A (positive: B puts more of the true class there)."""
    if a["class_names"] != b["class_names"]:
        raise ValueError("the two runs use different classes")
    return confusion_frame(b, normalize=True) - confusion_frame(a, normalize=True)


def confident_mistakes(run_dir: Path, split: str, true: Optional[str] = None, pred: Optional[str] = None,
                       k: int = 12) -> pd.DataFrame:
    """The most confident wrong predictions on `split` (optionally for one true/predicted pair)."""
    path = evaluation_file(run_dir, f"predictions_{split}.csv")
    try:
        df = pd.read_csv(path)
        df["correct"] = df["correct"].astype(bool)
        df["confidence"] = pd.to_numeric(df["confidence"])
    except (OSError, ValueError, KeyError, pd.errors.ParserError):  # missing or damaged: no examples to show
        return pd.DataFrame()
    wrong = df[~df["correct"]]
    if true:
        wrong = wrong[wrong["true"] == true]
    if pred:
        wrong = wrong[wrong["pred"] == pred]
    return wrong.sort_values("confidence", ascending=False).head(k).reset_index(drop=True)


def reliability(run_dir: Path, split: str, temperature: float = 1.0) -> pd.DataFrame:
    """The reliability diagram of `split`'s stored predictions: per confidence bin, confidence vs accuracy,
    as scored ("calibrated" when `temperature` ≠ 1) and, with a temperature, as the model gave them."""
    try:
        df = pd.read_csv(evaluation_file(run_dir, f"predictions_{split}.csv"))
        names = [c[len("p_"):] for c in df.columns if c.startswith("p_")]
        probs = df[[f"p_{n}" for n in names]].to_numpy(dtype=np.float64)
        labels = df["true"].map({n: i for i, n in enumerate(names)}).to_numpy()
    except (OSError, ValueError, KeyError, pd.errors.ParserError):
        return pd.DataFrame()
    probs = probs / probs.sum(axis=1, keepdims=True)  # the CSV rounds to 6 digits
    versions = {"calibrated" if temperature != 1.0 else "as scored": probs}
    if temperature != 1.0:
        versions["uncalibrated"] = apply_temperature(probs, 1.0 / temperature)
    return pd.concat([reliability_table(v, labels).assign(version=name) for name, v in versions.items()],
                     ignore_index=True)


def face_images(data, sources: Sequence[str]) -> List[np.ndarray]:
    """The 48×48 faces of `sources` (ids as in predictions CSVs) from a loaded FaceData."""
    index = {s: i for i, s in enumerate(data.sources)}
    return [data.images[index[s]] for s in sources if s in index]


def parallel_coordinates(board: pd.DataFrame, columns: Sequence[str], target: str = "test_acc") -> pd.DataFrame:
    """Long table for a parallel-coordinates chart: each numeric column scaled to 0..1 (log for lr-like)."""
    keep = [c for c in columns if c in board.columns]
    table = board[["run_id", "label", target, *keep]].copy() if "label" in board else \
        board[["run_id", target, *keep]].assign(label=board["run_id"])
    long_rows = []
    for col in keep:
        raw = pd.to_numeric(table[col], errors="coerce")
        if raw.isna().all():
            codes, uniques = pd.factorize(table[col].astype(str))  # categorical: evenly spaced
            scaled = pd.Series(codes / max(1, len(uniques) - 1), index=table.index)
        else:
            values = np.log10(raw.clip(lower=1e-12)) if (raw > 0).all() and raw.max() / raw.min() > 20 else raw
            span = values.max() - values.min()
            scaled = (values - values.min()) / span if span > 0 else values * 0 + 0.5
        long_rows.append(pd.DataFrame({"run_id": table["run_id"], "label": table["label"], "axis": col, "scaled": scaled,
                                       "value": table[col].astype(str), target: table[target]}))
    return pd.concat(long_rows, ignore_index=True) if long_rows else pd.DataFrame()


def axis_ticks(coords: pd.DataFrame, most: int = 9) -> pd.DataFrame:
    """The values on each axis of a parallel-coordinates table, where they sit: the chart's labels.

    Every distinct value while an axis has at most `most`; beyond that (a learning rate drawn per run)
    `most` of them spread evenly from the lowest to the highest, so labels never pile up."""
    if coords.empty:
        return coords
    ticks = coords.drop_duplicates(["axis", "value"])[["axis", "scaled", "value"]]
    ticks = ticks.groupby("axis", sort=False, group_keys=False)[["axis", "scaled", "value"]].apply(
        lambda axis: _spread(axis, most))
    return ticks.assign(value=ticks["value"].map(_short_value))


def _spread(axis: pd.DataFrame, most: int) -> pd.DataFrame:
    if len(axis) <= most:
        return axis
    ordered = axis.sort_values("scaled")
    return ordered.iloc[np.unique(np.linspace(0, len(ordered) - 1, most).round().astype(int))]


def _short_value(text: str) -> str:
    """A config value as a short label: numbers in 4 significant digits, long text cut with an ellipsis."""
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text if len(text) <= 18 else text[:17] + "…"


def axis_titles(columns: Sequence[str]) -> Dict[str, str]:
    """Leaderboard config columns (config.optim.lr) by the config fields' own names (Learning rate)."""
    from fer.config import field_specs

    labels = {f"config.{spec.key}": spec.label for spec in field_specs()}
    return {c: labels.get(c, c.removeprefix("config.")) for c in columns}
