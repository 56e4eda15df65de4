"""The webcam path without a browser: frames of a real face through LiveAnalyzer, and the timeline."""
import threading

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fer.faces import create_detector
from fer.live import LiveAnalyzer, Timeline
from fer.predictor import Predictor

pytestmark = pytest.mark.usefixtures("mediapipe_models")


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_run(trained_run)


def test_frames_from_several_threads_are_annotated_and_queued(predictor):
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(skdata.astronaut(), (480, 480))
    with create_detector("mediapipe", download=False) as detector:
        analyzer = LiveAnalyzer(predictor, detector)
        outputs = []
        threads = [threading.Thread(target=lambda: outputs.append(analyzer.process(frame))) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        blank = analyzer.process(np.zeros((480, 640, 3), np.uint8))  # no face: no crash, no labels
    assert len(outputs) == 6 and all(o.shape == frame.shape and not np.array_equal(o, frame) for o in outputs)
    assert blank.shape == frame.shape and analyzer.frames == 7
    timeline = Timeline()
    assert timeline.drain(analyzer.results) == 7
    long = timeline.frame()
    assert set(long["emotion"]) == set(predictor.class_names)
    assert np.allclose(long.groupby("second")["probability"].sum(), 1, atol=1e-5)


def test_settings_swap_between_frames(predictor):
    frame = cv2.resize(skdata.astronaut(), (480, 480))
    with create_detector("mediapipe", download=False) as mp_detector, create_detector("none") as whole:
        analyzer = LiveAnalyzer(predictor, mp_detector)
        analyzer.process(frame)
        analyzer.update(detector=whole)
        analyzer.process(frame)
    first, second = analyzer.results.get_nowait(), analyzer.results.get_nowait()
    assert len(first.labels) == 1 and len(second.labels) == 1 and first.probabilities != second.probabilities
