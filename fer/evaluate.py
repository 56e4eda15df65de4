"""Test-set metrics (scikit-learn) and evaluating a stored run on any split."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from fer.checkpoint import load_checkpoint, model_from_checkpoint, preprocessing_from_checkpoint
from fer.config import RunConfig, from_dict
from fer.data import Splits, load_fer2013, make_splits
from fer.data.loaders import eval_loader
from fer.device import select_device
from fer.engine import predict
from fer.runs import write_json_atomic


def classification_metrics(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> Dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    k = len(class_names)
    preds = probs.argmax(1)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, preds, labels=list(range(k)), zero_division=0)
    return {
        "n": int(len(labels)),
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, labels=list(range(k)), average="macro", zero_division=0)),
        "per_class": {name: {"precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                             "support": int(support[c])} for c, name in enumerate(class_names)},
        "class_names": list(class_names),
        # Rows are true classes, columns predicted classes.
        "confusion_matrix": confusion_matrix(labels, preds, labels=list(range(k))).tolist(),
    }


def predictions_frame(sources: np.ndarray, labels: np.ndarray, probs: np.ndarray,
                      class_names: Sequence[str]) -> pd.DataFrame:
    """One row per image: source id, true and predicted class, confidence and every probability."""
    preds = probs.argmax(1)
    df = pd.DataFrame({"source": sources, "true": np.asarray(class_names)[labels],
                       "pred": np.asarray(class_names)[preds], "confidence": probs.max(1).round(6),
                       "correct": preds == labels})
    for c, name in enumerate(class_names):
        df[f"p_{name}"] = probs[:, c].round(6)
    return df


def save_evaluation(run_dir: Path, split: str, metrics: Dict[str, Any], predictions: pd.DataFrame) -> None:
    """Write eval_<split>.json and predictions_<split>.csv into the run folder."""
    write_json_atomic(Path(run_dir) / f"eval_{split}.json", {"split": split, **metrics})
    predictions.to_csv(Path(run_dir) / f"predictions_{split}.csv", index=False)


def splits_for(cfg: RunConfig, data) -> Splits:
    """The train/val/test indices a run's config defines (the same at training and evaluation time)."""
    return make_splits(data, cfg.data.val_source, cfg.data.val_fraction, cfg.data.test_split,
                       cfg.train.seed, cfg.data.limit)


def split_index(cfg: RunConfig, data, split: Optional[str]) -> tuple:
    """(indices, split name) for a role (test, val, train: as the run defined them) or a FER2013 split name."""
    role = split or "test"
    names = {"train": "train", "val": "val", "test": cfg.data.test_split}
    if role in names:
        index, split_name = getattr(splits_for(cfg, data), role), names[role]
    else:
        index, split_name = data.split_indices(role), role
    if len(index) == 0:
        raise ValueError(f"split {role!r} is empty in {data.origin}")
    return index, split_name


def evaluate_split(model, spec, data, index: np.ndarray, split_name: str, run_dir: Path, checkpoint: str,
                   epoch: int, device, batch_size: int = 256) -> Dict[str, Any]:
    """Predict `data[index]`, score it and write eval_<split>.json + predictions_<split>.csv."""
    probs, labels = predict(model, eval_loader(data.images[index], data.labels[index], batch_size), device, spec)
    metrics = classification_metrics(labels, probs, data.class_names)
    metrics.update(checkpoint=checkpoint, epoch=int(epoch))
    save_evaluation(run_dir, split_name, metrics, predictions_frame(data.sources[index], labels, probs,
                                                                    data.class_names))
    return {"split": split_name, **metrics}


def evaluate_run(run_dir: Path, split: Optional[str] = None, checkpoint: str = "best",
                 data_path: Optional[str] = None) -> Dict[str, Any]:
    """Evaluate a run's checkpoint on `split` (test, val, train or a FER2013 split name) and store it."""
    run_dir = Path(run_dir)
    from fer.blendshapes import is_blendshape_run
    if is_blendshape_run(run_dir):
        return _evaluate_blendshape_run(run_dir, split, data_path)
    ckpt_path = run_dir / f"{checkpoint}.pt"
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"{ckpt_path} does not exist (has the run finished an epoch?)")
    ckpt = load_checkpoint(ckpt_path)
    cfg = from_dict(RunConfig, ckpt["config"])
    data = load_fer2013(data_path or cfg.data.path or None)
    index, split_name = split_index(cfg, data, split)
    device = select_device("auto")  # where the run trained may not exist here
    return evaluate_split(model_from_checkpoint(ckpt).to(device), preprocessing_from_checkpoint(ckpt), data, index,
                          split_name, run_dir, checkpoint, ckpt["epoch"], device, cfg.train.eval_batch_size)



def _evaluate_blendshape_run(run_dir: Path, split: Optional[str], data_path: Optional[str]) -> Dict[str, Any]:
    from fer.blendshapes import BlendshapeClassifier, cached_features
    from fer.runs import read_json

    cfg = from_dict(RunConfig, read_json(run_dir / "config.json"))
    data = load_fer2013(data_path or cfg.data.path or None)
    index, split_name = split_index(cfg, data, split)
    clf = BlendshapeClassifier.load(run_dir)
    features = cached_features(data.images[index])
    probs = clf.predict_proba(features)
    metrics = classification_metrics(data.labels[index], probs, data.class_names)
    metrics.update(checkpoint="classifier", epoch=1, face_coverage=float((~np.isnan(features).any(1)).mean()))
    save_evaluation(run_dir, split_name, metrics, predictions_frame(data.sources[index], data.labels[index], probs,
                                                                    data.class_names))
    return {"split": split_name, **metrics}
