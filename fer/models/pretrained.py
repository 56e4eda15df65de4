"""ImageNet weights for the transfer models: torchvision's download or cache, or one checked file.

A model registered with `imagenet=<torchvision Weights>` takes `pretrained=True` (torchvision's cache,
downloading once when it can) or `weights_path=FILE` (for machines without internet: copy that one file).
A file is checked before it is used: its tensors must have the torchvision network's names and shapes,
and a file that carries torchvision's own name must have torchvision's published SHA-256 prefix (which
catches a truncated or damaged download). `check_pretrained` runs the same route when a run is checked,
so a run that cannot get its weights stops before its run folder exists.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, Dict, Mapping

import torch

from fer.core.errors import UserError
from fer.models._registry import MODELS


class PretrainedWeightsError(UserError, RuntimeError):
    """ImageNet weights were asked for but could not be found, downloaded or used."""


def published_name(weights) -> str:
    """The file name torchvision publishes the weights under, e.g. resnet34-b627a593.pth."""
    return weights.url.rsplit("/", 1)[-1]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected_shapes(weights) -> Dict[str, torch.Size]:
    """The torchvision network's tensor shapes, built on the meta device (nothing allocated)."""
    import torchvision

    arch = next(a for a in torchvision.models.list_models(module=torchvision.models)
                if torchvision.models.get_model_weights(a) is type(weights))
    builder = torchvision.models.get_model_builder(arch)
    with torch.device("meta"):
        return {k: v.shape for k, v in builder(weights=None).state_dict().items()}


def read_weights_file(path: Path, weights) -> Dict[str, torch.Tensor]:
    """The state dict in `path`, once its hash (for torchvision's own file name) and its shapes check out."""
    if not path.is_file():
        raise PretrainedWeightsError(f"weights_path {path} does not exist")
    prefix = re.search(r"-([0-9a-f]{8,})\.pth$", published_name(weights))
    if path.name == published_name(weights) and prefix and not _sha256(path).startswith(prefix.group(1)):
        raise PretrainedWeightsError(f"weights_path {path} is not torchvision's published file (its SHA-256 does "
                                     f"not start with {prefix.group(1)}): a damaged or partial download?")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # not a PyTorch file, or one holding more than tensors
        raise PretrainedWeightsError(f"weights_path {path} is not a PyTorch weights file "
                                     f"({type(e).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, Mapping):
        raise PretrainedWeightsError(f"weights_path {path} holds no state dict")
    wrong = [k for k, shape in _expected_shapes(weights).items()
             if not (k in state and isinstance(state[k], torch.Tensor) and state[k].shape == shape)]
    if wrong:
        raise PretrainedWeightsError(f"weights_path {path} does not hold the weights of "
                                     f"{published_name(weights)}: {len(wrong)} tensors missing or of another "
                                     f"shape (first: {', '.join(wrong[:3])})")
    return dict(state)


def imagenet_state_dict(weights, weights_path: str = "") -> Dict[str, torch.Tensor]:
    """ImageNet weights from `weights_path`, else torchvision's cache or download; a clear error offline."""
    if weights_path:
        return read_weights_file(Path(weights_path).expanduser(), weights)
    try:
        return weights.get_state_dict(progress=False)
    except Exception as e:  # URLError, socket errors, HTTP errors: all mean "not reachable"
        raise PretrainedWeightsError(
            f"could not get ImageNet weights from {weights.url} ({type(e).__name__}: {e}). Download that file "
            f"where you have internet and pass --set model.kwargs.weights_path=/path/to/{published_name(weights)}, "
            f"or put it in the torch hub cache ({torch.hub.get_dir()}/checkpoints/), or train with pretrained=false."
        ) from e


def with_imagenet(model, weights, pretrained: bool, weights_path: str = ""):
    """`model` with ImageNet's weights copied in (its own `load_imagenet`) when asked for, else as built."""
    if pretrained or weights_path:
        model.load_imagenet(imagenet_state_dict(weights, weights_path))
    return model


def check_pretrained(name: str, kwargs: Mapping[str, Any]) -> None:
    """Make sure the weights a model's kwargs ask for can be had (downloading them once if they can)."""
    if not (kwargs.get("pretrained") or kwargs.get("weights_path")):
        return
    weights = MODELS.info(name).get("imagenet")
    if weights is None:
        raise PretrainedWeightsError(f"model {name} has no ImageNet weights; models that do: "
                                     f"{', '.join(n for n in MODELS.names() if MODELS.info(n).get('imagenet'))}")
    imagenet_state_dict(weights, str(kwargs.get("weights_path") or ""))
