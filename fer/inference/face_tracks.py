"""Faces followed across video frames: IoU matching gives each face a stable track id.

Detection runs per frame and knows nothing of earlier frames, so "face #1" would jump between people.
`FaceTracker.update` matches this frame's boxes to the live tracks by box overlap (IoU, solved as an
assignment so two nearby faces never swap greedily), starts a track for each unmatched box, and retires
a track unseen for `max_missed` analysed frames. Optionally it smooths each track's probabilities with an
exponential moving average, which steadies a label flickering between two close classes.

It keeps only running totals per track (frames, label counts, probability sums), so memory stays flat
however long the video is.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

Box = Tuple[int, int, int, int]  # x, y, width, height


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two x, y, w, h boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One face over time: where it was last seen, its smoothed probabilities and running totals."""

    id: int
    box: Box
    last_frame: int
    first_time: float
    last_time: float
    smoothed: np.ndarray
    label_counts: np.ndarray
    prob_sum: np.ndarray
    frames: int = 1


@dataclass
class FaceTracker:
    """Stable ids for faces across frames (IoU assignment), with optional EMA smoothing."""

    class_names: Sequence[str]
    iou_threshold: float = 0.3
    max_missed: int = 15  # analysed frames a track may go unseen (a turned head, a missed detection)
    smoothing: float = 0.0  # EMA weight of the past: 0 = off, 0.8 = heavy
    live: Dict[int, Track] = field(default_factory=dict)
    retired: List[Track] = field(default_factory=list)
    next_id: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")

    def update(self, frame: int, time_s: float, boxes: Sequence[Box], probs: np.ndarray) -> List[Tuple[int, np.ndarray]]:
        """Assign this frame's faces to tracks; returns (track id, probabilities to report) per face, in order."""
        self._retire(frame)
        tracks = list(self.live.values())
        matched: Dict[int, Track] = {}
        if tracks and len(boxes):
            overlap = np.array([[iou(t.box, b) for b in boxes] for t in tracks])
            rows, cols = linear_sum_assignment(-overlap)
            matched = {c: tracks[r] for r, c in zip(rows, cols) if overlap[r, c] >= self.iou_threshold}
        out = []
        for i, (box, p) in enumerate(zip(boxes, probs)):
            p = np.asarray(p, dtype=np.float64)
            track = matched.get(i)
            if track is None:
                track = Track(self.next_id, tuple(box), frame, time_s, time_s, p.copy(),
                              np.zeros(len(self.class_names), dtype=np.int64), np.zeros(len(self.class_names)), 0)
                self.live[track.id] = track
                self.next_id += 1
            else:
                track.smoothed = self.smoothing * track.smoothed + (1.0 - self.smoothing) * p
            track.box, track.last_frame, track.last_time = tuple(box), frame, time_s
            track.frames += 1
            track.label_counts[int(track.smoothed.argmax())] += 1
            track.prob_sum += track.smoothed
            out.append((track.id, track.smoothed.astype(np.float32)))
        return out

    def _retire(self, frame: int) -> None:
        for track_id in [i for i, t in self.live.items() if frame - t.last_frame > self.max_missed]:
            self.retired.append(self.live.pop(track_id))

    def summary(self) -> pd.DataFrame:
        """Per track: frames seen, first and last time, the dominant emotion, and each emotion's share of frames."""
        rows = []
        for t in sorted([*self.retired, *self.live.values()], key=lambda t: t.id):
            shares = t.label_counts / max(1, t.frames)
            rows.append({"track": t.id, "frames": t.frames, "first_s": round(t.first_time, 3),
                         "last_s": round(t.last_time, 3), "dominant": self.class_names[int(shares.argmax())],
                         **{f"share_{c}": float(s) for c, s in zip(self.class_names, shares)},
                         **{f"mean_{c}": float(m) for c, m in zip(self.class_names, t.prob_sum / max(1, t.frames))}})
        columns = ["track", "frames", "first_s", "last_s", "dominant", *[f"share_{c}" for c in self.class_names],
                   *[f"mean_{c}" for c in self.class_names]]
        return pd.DataFrame(rows, columns=columns)
