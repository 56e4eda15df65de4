"""Live video: frames come back at camera rate while the model works on its own thread.

`LiveAnalyzer.process(rgb)` is called from the video thread (streamlit-webrtc's callback). It never
waits for the model: it hands the frame to the inference thread, which always takes the newest
frame and drops the ones it had no time for, and returns the frame at once, annotated with the
latest result. So display stays smooth on a busy CPU (a training job beside the dashboard), and
labels are as fresh as inference allows. Inference runs with `threads` intra-op threads (1 by
default: on a loaded 2-core machine one thread was 5x faster per face than two).

Settings change through `update(...)` under a lock (a replaced detector is closed); results leave
through a bounded queue that the UI drains into a per-second emotion timeline (`Timeline`).
Nothing here touches Streamlit.
"""
from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Deque, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch

from fer.inference.annotate import annotate
from fer.inference.pipeline import ImagePrediction, NoFaceFound, predict_image

LIVE_THREADS = 1


@dataclass
class FrameResult:
    time: float  # wall-clock time of the analysed frame
    labels: List[str]
    probabilities: List[Dict[str, float]]
    fps: float  # frames returned per second
    latency_s: float = 0.0  # from the frame's arrival to its result


class _Rate:
    """Events per second over the last `n` events."""

    def __init__(self, n: int = 30) -> None:
        self.times: Deque[float] = deque(maxlen=n)

    def tick(self, now: float) -> None:
        self.times.append(now)

    def value(self) -> float:
        if len(self.times) < 2:
            return 0.0
        return (len(self.times) - 1) / max(1e-6, self.times[-1] - self.times[0])


CAMERA_FPS = 30.0  # what browsers' cameras send by default
OVERLOADED_SHARE = 0.5  # below half the camera's rate, the video visibly stutters
STALE_LABEL_S = 1.0  # labels older than this no longer describe the face on screen


class LiveAnalyzer:
    """Frame in, annotated frame out at once; inference on the newest frame, on a thread of its own."""

    def __init__(self, predictor, detector, max_queue: int = 256, threads: int = LIVE_THREADS) -> None:
        self._lock = threading.Lock()  # the model and detector, swapped between inferences
        self._predictor, self._detector = predictor, detector
        self.threads = threads
        self.results: "queue.Queue[FrameResult]" = queue.Queue(maxsize=max_queue)
        self._pending: Optional[Tuple[np.ndarray, float, float]] = None  # (frame, monotonic, wall time)
        self._wake = threading.Condition()
        self._latest: Optional[ImagePrediction] = None
        self._latest_arrived = 0.0  # when the frame behind `_latest` arrived (monotonic)
        self.drawn: Optional[ImagePrediction] = None  # the labels on the frame `process` returned last
        self._shown, self._inferred = _Rate(), _Rate()
        self.frames = 0  # frames returned
        self.inferences = 0  # frames the model saw
        self.dropped = 0  # frames the model had no time for
        self.last_latency_s = 0.0
        self.worker_threads = 0  # torch's intra-op threads on the inference thread, once it runs
        self._busy = False
        self._stop = False
        self._worker: Optional[threading.Thread] = None

    # --- settings ----------------------------------------------------------------------------------------------
    def update(self, predictor=None, detector=None) -> None:
        """Swap the model or the detector between frames (thread-safe); the replaced detector is closed."""
        replaced = None
        with self._lock:
            if predictor is not None:
                self._predictor = predictor
            if detector is not None and detector is not self._detector:
                replaced, self._detector = self._detector, detector
        if replaced is not None:
            replaced.close()  # no inference uses it any more: the swap happened under the inference lock

    @property
    def note(self) -> str:
        """The detector's message for the user (e.g. the offline Haar fallback)."""
        return self._detector.note

    def fps(self) -> float:
        """Frames returned per second over the last 30 frames."""
        return self._shown.value()

    def inference_fps(self) -> float:
        """Frames analysed per second over the last 30 analyses."""
        return self._inferred.value()

    def overload(self, camera_fps: float = CAMERA_FPS) -> Optional[str]:
        """What to do when this machine cannot keep up (frames or labels far behind the camera), else None."""
        if self.frames < 30:  # the rates settle over the first second
            return None
        returned, model, age = self.fps(), self.inference_fps(), self.label_age_s() or 0.0
        if returned >= OVERLOADED_SHARE * camera_fps and age <= STALE_LABEL_S:
            return None
        return (f"This machine is overloaded: {returned:.0f} of ~{camera_fps:.0f} frames/s come back, the model "
                f"manages {model:.1f} frames/s and labels are {age:.1f} s old. Lighter settings help: one model "
                "instead of an ensemble, the OpenCV Haar detector, fewer inference threads if training jobs run "
                "here, or pausing the training queue while you use the webcam.")

    def label_age_s(self) -> Optional[float]:
        """How old the frame behind the labels drawn now is, in seconds (None before the first result)."""
        return time.monotonic() - self._latest_arrived if self._latest is not None else None

    # --- the video thread --------------------------------------------------------------------------------------
    def process(self, rgb: np.ndarray) -> np.ndarray:
        """Queue `rgb` for inference (replacing an older waiting frame) and return it annotated at once."""
        now = time.monotonic()
        with self._wake:
            if self._pending is not None:
                self.dropped += 1
            self._pending = (rgb, now, time.time())
            self._wake.notify_all()
        self._ensure_worker()
        self._shown.tick(now)
        self.frames += 1
        latest = self._latest
        if latest is None:
            latest = ImagePrediction([], rgb.shape[1], rgb.shape[0], self._detector.name)
        self.drawn = latest
        return annotate(rgb, latest, fps=self.fps())

    def analyse(self, rgb: np.ndarray) -> ImagePrediction:
        """Detect and classify one frame now, on the calling thread (what the inference thread does)."""
        with self._lock:  # never with a half-swapped model or detector
            try:
                return predict_image(self._predictor, rgb, self._detector)
            except NoFaceFound:
                return ImagePrediction([], rgb.shape[1], rgb.shape[0], self._detector.name)

    # --- the inference thread ----------------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._run, name="fer-live-inference", daemon=True)
            self._worker.start()

    def _run(self) -> None:
        torch.set_num_threads(self.threads)  # per thread: the rest of the process keeps its setting
        self.worker_threads = torch.get_num_threads()
        while True:
            with self._wake:
                while self._pending is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                rgb, arrived, wall = self._pending
                self._pending, self._busy = None, True
            if torch.get_num_threads() != self.threads:  # the page may change the setting live
                torch.set_num_threads(self.threads)
                self.worker_threads = torch.get_num_threads()
            try:
                result = self.analyse(rgb)
                done = time.monotonic()
                self._latest, self._latest_arrived = result, arrived  # the video thread reads these without a lock
                self._inferred.tick(done)
                self.inferences += 1
                self.last_latency_s = done - arrived
                self._publish(FrameResult(wall, [f.label for f in result.faces],
                                          [f.probabilities for f in result.faces], self.fps(), self.last_latency_s))
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every frame handed in so far is analysed or dropped; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._wake:
            while self._pending is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def _publish(self, item: FrameResult) -> None:
        try:
            self.results.put_nowait(item)
        except queue.Full:  # the UI lags: drop the oldest result
            try:
                self.results.get_nowait()
            except queue.Empty:
                pass
            self.results.put_nowait(item)

    def close(self) -> None:
        """Stop the inference thread and release the detector (the analyzer is not used afterwards)."""
        with self._wake:
            self._stop = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5)
        with self._lock:
            self._detector.close()


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
