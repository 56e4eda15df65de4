"""Calibrated probabilities: temperature scaling (Guo et al., 2017) and the expected calibration error.

FER2013 CNNs are over-confident: a face called "happy" at 0.95 is right far less than 95% of the
time. One temperature T, fitted on the validation split after training by minimising the negative
log-likelihood, divides the logits (here: the log-probabilities, which differ from the logits by a
constant per face, so any classifier and any test-time augmentation can be calibrated). T never
changes the predicted class, only how sure the probabilities say it is.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    import torch

ECE_BINS = 15
T_RANGE = (0.05, 20.0)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T) for N×C probabilities; T = 1 returns them unchanged."""
    if temperature == 1.0:
        return probs
    logp = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    logp -= logp.max(axis=1, keepdims=True)
    scaled = np.exp(logp)
    return (scaled / scaled.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(probs: np.ndarray, labels: np.ndarray) -> float:
    """The T minimising the negative log-likelihood of `labels` under softmax(log p / T)."""
    import torch  # only for the fit: reading and applying calibrations needs no PyTorch

    logp = torch.log(torch.as_tensor(probs, dtype=torch.float64).clamp_min(1e-12))
    target = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) stays positive
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")

    def nll() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logp / log_t.exp(), target)
        loss.backward()
        return loss

    optimizer.step(nll)
    return float(np.clip(log_t.exp().item(), *T_RANGE))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the confidence-vs-accuracy gap over equal-width confidence bins, weighted by bin size."""
    table = reliability_table(probs, labels, bins)
    if table["count"].sum() == 0:
        return 0.0
    gaps = (table["confidence"] - table["accuracy"]).abs() * table["count"]
    return float(gaps.sum() / table["count"].sum())


def reliability_table(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> "pd.DataFrame":
    """Per confidence bin: its range, mean confidence, accuracy and face count (empty bins kept, count 0)."""
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        n = int(members.sum())
        rows.append({"bin_low": edges[b], "bin_high": edges[b + 1], "count": n,
                     "confidence": float(confidence[members].mean()) if n else np.nan,
                     "accuracy": float(correct[members].mean()) if n else np.nan})
    import pandas as pd  # only the reliability table needs it; predictions stay pandas-free

    table = pd.DataFrame(rows)
    return table.fillna({"confidence": 0.0, "accuracy": 0.0})


def calibration_metrics(probs: np.ndarray, labels: np.ndarray, temperature: float) -> dict:
    """ECE of the (calibrated) probabilities and of the same probabilities before calibration."""
    raw = apply_temperature(probs, 1.0 / temperature) if temperature != 1.0 else probs
    return {"ece": expected_calibration_error(probs, labels), "ece_uncalibrated": expected_calibration_error(raw, labels),
            "temperature": float(temperature)}
