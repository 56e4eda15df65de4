"""Live video: per-frame prediction for the webcam, safe to call from a video worker thread.

`LiveAnalyzer.process(rgb)` detects, classifies and annotates one frame (with FPS) through the same
image pipeline as photos. Settings change through `update(...)` under a lock (a replaced detector is
closed); results leave through a bounded queue that the UI drains into a per-second emotion
timeline (`Timeline`). Nothing here touches Streamlit.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List

import numpy as np
import pandas as pd

from fer.annotate import annotate
from fer.pipeline import ImagePrediction, NoFaceFound, predict_image


@dataclass
class FrameResult:
    time: float
    labels: List[str]
    probabilities: List[Dict[str, float]]
    fps: float


class LiveAnalyzer:
    """Frame in, annotated frame out; results go to `results` (drop-oldest when the UI lags)."""

    def __init__(self, predictor, detector, max_queue: int = 256) -> None:
        self._lock = threading.Lock()
        self._predictor, self._detector = predictor, detector
        self.results: "queue.Queue[FrameResult]" = queue.Queue(maxsize=max_queue)
        self._times: Deque[float] = deque(maxlen=30)
        self.frames = 0

    def update(self, predictor=None, detector=None) -> None:
        """Swap the model or the detector between frames (thread-safe); the replaced detector is closed."""
        replaced = None
        with self._lock:
            if predictor is not None:
                self._predictor = predictor
            if detector is not None and detector is not self._detector:
                replaced, self._detector = self._detector, detector
        if replaced is not None:
            replaced.close()  # no frame uses it any more: the swap happened under the frame lock

    def close(self) -> None:
        """Release the detector (the analyzer is not used afterwards)."""
        with self._lock:
            self._detector.close()

    def fps(self) -> float:
        """Frames per second over the last 30 frames."""
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(1e-6, self._times[-1] - self._times[0])

    def process(self, rgb: np.ndarray) -> np.ndarray:
        """Detect, classify and annotate one RGB frame."""
        with self._lock:  # one frame at a time, and never with a half-swapped model or detector
            predictor, detector = self._predictor, self._detector
            try:
                result = predict_image(predictor, rgb, detector)
            except NoFaceFound:
                result = ImagePrediction([], rgb.shape[1], rgb.shape[0], detector.name)
            now = time.monotonic()
            self._times.append(now)
            self.frames += 1
            fps = self.fps()
        item = FrameResult(time.time(), [f.label for f in result.faces], [f.probabilities for f in result.faces], fps)
        try:
            self.results.put_nowait(item)
        except queue.Full:
            try:
                self.results.get_nowait()
            except queue.Empty:
                pass
            self.results.put_nowait(item)
        return annotate(rgb, result, fps=fps)


@dataclass
class Timeline:
    """Per-second mean probabilities of the largest face, for a live chart."""

    seconds: int = 60
    rows: List[dict] = field(default_factory=list)

    def drain(self, results: "queue.Queue[FrameResult]") -> int:
        """Move every waiting result into the timeline; returns how many."""
        n = 0
        while True:
            try:
                item = results.get_nowait()
            except queue.Empty:
                return n
            n += 1
            if item.probabilities:
                self.rows.append({"second": int(item.time), **item.probabilities[0]})
            cutoff = int(item.time) - self.seconds
            self.rows = [r for r in self.rows if r["second"] > cutoff]

    def frame(self) -> pd.DataFrame:
        """Long table: second, emotion, probability (mean over that second's frames)."""
        if not self.rows:
            return pd.DataFrame(columns=["second", "emotion", "probability"])
        df = pd.DataFrame(self.rows).groupby("second").mean().reset_index()
        df["second"] = df["second"] - df["second"].max()
        return df.melt(id_vars="second", var_name="emotion", value_name="probability")
