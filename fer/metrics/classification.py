"""Classification scores of predicted probabilities against labels (scikit-learn): accuracy, macro-F1,
per-class precision / recall / F1 / support, the confusion matrix, and the per-image predictions table.
What `eval_<split>.json` and `predictions_<split>.csv` hold for every evaluated split."""
from __future__ import annotations

from typing import Any, Dict, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


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
