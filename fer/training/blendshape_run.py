"""Training a MediaPipe-feature run: extract features, choose C on validation, score val and test.

It is a run like any other: its config goes through `check_config`, its folder is made by
`create_run` (queued), it trains through `fer train --run` (the worker's command: `fit.train`
hands runs whose model is the blendshape kind to `fit_blendshape_run`) and it tells its folder
everything through a `RunRecorder`. So `fer eval`, `fer predict --run`, the queue, the leaderboard
and the dashboard treat it like a CNN run.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from fer.config import RunConfig
from fer.core.files import utc_now
from fer.data import RunData, default_data_path
from fer.inference.blendshapes import (ARRAYS_FILE, BlendshapeClassifier, BlendshapePredictor, KIND, META_FILE, UPSCALE,
                                       cached_features, face_coverage)
from fer.training.evaluate import score
from fer.training.recorder import Recorder

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


def fit_blendshape_run(cfg: RunConfig, recorder: Recorder) -> None:
    """Train a blendshape run folder: the features, C chosen on validation, then the final evaluation."""
    run_data = RunData.from_config(cfg)
    data, splits = run_data.data, run_data.splits
    recorder.started(1, 1, "CPU (MediaPipe FaceLandmarker features)")
    started = time.perf_counter()
    feats = {role: cached_features(data.images[getattr(splits, role)]) for role in ROLES}
    labels = {role: data.labels[getattr(splits, role)] for role in ROLES}
    best = None
    for C in cfg.model.kwargs["Cs"]:  # model selection on validation only
        clf = BlendshapeClassifier.fit(feats["train"], labels["train"], data.class_names, C)
        val_acc = float((clf.predict_proba(feats["val"]).argmax(1) == labels["val"]).mean())
        if best is None or val_acc > best[1]:
            best = (clf, val_acc)
    clf, best_val_acc = best
    recorder.fitted({ARRAYS_FILE: clf.arrays()}, {META_FILE: clf.meta()})
    train_acc = float((clf.predict_proba(feats["train"]).argmax(1) == labels["train"]).mean())
    val_probs = clf.predict_proba(feats["val"])[np.arange(len(labels["val"])), labels["val"]]
    recorder.epoch_done({
        "epoch": 1, "train_loss": None, "train_acc": train_acc,
        "val_loss": float(-np.log(np.clip(val_probs, 1e-12, None)).mean()), "val_acc": best_val_acc,
        "lr": None, "seconds": round(time.perf_counter() - started, 3), "best": True, "time": utc_now(),
        "C": clf.C, "face_coverage_train": face_coverage(feats["train"]),
        "face_coverage_val": face_coverage(feats["val"])}, 1, best_val_acc)
    # The final evaluation is the one every run gets: the stored classifier, scored on val and test.
    recorder.evaluating()
    predictor = BlendshapePredictor(clf, name=recorder.run_dir.name)
    try:
        results = {}
        for role, split_name in (("val", "val"), ("test", cfg.data.test_split)):
            result = score(predictor, data, getattr(splits, role), split_name)
            recorder.evaluation(role, result.metrics, result.predictions)
            results[role] = result.metrics["accuracy"]
    finally:
        predictor.close()
    recorder.completed(best_val_acc=best_val_acc, test_acc=results["test"])
