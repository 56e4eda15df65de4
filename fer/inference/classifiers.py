"""A run's classifier, whatever kind of model it holds, and the model choices the UI offers.

Each kind of run registers how to recognise its folder (the file its trained model lives in) and
how to load it; callers never branch on the kind. Today: CNN checkpoints (`best.pt`, loaded as a
`Predictor`) and MediaPipe-feature classifiers (`classifier.json`, a `BlendshapePredictor`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from fer.inference import blendshapes
from fer.inference.pipeline import Classifier
from fer.inference.onnx import checkpoint_predictor
from fer.inference.predictor import Ensemble
from fer.core.registry import Registry
from fer.runs.store import SHIPPED_RUN_DIR, checkpoint_problem, default_runs_dir, resolve_run

# kind -> loader(run_dir, name, checkpoint, **options); `marker` is the file that makes a folder that kind.
RUN_KINDS: Registry[Callable[..., Classifier]] = Registry("run kind")


@RUN_KINDS.register("checkpoint", marker="best.pt")
def _load_checkpoint_run(run_dir: Path, name: str, checkpoint: str = "best", backend: str = "torch",
                         **options: Any) -> Classifier:
    path = run_dir / f"{checkpoint}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (has the run finished an epoch?)")
    return checkpoint_predictor(path, backend, name=name, **options)


@RUN_KINDS.register(blendshapes.KIND, marker=blendshapes.META_FILE)
def _load_blendshape_run(run_dir: Path, name: str, checkpoint: str = "best", backend: str = "torch",
                         **options: Any) -> Classifier:
    # One fitted classifier per run: no checkpoints to choose, and test-time augmentation does not apply.
    return blendshapes.BlendshapePredictor(blendshapes.BlendshapeClassifier.load(run_dir), name=name)


def run_kind(run_dir: Path) -> Optional[str]:
    """The kind of trained model a run folder holds, or None when it holds none yet."""
    return next((kind for kind in RUN_KINDS if (Path(run_dir) / RUN_KINDS.info(kind)["marker"]).is_file()), None)


def load_classifier(run: str | Path | None = None, runs_dir: Optional[Path] = None, checkpoint: str = "best",
                    **options: Any) -> Classifier:
    """The classifier of a run (id, unique part of one, or folder); None or "default" = the shipped model.

    `options` go to the loader (for CNNs: tta, device, batch_size, and backend: torch, onnx or auto, the
    fastest available, see fer.inference.onnx).
    """
    if run is None or str(run) == "default":
        run_dir, name = SHIPPED_RUN_DIR, "default"
    else:
        run_dir = resolve_run(run, runs_dir)
        name = run_dir.name
    kind = run_kind(run_dir)
    if kind is None:
        raise FileNotFoundError(f"{run_dir} holds no trained model yet (has the run finished an epoch?)")
    return RUN_KINDS.get(kind)(run_dir, name, checkpoint, **options)


def available_models(runs_dir: Optional[Path] = None) -> List[str]:
    """Model choices for the UI: "default" (when shipped), then local runs with a usable model, newest first."""
    root = Path(runs_dir or default_runs_dir())
    runs = sorted((p.name for p in _model_runs(root) if not checkpoint_problem(p / "best.pt")), reverse=True)
    return (["default"] if run_kind(SHIPPED_RUN_DIR) else []) + runs


def unusable_models(runs_dir: Optional[Path] = None) -> Dict[str, str]:
    """Runs whose model file cannot load, run id -> why (pages list them instead of offering them)."""
    root = Path(runs_dir or default_runs_dir())
    return {p.name: problem for p in _model_runs(root) if (problem := checkpoint_problem(p / "best.pt"))}


def _model_runs(root: Path) -> List[Path]:
    return [p for p in root.glob("*") if p.is_dir() and not p.is_symlink() and run_kind(p)] if root.is_dir() else []


def load_ensemble(names: Sequence[str], runs_dir: Optional[Path] = None, tta: str = "none",
                  **options: Any) -> Classifier:
    """One classifier or an ensemble from UI choices ("default" = the shipped model)."""
    members = [load_classifier(n, runs_dir, tta=tta, **options) for n in names]
    if not members:
        raise ValueError("choose at least one model")
    return members[0] if len(members) == 1 else Ensemble(members)
