"""Knowledge distillation (Hinton et al., 2015): a student trained on a teacher's probabilities.

`distill.teacher` names one or more runs ("default" = the shipped model; several = their ensemble). Before
the first epoch the teacher predicts every training face once, as the product would (calibrated, with
`distill.tta`, on the fastest engine), and each face's target becomes

    weight · softmax(log p_teacher / temperature) + (1 − weight) · one-hot(label)

so the usual cross-entropy (label smoothing included) trains the student towards both. The teacher sees
the unaugmented faces: predicting once, not per augmented batch, keeps a CPU distillation about as cheap
as a plain run, and the augmentations are mild enough that a face's target still holds for its crops.

With `distill.consistent` the teacher instead predicts every augmented batch, on the very faces the student
sees (`ConsistentTeacher` wraps the training batches): "consistent teaching" (Beyer et al., 2022, "Knowledge
distillation: a good teacher is patient and consistent"). Under heavy augmentation a face's crop, rotation
or erased patch can change what the teacher would say; this costs a teacher forward pass per batch.
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
    if cfg.distill.consistent and cfg.distill.tta == "tencrop":
        problems.append("distill.consistent teaches on the augmented batch itself: use distill.tta none or flip")
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


class ConsistentTeacher:
    """Training batches whose targets the teacher predicts on the augmented faces of each batch."""

    def __init__(self, batches: Any, teachers: List[Any], weight: float, temperature: float, tta: str,
                 num_classes: int, device: Any, amp_dtype: Any = None) -> None:
        self.batches, self.teachers, self.tta = batches, teachers, tta
        self.weight, self.temperature, self.num_classes = weight, temperature, num_classes
        self.device, self.amp_dtype = device, amp_dtype

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for x, y in self.batches:
            x = x.to(self.device, non_blocking=True)
            yield x, self.targets(x, y.to(self.device, non_blocking=True))

    def teacher_probabilities(self, x: Any) -> Any:
        """The teachers' calibrated probabilities of uint8 N×1×H×W faces, averaged (as `Ensemble` does)."""
        import torch

        from fer.data.preprocess import to_model_input
        from fer.training.loops import autocast

        probs = []
        with torch.no_grad(), autocast(self.device, self.amp_dtype):
            for teacher in self.teachers:
                views = [x, x.flip(-1)] if self.tta == "flip" else [x]
                # Views average as logits, then the teacher's temperature for that mode: as it predicts.
                logits = torch.stack([teacher.forward(to_model_input(v, teacher.spec)).float() for v in views])
                probs.append(torch.softmax(logits.mean(0) / teacher.temperature, dim=1))
        return torch.stack(probs).mean(0)

    def targets(self, x: Any, y: Any) -> Any:
        """weight · the teachers' probabilities softened by `temperature` + (1 − weight) · the labels."""
        import torch

        soft = self.teacher_probabilities(x)
        if self.temperature != 1.0:
            soft = torch.softmax(torch.log(soft.clamp_min(1e-12)) / self.temperature, dim=1)
        labels = y.float() if y.ndim == 2 else torch.nn.functional.one_hot(y, self.num_classes).float()
        return self.weight * soft + (1.0 - self.weight) * labels


def consistent_teacher(cfg: RunConfig, run_data: RunData, batches: Any, device: Any,
                       amp_dtype: Any = None) -> ConsistentTeacher:
    """Wrap the training batches so each one's targets come from the teacher (`distill.consistent`)."""
    from fer.inference.predictor import Predictor

    runs_dir = Path(cfg.runs_dir) if cfg.runs_dir else None
    teachers = []
    for name in cfg.distill.teacher:
        folder = SHIPPED_RUN_DIR if name == "default" else resolve_run(name, runs_dir)
        teacher = Predictor.from_checkpoint(folder / "best.pt", tta=cfg.distill.tta, device=device)
        if list(teacher.class_names) != list(run_data.class_names):
            raise ConfigError(f"distill.teacher {name!r} predicts {teacher.class_names}; this run trains "
                              f"{list(run_data.class_names)}")
        for p in teacher.model.parameters():
            p.requires_grad_(False)
        teachers.append(teacher)
    return ConsistentTeacher(batches, teachers, cfg.distill.weight, cfg.distill.temperature, cfg.distill.tta,
                             run_data.num_classes, device, amp_dtype)
