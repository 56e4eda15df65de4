"""The one preprocessing path from a grayscale face to a model input tensor.

Training, evaluation, photo upload, video, webcam, Grad-CAM and the ONNX export all end in
`to_model_input` (uint8 tensors, or uint8 arrays for the ONNX Runtime path, which needs no PyTorch) or
`faces_to_model_input` (uint8 arrays), so a face crop and the same FER2013 image give bit-identical
inputs. Augmentation happens before it, on uint8 images.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence, TypeVar

import cv2
import numpy as np

from fer.core.constants import IMAGE_SIZE, Preprocessing

if TYPE_CHECKING:
    import torch

Batch = TypeVar("Batch", np.ndarray, "torch.Tensor")


def to_model_input(batch: Batch, spec: Preprocessing) -> Batch:
    """uint8 N×1×H×W faces -> float32 N×C×S×S, normalised with the training statistics.

    A tensor stays a tensor on its device (training, evaluation, Grad-CAM); an array stays an array
    (ONNX Runtime). Both do the same float32 arithmetic in the same order: divide, resize, normalise."""
    if isinstance(batch, np.ndarray):
        return _array_model_input(batch, spec)
    import torch
    import torch.nn.functional as F

    if batch.dtype != torch.uint8:
        raise TypeError(f"to_model_input expects uint8 faces, got {batch.dtype}")
    x = batch.float().div_(255.0)
    if x.shape[-1] != spec.input_size or x.shape[-2] != spec.input_size:
        x = F.interpolate(x, size=(spec.input_size, spec.input_size), mode="bilinear", align_corners=False)
    x = (x - spec.mean) / spec.std
    if spec.in_chans != x.shape[1]:
        x = x.expand(-1, spec.in_chans, -1, -1)
    return x


def _array_model_input(batch: np.ndarray, spec: Preprocessing) -> np.ndarray:
    if batch.dtype != np.uint8 or batch.ndim != 4:
        raise TypeError(f"to_model_input expects uint8 N×1×H×W faces, got {batch.dtype} {batch.shape}")
    x = batch.astype(np.float32) / np.float32(255.0)
    size = spec.input_size
    if x.shape[-1] != size or x.shape[-2] != size:
        # OpenCV's bilinear resize samples at pixel centres, as F.interpolate(align_corners=False) does.
        x = np.stack([[cv2.resize(plane, (size, size), interpolation=cv2.INTER_LINEAR) for plane in face]
                      for face in x])
    x = (x - np.float32(spec.mean)) / np.float32(spec.std)
    if spec.in_chans != x.shape[1]:
        x = np.repeat(x, spec.in_chans, axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def faces_to_model_input(faces: np.ndarray | Sequence[np.ndarray], spec: Preprocessing) -> "torch.Tensor":
    """uint8 N×48×48 faces (an array or a list of crops) -> the model's float N×C×S×S input tensor."""
    import torch

    batch = np.ascontiguousarray(np.asarray(faces, dtype=np.uint8))
    return to_model_input(torch.from_numpy(batch)[:, None], spec)


def face_to_uint8_48(face: np.ndarray) -> np.ndarray:
    """A gray face crop of any size (uint8 H×W) -> 48×48 uint8 gray, as FER2013 stores faces."""
    if face.dtype != np.uint8 or face.ndim != 2:
        raise TypeError(f"face crops must be uint8 gray H×W, got {face.dtype} {face.shape}")
    if face.shape != (IMAGE_SIZE, IMAGE_SIZE):
        face = cv2.resize(face, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(face)
