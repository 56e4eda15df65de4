"""A run's classifier, whatever kind of model it holds and whichever engine runs it, and the UI's model choices.

Each kind of run registers how to recognise its folder (the file its trained model lives in) and
how to load it; callers never branch on the kind. Today: CNN checkpoints (`best.pt`, loaded as a
`Predictor`) and MediaPipe-feature classifiers (`classifier.json`, a `BlendshapePredictor`).

`BACKENDS` names how a checkpoint run is executed: `torch`, `onnx` (an fp32 export, made once and cached
under the cache folder) and `auto`, the fastest available: the run's own int8 export (`model.int8.onnx`,
written by `fer export RUN --int8`, shipped for the default model) when ONNX Runtime is installed and the
export matches the checkpoint, else the fp32 export, else PyTorch. Every model load goes through here.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence

from fer.core.errors import CheckpointError
from fer.core.files import sha256_of
from fer.core.registry import Registry
from fer.inference import blendshapes
from fer.inference.averaging import DEFAULT_TTA, Ensemble
from fer.inference.onnx import FP32_FILE, INT8_FILE, OnnxPredictor, onnx_available
from fer.inference.pipeline import Classifier
from fer.runs.store import (
    SHIPPED_RUN_DIR,
    checkpoint_problem,
    default_runs_dir,
    resolve_run,
)

if TYPE_CHECKING:  # PyTorch loads only when a model runs on it: the ONNX path never imports it
    from fer.inference.predictor import Predictor

BACKENDS = ("auto", "torch", "onnx")
log = logging.getLogger(__name__)

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


def checkpoint_predictor(checkpoint: Path, backend: str = "torch", **options: Any) -> Classifier:
    """The checkpoint's predictor on `backend` (auto: the fastest available; see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    checkpoint = Path(checkpoint)
    torch_options = {k: v for k, v in options.items() if k != "threads"}  # PyTorch keeps the caller's threads
    if backend == "torch" or (backend == "auto" and not onnx_available()):
        return _torch_predictor(checkpoint, torch_options)
    onnx_options = {k: v for k, v in options.items() if k in ("tta", "batch_size", "threads")}
    onnx_options["name"] = options.get("name") or checkpoint.parent.name
    digest = sha256_of(checkpoint)
    if backend == "auto" and checkpoint.name == "best.pt":
        beside = _matching_export(checkpoint, digest, onnx_options)
        if beside is not None:
            return beside
    from fer.inference.export import cached_export  # only when an export must be made

    if backend == "onnx":
        return OnnxPredictor(cached_export(checkpoint, digest), **onnx_options)
    try:
        return OnnxPredictor(cached_export(checkpoint, digest), **onnx_options)
    except (CheckpointError, OSError):
        raise  # a refused or unreadable checkpoint is the user's answer, not a reason to try PyTorch
    except Exception as e:  # noqa: BLE001 - a model the exporter cannot handle still predicts
        log.warning("ONNX export of %s failed (%s); using PyTorch", checkpoint, e)
        return _torch_predictor(checkpoint, torch_options)


def _torch_predictor(checkpoint: Path, options: Dict[str, Any]) -> "Predictor":
    from fer.inference.predictor import Predictor

    return Predictor.from_checkpoint(checkpoint, **options)


def _matching_export(checkpoint: Path, digest: str, options: Dict[str, Any]) -> Optional[OnnxPredictor]:
    """The run's own export beside `checkpoint` (int8 first), when it was made from this very file."""
    for candidate in (checkpoint.parent / INT8_FILE, checkpoint.parent / FP32_FILE):
        if not candidate.is_file():
            continue
        try:
            predictor = OnnxPredictor(candidate, **options)
        except Exception:  # noqa: BLE001 - a damaged export: the next choice serves
            continue
        if predictor.metadata.get("fer.source_sha256") == digest:  # a retrained best.pt makes it stale
            return predictor
    return None


def run_kind(run_dir: Path) -> Optional[str]:
    """The kind of trained model a run folder holds, or None when it holds none yet."""
    return next((kind for kind in RUN_KINDS if (Path(run_dir) / RUN_KINDS.info(kind)["marker"]).is_file()), None)


def load_classifier(run: str | Path | None = None, runs_dir: Optional[Path] = None, checkpoint: str = "best",
                    **options: Any) -> Classifier:
    """The classifier of a run (id, unique part of one, or folder); None or "default" = the shipped model.

    `options` go to the loader (for CNNs: tta, default flip, see fer.inference.averaging; device,
    batch_size, and backend: torch, onnx or auto, the fastest available, see fer.inference.onnx).
    """
    options.setdefault("tta", DEFAULT_TTA)
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


def load_ensemble(names: Sequence[str], runs_dir: Optional[Path] = None, tta: str = DEFAULT_TTA,
                  **options: Any) -> Classifier:
    """One classifier or an ensemble from UI choices ("default" = the shipped model)."""
    members = [load_classifier(n, runs_dir, tta=tta, **options) for n in names]
    if not members:
        raise ValueError("choose at least one model")
    return members[0] if len(members) == 1 else Ensemble(members)
