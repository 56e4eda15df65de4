"""From a detected face to the 48×48 gray crop the models see (then `to_model_input`)."""
from __future__ import annotations

import math

import cv2
import numpy as np

from fer.data.preprocess import face_to_uint8_48
from fer.inference.faces.detectors import Face


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """RGB (or already gray) uint8 → gray uint8; exact for gray images stored as RGB."""
    return rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def crop_face(gray: np.ndarray, face: Face, margin: float = 0.15, align: bool = False) -> np.ndarray:
    """A square 48×48 crop around `face`, widened by `margin` per side, optionally eye-line levelled.

    FER2013 faces are square and include the forehead and chin, hence the square, widened box.
    Pixels outside the image repeat the border, so faces at the edge keep their size.
    """
    x, y, w, h = face.box
    cx, cy = x + w / 2.0, y + h / 2.0
    side = max(w, h) * (1.0 + 2.0 * margin)
    if align and face.eyes is not None:
        (rx, ry), (lx, ly) = face.eyes
        # Rotate so the eye line is horizontal; the subject's right eye is on the image's left.
        angle = math.degrees(math.atan2(ly - ry, lx - rx))
        matrix = cv2.getRotationMatrix2D((cx, cy), angle, 1.0)
        gray = cv2.warpAffine(gray, matrix, (gray.shape[1], gray.shape[0]), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    half = side / 2.0
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    size = max(1, int(round(side)))
    pad = max(0, -x0, -y0, x0 + size - gray.shape[1], y0 + size - gray.shape[0])
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return face_to_uint8_48(gray[y0:y0 + size, x0:x0 + size])
