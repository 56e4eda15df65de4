"""Self-describing checkpoints that load with `torch.load(weights_only=True)`.

A checkpoint holds everything needed to rebuild and use the model with no other file: format
version, model name and kwargs, class names, preprocessing, the unwrapped model's state dict,
metrics and the run config (plus optimizer/scheduler state for resuming).

A released checkpoint may hold its weights compactly (`compact_checkpoint`): every floating tensor of
two or more dimensions as int8 with one fp32 scale per output channel, under "int8_scales". Loading
turns them back into fp32 (`float_state_dict`), so every consumer sees an ordinary model.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import torch
import torch.nn as nn

from fer.core.errors import CheckpointError
from fer.core.files import checkpoint_file_problem
from fer.data.preprocess import Preprocessing
from fer.models import create_model

FORMAT_VERSION = 1


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DataParallel wrappers."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def checkpoint_payload(model: nn.Module, config: Dict[str, Any], class_names: Sequence[str],
                       preprocessing: Preprocessing, epoch: int, metrics: Dict[str, Any],
                       training_state: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Everything a checkpoint holds (the run writer saves it atomically)."""
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": config["model"]["name"], "kwargs": dict(config["model"]["kwargs"]),
                  "num_classes": len(class_names), "in_chans": preprocessing.in_chans},
        "class_names": list(class_names),
        "preprocessing": preprocessing.to_dict(),
        "state_dict": unwrap_model(model).state_dict(),
        "epoch": epoch,
        "metrics": metrics,
        "config": config,
        "training_state": training_state or {},
    }


REQUIRED_KEYS = ("model", "class_names", "preprocessing", "state_dict")
INT8_SCALES = "int8_scales"


def compact_checkpoint(ckpt: Dict[str, Any]) -> Dict[str, Any]:
    """The checkpoint with conv/linear weights as int8 (symmetric, one scale per output channel), no training state.

    A quarter of the fp32 bytes: what lets several models ship within the package's size limit. Biases and
    normalisation statistics stay fp32; they are a small part of the bytes and sensitive to rounding.
    """
    state, scales = {}, {}
    for key, tensor in float_state_dict(ckpt).items():
        if tensor.is_floating_point() and tensor.dim() >= 2:
            peak = tensor.detach().abs().flatten(1).amax(dim=1).float()
            scale = torch.where(peak > 0, peak / 127.0, torch.ones_like(peak))
            state[key] = torch.round(tensor.float() / _per_channel(scale, tensor)).clamp(-127, 127).to(torch.int8)
            scales[key] = scale
        else:
            state[key] = tensor
    return {**ckpt, "state_dict": state, INT8_SCALES: scales, "training_state": {}}


def _per_channel(scale: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return scale.view(-1, *([1] * (like.dim() - 1)))


def float_state_dict(ckpt: Dict[str, Any]) -> Dict[str, torch.Tensor]:
    """The checkpoint's state dict in floating point: int8-stored weights times their per-channel scales."""
    state, scales = ckpt["state_dict"], ckpt.get(INT8_SCALES) or {}
    if not isinstance(state, dict) or not isinstance(scales, dict):
        raise CheckpointError("checkpoint's state dict or its int8 scales are not mappings")
    out = dict(state)
    for key, scale in scales.items():
        held = state.get(key)
        if not (isinstance(held, torch.Tensor) and isinstance(scale, torch.Tensor) and held.dtype == torch.int8
                and held.dim() >= 2 and scale.dim() == 1 and scale.numel() == held.shape[0]
                and scale.is_floating_point() and bool(torch.isfinite(scale).all())):
            raise CheckpointError(f"checkpoint's int8 weights {str(key)[:80]!r} do not match their scales")
        out[key] = held.float() * _per_channel(scale.float(), held)
    return out


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> Dict[str, Any]:
    """Load a checkpoint safely (tensors and plain data only) and check its format version and keys.

    `weights_only=True` means a pickle that would import or call anything (a `__reduce__` payload) is
    refused by PyTorch's restricted unpickler before it runs; every failure becomes a one-line CheckpointError.
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file")
    try:
        if (problem := checkpoint_file_problem(path)) is not None:  # empty, or not torch.save's zip
            raise CheckpointError(f"{path}: unreadable checkpoint ({problem})")
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint file") from None
    except pickle.UnpicklingError as e:  # what weights_only refuses: code, or globals it does not allow
        raise CheckpointError(f"{path}: refused: it holds objects other than tensors and plain data "
                              f"({_refusal(e)})") from None
    except Exception as e:  # truncated zip, garbage bytes, a tensor for a device this machine lacks …
        raise CheckpointError(f"{path}: unreadable checkpoint ({type(e).__name__}: {_first_line(e)})") from None
    version = ckpt.get("format_version") if isinstance(ckpt, dict) else None
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a fer-studio checkpoint of format {FORMAT_VERSION} (found {version!r})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return ckpt


def _refusal(error: BaseException) -> str:
    """The line of PyTorch's long weights_only message that names what was refused."""
    lines = [line.strip() for line in str(error).splitlines() if "Unsupported" in line or "WeightsUnpickler" in line]
    return (lines[0] if lines else _first_line(error))[:300]


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


# What a checkpoint may claim. Wide enough for every registered model (ResNet-34 or ConvNeXt-Tiny at 224,
# FER+ with 10 classes), far below what would make loading one allocate more than the file holds.
MAX_CLASSES = 1000
INPUT_SIZES = (8, 512)


def check_spec(ckpt: Dict[str, Any]) -> None:
    """CheckpointError unless the model spec, class names and preprocessing are plausible: before any allocation."""
    spec, names, prep = ckpt.get("model"), ckpt.get("class_names"), ckpt.get("preprocessing")
    if not isinstance(spec, dict) or not isinstance(spec.get("kwargs", {}), dict) or not isinstance(prep, dict):
        raise CheckpointError("checkpoint's model or preprocessing is not a mapping")
    if not isinstance(names, list) or not all(isinstance(n, str) and 0 < len(n) <= 64 for n in names):
        raise CheckpointError("checkpoint's class names are not a list of short strings")
    classes, chans, size = spec.get("num_classes"), spec.get("in_chans"), prep.get("input_size")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (classes, chans, size)):
        raise CheckpointError("checkpoint's num_classes, in_chans and input_size must be whole numbers")
    if not 2 <= classes <= MAX_CLASSES or classes != len(names):
        raise CheckpointError(f"checkpoint claims {classes} classes for {len(names)} class names "
                              f"(2 to {MAX_CLASSES} allowed)")
    if chans not in (1, 3) or prep.get("in_chans", chans) != chans:
        raise CheckpointError(f"checkpoint claims {chans} input channels (1 or 3 allowed)")
    if not INPUT_SIZES[0] <= size <= INPUT_SIZES[1]:
        raise CheckpointError(f"checkpoint claims {size}×{size} inputs ({INPUT_SIZES[0]} to {INPUT_SIZES[1]} allowed)")


def _build(spec: Dict[str, Any]) -> nn.Module:
    # The state dict holds every weight, so never fetch ImageNet weights again (it may be offline).
    kwargs = {k: v for k, v in spec["kwargs"].items() if k not in ("pretrained", "weights_path")}
    return create_model(spec["name"], num_classes=spec["num_classes"], in_chans=spec["in_chans"], **kwargs)


def _check_sizes(ckpt: Dict[str, Any]) -> None:
    """Build the model on the meta device (no memory) and check every tensor against the state dict's."""
    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in _build(ckpt["model"]).state_dict().items()}
    held = ckpt["state_dict"]
    if not isinstance(held, dict) or not all(isinstance(v, torch.Tensor) for v in held.values()):
        raise CheckpointError("checkpoint's state dict is not a mapping of tensors")
    wrong = [k for k, shape in shapes.items() if k in held and tuple(held[k].shape) != shape]
    missing = [k for k in shapes if k not in held]
    if wrong or missing:
        first = (wrong or missing)[0]
        raise CheckpointError(f"checkpoint's weights do not fit its model {ckpt['model']['name']!r} "
                              f"({len(wrong)} of another shape, {len(missing)} missing, e.g. {first[:80]!r})")


def model_from_checkpoint(ckpt: Dict[str, Any]) -> nn.Module:
    """Rebuild the model from a loaded checkpoint alone, in eval mode.

    Its claims are checked first (bounds, then every tensor's shape on the meta device), so a small
    file that describes a huge model is refused without allocating it.
    """
    check_spec(ckpt)
    spec = ckpt["model"]
    try:
        _check_sizes(ckpt)
        model = _build(spec)
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure of a model's constructor on a checkpoint's kwargs
        raise CheckpointError(f"checkpoint's model cannot be built ({type(e).__name__}: {_first_line(e)})") from None
    try:
        model.load_state_dict(float_state_dict(ckpt))
    except (RuntimeError, TypeError, AttributeError) as e:
        # load_state_dict lists every missing and unexpected key over many lines: keep the gist.
        missing = getattr(e, "args", [""])[0].count("Missing key") if isinstance(e, RuntimeError) else 0
        raise CheckpointError(f"checkpoint's weights do not fit its model {spec['name']!r} "
                              f"({_first_line(e)}{'…' if missing else ''})") from None
    return model.eval()


def preprocessing_from_checkpoint(ckpt: Dict[str, Any]) -> Preprocessing:
    """The preprocessing the checkpoint's model was trained with."""
    return Preprocessing(**ckpt["preprocessing"])
