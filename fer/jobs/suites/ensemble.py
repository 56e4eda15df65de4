"""A suite's ladder as one ensemble: the best run of each variant, averaged, scored on the test split.

Study E's method ends with this step ("combine several models for a better result"). Each variant's
run is chosen on validation accuracy, never on the test split; the members and the ensemble are then
scored once on the same test faces, so their rows compare directly.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from fer.core.device import select_device
from fer.core.errors import UserError
from fer.data import RunData
from fer.inference.averaging import Ensemble
from fer.inference.classifiers import load_classifier
from fer.jobs.suites.runner import suite_runs
from fer.runs.store import read_config
from fer.training.evaluate import score


def best_runs(name: str, runs_dir: Optional[Path] = None, variants: Sequence[str] = ()) -> pd.DataFrame:
    """Per variant (all, or those named), its completed run with the best validation accuracy."""
    runs = suite_runs(name, runs_dir)
    if not runs.empty:
        runs = runs[(runs["status"] == "completed") & runs["best_val_acc"].notna()]
        if variants:
            runs = runs[runs["variant"].isin(list(variants))]
    if runs.empty or runs["variant"].nunique() < 2:
        raise UserError(f"an ensemble of {name} needs completed runs of at least two variants "
                        f"(found {0 if runs.empty else runs['variant'].nunique()})")
    best = runs.sort_values("best_val_acc", ascending=False).groupby("variant", sort=False).head(1)
    return best.reset_index(drop=True)


def suite_ensemble(name: str, runs_dir: Optional[Path] = None, variants: Sequence[str] = (),
                   data_path: Optional[str] = None) -> pd.DataFrame:
    """One row per member and one for their average: test accuracy and macro-F1 on the same test faces."""
    best = best_runs(name, runs_dir, variants)
    paths = [Path(p) for p in best["path"]]
    splits = {read_config(p).data.test_split for p in paths}
    if len(splits) > 1:
        raise UserError(f"the runs of {name} test on different splits ({', '.join(sorted(splits))})")
    cfg = read_config(paths[0])
    run_data = RunData.from_config(cfg, data_path)
    index, split = run_data.split("test")
    faces = run_data.data.images[index]
    members = [load_classifier(p, device=select_device("auto"), batch_size=cfg.train.eval_batch_size) for p in paths]
    ensemble = Ensemble(members)  # refuses members whose classes differ
    rows, every = [], []
    for variant, member in zip(best["variant"], members):
        probs = member.predict_faces(faces)
        every.append(probs)
        rows.append(_row(variant, member.name, len(index), score(member, run_data.data, index, split, probs).metrics))
    ensemble_metrics = score(ensemble, run_data.data, index, split, ensemble.combine(every)).metrics  # no second pass
    rows.append(_row("ensemble", f"the mean of the {len(members)} runs above", len(index), ensemble_metrics))
    return pd.DataFrame(rows)


def _row(variant: str, run: str, faces: int, metrics: dict) -> dict:
    return {"variant": variant, "run": run, "split": metrics["split"], "faces": faces,
            "accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
