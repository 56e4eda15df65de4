"""Knowledge distillation (Hinton et al., 2015): a student trained on a teacher's probabilities.

`distill.teacher` names one or more runs ("default" = the shipped model; several = their ensemble). Before
the first epoch the teacher predicts every training face once, as the product would (calibrated, with
`distill.tta`, on the fastest engine), and each face's target becomes

    weight · softmax(log p_teacher / temperature) + (1 − weight) · one-hot(label)

so the usual cross-entropy (label smoothing included) trains the student towards both. The teacher sees
the unaugmented faces: predicting once, not per augmented batch, keeps a CPU distillation about as cheap
as a plain run, and the augmentations are mild enough that a face's target still holds for its crops.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from fer.config import ConfigError, RunConfig
from fer.data import RunData
from fer.inference.classifiers import load_ensemble, run_kind
from fer.metrics.calibration import apply_temperature
from fer.runs.store import SHIPPED_RUN_DIR, resolve_run


def teacher_problems(cfg: RunConfig) -> List[str]:
    """Why `distill.teacher` cannot teach this run (empty when it can or when nothing distils)."""
    if not cfg.distill.teacher:
        return []
    if cfg.data.labels == "ferplus":
        return ["distill.teacher replaces the training targets; with data.labels=ferplus the FER+ votes are the "
                "targets (train on FER2013 labels to distil)"]
    problems = []
    for name in cfg.distill.teacher:
        try:
            folder = SHIPPED_RUN_DIR if name == "default" else resolve_run(name, Path(cfg.runs_dir) if cfg.runs_dir
                                                                           else None)
        except (FileNotFoundError, ValueError) as e:
            problems.append(f"distill.teacher {name!r}: {e}")
            continue
        if run_kind(folder) != "checkpoint":
            problems.append(f"distill.teacher {name!r} holds no trained image model yet")
    return problems


def check_teacher(cfg: RunConfig) -> None:
    """ConfigError when `distill.teacher` names a run that cannot teach this one."""
    problems = teacher_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))


def teacher_targets(cfg: RunConfig, run_data: RunData, threads: int = 0) -> Dict[str, Any]:
    """The training faces' targets from the teacher, and how good the teacher is on validation."""
    runs_dir = Path(cfg.runs_dir) if cfg.runs_dir else None
    teacher = load_ensemble(list(cfg.distill.teacher), runs_dir, cfg.distill.tta, backend="auto",
                            **({"threads": threads} if threads else {}))
    if list(teacher.class_names) != list(run_data.class_names):
        raise ConfigError(f"distill.teacher predicts {list(teacher.class_names)}; this run trains "
                          f"{list(run_data.class_names)}")
    data, splits = run_data.data, run_data.splits
    probs = teacher.predict_faces(data.images[splits.train])
    targets = mix_targets(probs, data.labels[splits.train], cfg.distill.weight, cfg.distill.temperature)
    val_accuracy: Optional[float] = None
    if len(splits.val):
        val_probs = teacher.predict_faces(data.images[splits.val])
        val_accuracy = float((val_probs.argmax(1) == data.labels[splits.val]).mean())
    agreement = float((probs.argmax(1) == data.labels[splits.train]).mean())
    return {"targets": targets, "teacher": teacher.name, "backend": teacher.backend,
            "val_accuracy": val_accuracy, "train_agreement": agreement}


def mix_targets(teacher_probs: np.ndarray, labels: np.ndarray, weight: float, temperature: float) -> np.ndarray:
    """weight · the teacher's probabilities softened by `temperature` + (1 − weight) · the one-hot labels."""
    soft = apply_temperature(np.asarray(teacher_probs, np.float32), temperature)
    one_hot = np.eye(soft.shape[1], dtype=np.float32)[np.asarray(labels)]
    return (weight * soft + (1.0 - weight) * one_hot).astype(np.float32)
