"""Why a model decides: class activation maps (via the `grad-cam` package) and built-in attention.

`explain_faces` runs Grad-CAM, Grad-CAM++, LayerCAM or EigenCAM at the model's declared
`cam_layer` (or any named layer) for the predicted or a chosen class. Hooks are always released,
also when the model raises. `attention_views` returns what attention models show themselves:
CBAM's spatial maps and Deep-Emotion's spatial-transformer output.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from fer.core.registry import Registry
from fer.data.preprocess import faces_to_model_input

CAM_METHODS: Registry[type] = Registry("CAM method")
CAM_METHODS.register("gradcam", title="Grad-CAM", class_sensitive=True)(GradCAM)
CAM_METHODS.register("gradcam++", title="Grad-CAM++", class_sensitive=True)(GradCAMPlusPlus)
CAM_METHODS.register("layercam", title="LayerCAM", class_sensitive=True)(LayerCAM)
# EigenCAM shows the layer's first principal component: the same map whatever class is asked for.
CAM_METHODS.register("eigencam", title="EigenCAM (class-agnostic)", class_sensitive=False)(EigenCAM)
DEFAULT_CAM_METHOD = "gradcam"


def cam_methods() -> list:
    """The CAM methods for a chooser: the default (class-sensitive) first."""
    return [DEFAULT_CAM_METHOD] + [m for m in CAM_METHODS.names() if m != DEFAULT_CAM_METHOD]


def is_class_sensitive(method: str) -> bool:
    """Whether the method's map depends on the class it explains (EigenCAM's does not)."""
    return bool(CAM_METHODS.info(method)["class_sensitive"])


def cam_caption(method: str, explained_class: str) -> str:
    """What a CAM overlay shows, in words: the class it explains, or that it is class-agnostic."""
    title = CAM_METHODS.info(method)["title"]
    return f"{title} of {explained_class}" if is_class_sensitive(method) else title


@contextmanager
def cam_extractor(model: torch.nn.Module, method: str = "gradcam", layer: Optional[str] = None) -> Iterator:
    """A grad-cam object hooked on `layer` (default: the model's cam_layer); hooks released on exit."""
    target = model.get_submodule(layer or model.cam_layer)
    cam = CAM_METHODS.get(method)(model=model, target_layers=[target])
    try:
        yield cam
    finally:
        cam.activations_and_grads.release()


def _class_index(target: int | str | None, class_names: Sequence[str]) -> Optional[int]:
    if target is None or isinstance(target, int):
        return target
    return list(class_names).index(target)


def explain_faces(predictor, faces: np.ndarray, method: str = "gradcam", target: int | str | None = None,
                  layer: Optional[str] = None) -> tuple:
    """(heatmaps N×48×48 in 0..1, explained class indices) for uint8 N×48×48 faces (array or list)."""
    model, spec = predictor.model, predictor.spec
    faces = np.ascontiguousarray(np.asarray(faces, dtype=np.uint8))
    x = faces_to_model_input(faces, spec).to(next(model.parameters()).device)
    with torch.no_grad():
        predicted = model(x).argmax(1).tolist()
    index = _class_index(target, predictor.class_names)
    classes = predicted if index is None else [index] * len(faces)
    with cam_extractor(model, method, layer) as cam:
        maps = cam(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in classes])
    maps = np.asarray(maps, dtype=np.float32)
    if maps.shape[-1] != faces.shape[-1]:
        maps = np.stack([cv2.resize(m, faces.shape[1:][::-1], interpolation=cv2.INTER_LINEAR) for m in maps])
    return np.clip(maps, 0.0, 1.0), classes


def overlay(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45, size: int = 192) -> np.ndarray:
    """An RGB image: the (gray or RGB) face upscaled to `size` with the heatmap in the jet colour map on top."""
    base = face if face.ndim == 3 else cv2.cvtColor(face, cv2.COLOR_GRAY2RGB)
    base = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
    heat = cv2.resize(heatmap.astype(np.float32), (size, size), interpolation=cv2.INTER_LINEAR)
    colour = cv2.cvtColor(cv2.applyColorMap(np.uint8(255 * np.clip(heat, 0, 1)), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(base, 1.0 - alpha, colour, alpha, 0)


@torch.no_grad()
def attention_views(predictor, faces: np.ndarray) -> Dict[str, np.ndarray]:
    """Built-in attention, as N×48×48 arrays in 0..1: CBAM maps per block, Deep-Emotion's warped input."""
    model, spec = predictor.model, predictor.spec
    faces = np.ascontiguousarray(np.asarray(faces, dtype=np.uint8))
    x = faces_to_model_input(faces, spec).to(next(model.parameters()).device)
    size = faces.shape[1:]
    views: Dict[str, np.ndarray] = {}
    if hasattr(model, "attention_maps"):
        for i, m in enumerate(model.attention_maps(x)):
            views[f"CBAM block {i + 1}"] = F.interpolate(m.float(), size=size, mode="bilinear",
                                                         align_corners=False)[:, 0].cpu().numpy()
    if hasattr(model, "warp"):
        warped = model.warp(x).float()[:, :1] * spec.std + spec.mean  # back to the 0..1 pixel scale
        views["spatial transformer output"] = F.interpolate(warped, size=size, mode="bilinear",
                                                            align_corners=False)[:, 0].clamp(0, 1).cpu().numpy()
    return views
