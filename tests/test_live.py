"""The webcam path without a browser: frames of a real face through LiveAnalyzer, and the timeline."""
import threading

import cv2
import numpy as np
import pytest
import torch
from skimage import data as skdata

from fer.inference.annotate import annotate
from fer.inference.faces import create_detector
from fer.inference.live import LiveAnalyzer, Timeline
from fer.inference.pipeline import ImagePrediction
from fer.inference.predictor import Predictor

pytestmark = pytest.mark.usefixtures("mediapipe_models")


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_run(trained_run)


def _frame() -> np.ndarray:
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(skdata.astronaut(), (480, 480))
    return frame


def test_frames_return_at_once_and_inference_takes_the_newest(predictor):
    frame = _frame()
    with create_detector("mediapipe", download=False) as detector:
        analyzer = LiveAnalyzer(predictor, detector)
        outputs = []
        threads = [threading.Thread(target=lambda: outputs.extend(analyzer.process(frame) for _ in range(5)))
                   for _ in range(6)]  # 30 frames from 6 threads, far faster than the model can follow
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert analyzer.wait_idle()
        # Every frame came back; the model saw some and dropped the stale rest, never a frame twice.
        assert len(outputs) == 30 and analyzer.frames == 30 and all(o.shape == frame.shape for o in outputs)
        assert analyzer.inferences >= 1 and analyzer.inferences + analyzer.dropped == 30
        assert analyzer.worker_threads == 1 and torch.get_num_threads() >= 1  # one thread for live inference
        labelled = analyzer.process(frame)  # drawn with the latest result: the face's box is on it
        assert analyzer.wait_idle()
        blank = analyzer.process(np.zeros((480, 640, 3), np.uint8))  # no face: no crash
        assert analyzer.wait_idle()
        analyzer.close()
    unlabelled = annotate(frame, ImagePrediction([], 640, 480, "mediapipe"), fps=analyzer.fps())
    assert np.abs(labelled.astype(int) - unlabelled).sum() > 0
    assert blank.shape == frame.shape
    results = []
    while not analyzer.results.empty():
        results.append(analyzer.results.get_nowait())
    assert len(results) == analyzer.inferences and results[-1].labels == []  # the blank frame came last
    assert all(len(r.labels) == 1 and r.latency_s > 0 for r in results[:-1])
    timeline = Timeline()
    for r in results:
        analyzer.results.put_nowait(r)
    assert timeline.drain(analyzer.results) == len(results)
    long = timeline.frame()
    assert set(long["emotion"]) == set(predictor.class_names)
    assert np.allclose(long.groupby("second")["probability"].sum(), 1, atol=1e-5)


def test_settings_swap_between_frames_and_close_the_replaced_detector(predictor):
    frame = cv2.resize(skdata.astronaut(), (480, 480))
    with create_detector("mediapipe", download=False) as mp_detector, create_detector("none") as whole:
        analyzer = LiveAnalyzer(predictor, mp_detector)
        analyzer.process(frame)
        assert analyzer.wait_idle()
        analyzer.update(detector=whole)
        assert mp_detector._detector is None  # closed: nothing uses it any more
        analyzer.process(frame)
        assert analyzer.wait_idle()
        analyzer.close()
    first, second = analyzer.results.get_nowait(), analyzer.results.get_nowait()
    assert len(first.labels) == 1 and len(second.labels) == 1 and first.probabilities != second.probabilities


def test_the_page_is_told_when_frames_fall_far_behind_the_camera(predictor):
    import time

    frame = _frame()
    with create_detector("mediapipe", download=False) as detector:
        analyzer = LiveAnalyzer(predictor, detector)
        for _ in range(40):  # at the camera's 30 frames/s: keeping up
            analyzer.process(frame)
            time.sleep(1 / 30)
        assert analyzer.wait_idle() and analyzer.overload() is None
        for _ in range(35):  # 5 frames/s come back, as on a machine busy with training
            analyzer.process(frame)
            time.sleep(0.2)
        advice = analyzer.overload()
        analyzer.close()
    assert advice and "overloaded" in advice and "of ~30 frames/s" in advice and "Haar" in advice
