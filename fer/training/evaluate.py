"""Scoring a classifier on a split (fer.metrics) and evaluating a stored run.

`score` works with any classifier (`class_names`, `predict_faces`): the CNN `Predictor` at the end of
training, the blendshape classifier, or an ensemble. `evaluate_run` loads a run's classifier,
scores it on a split and records the result in the run folder (`fer eval`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import pandas as pd

from fer.core.device import select_device
from fer.core.errors import UserError
from fer.data import DataError, FaceData, RunData
from fer.data.stats import duplicates_training
from fer.inference.averaging import TTA_MODES, softmax
from fer.inference.classifiers import load_classifier
from fer.inference.pipeline import Classifier
from fer.inference.predictor import Predictor
from fer.metrics.calibration import apply_temperature, calibration_metrics, fit_temperature
from fer.metrics.classification import classification_metrics, predictions_frame
from fer.runs.checkpoint import load_checkpoint
from fer.runs.store import evaluation_dir, inside_package, read_config
from fer.runs.writer import record_evaluation, save_checkpoint


@dataclass
class Evaluation:
    """A scored split: the metrics (eval_<split>.json) and the per-image predictions."""

    metrics: Dict[str, Any]
    predictions: pd.DataFrame


def score(classifier: Classifier, data: FaceData, index: np.ndarray, split_name: str,
          probs: Optional[np.ndarray] = None) -> Evaluation:
    """Score `classifier` on `data[index]` against the labels (predicting, unless `probs` are given)."""
    faces, labels = data.images[index], data.labels[index]
    if probs is None:
        probs = classifier.predict_faces(faces)
    metrics = {"split": split_name, **classification_metrics(labels, probs, data.class_names),
               **calibration_metrics(probs, labels, getattr(classifier, "temperature", 1.0)),
               **getattr(classifier, "provenance", {})}
    if split_name not in ("val", "train", "Training"):  # a test split: also without faces Training holds
        metrics["deduplicated"] = deduplicated_scores(data, index, labels, probs)
    extra = getattr(classifier, "extra_metrics", None)  # e.g. the landmarker's face coverage
    if extra is not None:
        metrics.update(extra(faces))
    return Evaluation(metrics, predictions_frame(data.sources[index], labels, probs, data.class_names))


def deduplicated_scores(data: FaceData, index: np.ndarray, labels: np.ndarray, probs: np.ndarray) -> Dict[str, Any]:
    """Accuracy and macro-F1 without the test faces that are pixel copies of Training faces."""
    kept = ~duplicates_training(data, index)
    scores = classification_metrics(labels[kept], probs[kept], data.class_names) if kept.any() else {}
    return {"n": int(kept.sum()), "removed": int((~kept).sum()), "accuracy": scores.get("accuracy"),
            "macro_f1": scores.get("macro_f1")}


def fit_calibration(predictor: Predictor, data: FaceData,
                    val_index: np.ndarray) -> Tuple[Dict[str, Any], Evaluation]:
    """Fit one temperature per TTA mode on the validation faces; set the predictor's for its own mode.

    Each mode's temperature is fitted on that mode's averaged logits (the predictor as it is used, never
    a test split). Returns the calibration record for the checkpoint and validation scored as the
    predictor now predicts: one pass over validation per mode.
    """
    own_tta, temperatures, scored = predictor.tta, {}, None
    labels = data.labels[val_index]
    for mode in TTA_MODES:
        predictor.tta = mode
        raw = softmax(predictor.logits_of_faces(data.images[val_index]))
        temperatures[mode] = fit_temperature(raw, labels)
        if mode == own_tta:
            predictor.temperature = temperatures[mode]
            scored = score(predictor, data, val_index, "val", apply_temperature(raw, predictor.temperature))
    predictor.tta = own_tta
    record = {"temperature": temperatures["none"], "temperatures": temperatures, "fitted_on": "val"}
    return record, scored


def evaluate_run(run_dir: Path, split: Optional[str] = None, checkpoint: str = "best",
                 data_path: Optional[str] = None, tta: str = "none") -> Dict[str, Any]:
    """Score a run's classifier on `split` (test, val, train or a FER2013 split name); record it without TTA."""
    run_dir = Path(run_dir)
    cfg = read_config(run_dir)
    # Where the run trained may not exist here: evaluate on what this machine has.
    classifier = load_classifier(run_dir, checkpoint=checkpoint, device=select_device("auto"), tta=tta,
                                 batch_size=cfg.train.eval_batch_size)
    run_data = RunData.from_config(cfg, data_path)
    index, split_name = run_data.split(split)
    result = score(classifier, run_data.data, index, split_name)
    # The record is the model itself, without TTA, so recorded accuracies compare with the studies'.
    if tta == "none":
        record_evaluation(evaluation_dir(run_dir), result.metrics, result.predictions)
    return {**result.metrics, "tta": tta}


def calibrate_run(run_dir: Path, data_path: Optional[str] = None) -> Dict[str, Any]:
    """Fit a temperature on the run's validation split, store it in best.pt, and score val and test again.

    Runs finish with a fitted temperature already; this is for runs trained before that (`fer calibrate`).
    """
    run_dir = Path(run_dir)
    if inside_package(run_dir):
        raise UserError("the shipped model comes calibrated; calibrate your own runs")
    cfg = read_config(run_dir)
    ckpt = load_checkpoint(run_dir / "best.pt")
    predictor = Predictor.from_loaded(ckpt, name=run_dir.name, checkpoint="best", calibrated=False,
                                      device=select_device("auto"), batch_size=cfg.train.eval_batch_size)
    run_data = RunData.from_config(cfg, data_path)
    if len(run_data.splits.val) == 0:
        raise DataError(f"{run_dir.name} has no validation images in {run_data.data.origin} to fit a temperature on")
    calibration, val = fit_calibration(predictor, run_data.data, run_data.splits.val)
    save_checkpoint(run_dir, "best.pt", {**ckpt, "calibration": calibration})
    record_evaluation(evaluation_dir(run_dir), val.metrics, val.predictions)
    return {"val": val.metrics, "test": evaluate_run(run_dir, "test", "best", data_path)}
