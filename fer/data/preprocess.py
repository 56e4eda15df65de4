"""The one preprocessing path from a grayscale face to a model input tensor.

Training, evaluation, photo upload, video, webcam, Grad-CAM and the ONNX export all end in
`to_model_input` (uint8 tensors) or `faces_to_model_input` (uint8 arrays), so a face crop and the same
FER2013 image give bit-identical tensors. Augmentation happens before it, on uint8 images.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fer.core.constants import IMAGE_SIZE, Preprocessing


def to_model_input(batch: torch.Tensor, spec: Preprocessing) -> torch.Tensor:
    """uint8 N×1×H×W faces -> float N×C×S×S, normalised with the training statistics."""
    if batch.dtype != torch.uint8:
        raise TypeError(f"to_model_input expects uint8 faces, got {batch.dtype}")
    x = batch.float().div_(255.0)
    if x.shape[-1] != spec.input_size or x.shape[-2] != spec.input_size:
        x = F.interpolate(x, size=(spec.input_size, spec.input_size), mode="bilinear", align_corners=False)
    x = (x - spec.mean) / spec.std
    if spec.in_chans != x.shape[1]:
        x = x.expand(-1, spec.in_chans, -1, -1)
    return x


def faces_to_model_input(faces: np.ndarray | Sequence[np.ndarray], spec: Preprocessing) -> torch.Tensor:
    """uint8 N×48×48 faces (an array or a list of crops) -> the model's float N×C×S×S input batch."""
    batch = np.ascontiguousarray(np.asarray(faces, dtype=np.uint8))
    return to_model_input(torch.from_numpy(batch)[:, None], spec)


def face_to_uint8_48(face: np.ndarray) -> np.ndarray:
    """A gray face crop of any size (uint8 H×W) -> 48×48 uint8 gray, as FER2013 stores faces."""
    if face.dtype != np.uint8 or face.ndim != 2:
        raise TypeError(f"face crops must be uint8 gray H×W, got {face.dtype} {face.shape}")
    if face.shape != (IMAGE_SIZE, IMAGE_SIZE):
        face = cv2.resize(face, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(face)
