"""Draw predictions on an image: a box and label per face and a small probability bar chart."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

# One colour per FER2013 class (RGB), reused by the dashboard's charts.
CLASS_COLOURS = {"angry": (220, 50, 47), "disgust": (133, 153, 0), "fear": (108, 113, 196),
                 "happy": (255, 193, 7), "sad": (38, 139, 210), "surprise": (211, 54, 130),
                 "neutral": (147, 161, 161), "contempt": (181, 137, 0)}  # contempt: FER+ only


def _colour(name: str) -> tuple:
    return CLASS_COLOURS.get(name, (0, 200, 0))


def annotate(rgb: np.ndarray, prediction, bars: bool = True, fps: float | None = None,
             numbers: Sequence[int] | None = None) -> np.ndarray:
    """A copy of the RGB image with every face boxed, numbered (#1 is the largest, as in the tables, or the
    given `numbers`, e.g. video track ids) and labelled, and its top-3 probabilities as bars."""
    out = np.ascontiguousarray(rgb.copy())
    height, width = out.shape[:2]
    scale = max(0.4, min(width, height) / 640)
    thick = max(1, int(round(2 * scale)))
    numbered = len(prediction.faces) > 1 or numbers is not None
    for number, face in zip(numbers or range(1, len(prediction.faces) + 1), prediction.faces):
        x, y, w, h = face.box
        colour = _colour(face.label)
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, thick)
        text = (f"#{number} " if numbered else "") + f"{face.label} {face.confidence:.0%}"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, thick)
        ty = y - 4 if y - th - 8 >= 0 else y + h + th + 4
        cv2.rectangle(out, (x, ty - th - 4), (x + tw + 4, ty + base - 2), colour, -1)
        cv2.putText(out, text, (x + 2, ty - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thick, cv2.LINE_AA)
        if bars:
            top3 = sorted(face.probabilities.items(), key=lambda kv: kv[1], reverse=True)[:3]
            bar_h, bar_w = max(6, int(8 * scale)), max(30, w // 2)
            by = min(height - 3 * (bar_h + 2) - 1, y + h + (th + 8 if ty > y + h else 4))
            for i, (name, p) in enumerate(top3):
                y0 = max(0, by + i * (bar_h + 2))
                cv2.rectangle(out, (x, y0), (x + bar_w, y0 + bar_h), (40, 40, 40), -1)
                cv2.rectangle(out, (x, y0), (x + int(bar_w * p), y0 + bar_h), _colour(name), -1)
    if fps is not None:
        cv2.putText(out, f"{fps:.1f} FPS", (8, int(24 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.7 * scale,
                    (255, 255, 255), thick, cv2.LINE_AA)
    return out
