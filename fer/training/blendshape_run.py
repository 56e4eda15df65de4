"""Training a MediaPipe-feature run: extract features, choose C on validation, write a run folder.

The folder is written by the same writer as a CNN run and evaluated by the same `score`, so
`fer eval`, `fer predict --run`, the leaderboard and the dashboard treat it like any other run.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fer.inference.blendshapes import (ARRAYS_FILE, KIND, META_FILE, UPSCALE, BlendshapeClassifier, BlendshapePredictor,
                             cached_features, face_coverage)
from fer.config import RunConfig
from fer.data import default_data_path, load_run_data, splits_for
from fer.training.evaluate import score
from fer.runs.writer import append_metrics, create_run, record_evaluation, save_arrays, write_json, write_status
from fer.runs.store import default_runs_dir
from fer.core.files import utc_now

ROLES = ("train", "val", "test")


def blendshape_config(data_path: Optional[str], name: str, Cs: Sequence[float], limit: int, seed: int,
                      tags: Sequence[str]) -> RunConfig:
    """The run config recorded for a blendshape run (the CNN-only fields keep their defaults)."""
    cfg = RunConfig(name=name, tags=list(tags), augmentation="none")
    cfg.model.name, cfg.model.kwargs = KIND, {"Cs": list(Cs), "upscale": UPSCALE}
    cfg.optim.name, cfg.sched.name, cfg.train.epochs = "lbfgs", "none", 1
    cfg.data.path = str(Path(data_path or default_data_path()).expanduser().resolve())
    cfg.data.limit, cfg.train.seed = limit, seed
    return cfg


def train_blendshape_run(data_path: Optional[str] = None, name: str = "mediapipe-blendshapes",
                         runs_dir: Optional[Path] = None, Cs: Sequence[float] = (0.01, 0.1, 1.0), limit: int = 0,
                         seed: int = 0, tags: Sequence[str] = ()) -> Path:
    """Extract features, pick C on validation, write a complete run folder (config, metrics, evaluations)."""
    cfg = blendshape_config(data_path, name, Cs, limit, seed, tags)
    data = load_run_data(cfg)
    splits = splits_for(cfg, data)
    run_dir = create_run(cfg, Path(runs_dir or cfg.runs_dir or default_runs_dir()), state="running",
                         started_at=utc_now(), epoch=1)
    started = time.perf_counter()
    try:
        feats = {role: cached_features(data.images[getattr(splits, role)]) for role in ROLES}
        labels = {role: data.labels[getattr(splits, role)] for role in ROLES}
        best = None
        for C in Cs:  # model selection on validation only
            clf = BlendshapeClassifier.fit(feats["train"], labels["train"], data.class_names, C)
            val_acc = float((clf.predict_proba(feats["val"]).argmax(1) == labels["val"]).mean())
            if best is None or val_acc > best[1]:
                best = (clf, val_acc)
        clf, best_val_acc = best
        save_arrays(run_dir, ARRAYS_FILE, clf.arrays())
        write_json(run_dir / META_FILE, clf.meta())
        train_acc = float((clf.predict_proba(feats["train"]).argmax(1) == labels["train"]).mean())
        val_probs = clf.predict_proba(feats["val"])[np.arange(len(labels["val"])), labels["val"]]
        append_metrics(run_dir, {
            "epoch": 1, "train_loss": None, "train_acc": train_acc,
            "val_loss": float(-np.log(np.clip(val_probs, 1e-12, None)).mean()), "val_acc": best_val_acc,
            "lr": None, "seconds": round(time.perf_counter() - started, 3), "best": True, "time": utc_now(),
            "C": clf.C, "face_coverage_train": face_coverage(feats["train"]),
            "face_coverage_val": face_coverage(feats["val"])})
        # The final evaluation is the one every run gets: the stored classifier, scored on val and test.
        predictor = BlendshapePredictor(clf, name=run_dir.name)
        try:
            results = {}
            for role, split_name in (("val", "val"), ("test", cfg.data.test_split)):
                result = score(predictor, data, getattr(splits, role), split_name)
                record_evaluation(run_dir, result.metrics, result.predictions)
                results[role] = result.metrics["accuracy"]
        finally:
            predictor.close()
        write_status(run_dir, "completed", finished_at=utc_now(), best_val_acc=best_val_acc,
                     test_acc=results["test"])
    except Exception as e:
        write_status(run_dir, "failed", error=f"{type(e).__name__}: {e}", finished_at=utc_now())
        raise
    return run_dir
