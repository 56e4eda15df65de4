"""MediaPipe blendshape features and their classifier: a run like any other (evaluate, predict, leaderboard)."""
import json

import numpy as np
import pytest
from skimage import data as skdata

from fer.inference.blendshapes import (BlendshapeClassifier, BlendshapePredictor, FeatureExtractor, N_BLENDSHAPES,
                                       N_FEATURES, geometry_features)
from fer.inference.classifiers import load_classifier
from fer.inference.faces import create_detector
from fer.inference.pipeline import predict_image
from fer.runs.store import list_runs, read_status
from fer.runs.writer import save_arrays, write_json
from fer.training.blendshape_run import blendshape_config
from fer.training.evaluate import evaluate_run
from fer.training.fit import train


pytestmark = pytest.mark.usefixtures("mediapipe_models")


@pytest.fixture(scope="module")
def blendshape_run(small_folder, tmp_path_factory):
    cfg = blendshape_config(str(small_folder), "blendshapes-test", (0.1, 1.0), limit=0, seed=0, tags=())
    cfg.runs_dir = str(tmp_path_factory.mktemp("runs"))
    return train(cfg)  # checked, queued, then trained as every run is


def test_features_of_real_faces(small_data):
    with FeatureExtractor(download=False) as extract:
        features = extract(small_data.images[:20])
    assert features.shape == (20, N_FEATURES)
    found = ~np.isnan(features).any(1)
    assert found.mean() >= 0.7  # the landmarker finds most upscaled FER2013 faces
    blend = features[found, :N_BLENDSHAPES]
    assert blend.min() >= 0 and blend.max() <= 1 and blend.std() > 0.01


def test_geometry_is_invariant_to_shift_scale_and_rotation():
    rng = np.random.default_rng(0)
    points = rng.random((478, 2)).astype(np.float32)
    angle = 0.3
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    moved = (points @ rot.T) * 2.5 + np.array([0.2, -0.1], np.float32)
    assert np.allclose(geometry_features(points), geometry_features(moved), atol=1e-4)


def test_classifier_round_trips_without_pickle(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, N_FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) * 3  # classes 0 and 3 only
    x[:10] = np.nan  # no face found
    clf = BlendshapeClassifier.fit(x, y, list("abcdefg"), C=1.0)
    save_arrays(tmp_path, "classifier.npz", clf.arrays())
    write_json(tmp_path / "classifier.json", clf.meta())
    loaded = BlendshapeClassifier.load(tmp_path)
    probs = loaded.predict_proba(x)
    assert np.allclose(probs, clf.predict_proba(x)) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert np.allclose(probs[0], clf.prior) and (probs[10:].argmax(1) == y[10:]).mean() > 0.9
    assert set(probs[10:].argmax(1)) <= {0, 3}  # classes never seen are never predicted


def test_blendshape_run_is_a_run_like_any_other(blendshape_run, small_folder):
    names = {p.name for p in blendshape_run.iterdir()}
    assert {"config.json", "status.json", "metrics.jsonl", "classifier.npz", "classifier.json", "eval_val.json",
            "eval_PublicTest.json", "predictions_PublicTest.csv"} <= names
    status = read_status(blendshape_run)
    assert status["state"] == "completed" and 1 / 7 < status["test_acc"] <= 1
    test_eval = json.loads((blendshape_run / "eval_PublicTest.json").read_text())
    assert test_eval["n"] == 105 and test_eval["face_coverage"] > 0.7
    board = list_runs(blendshape_run.parent)
    row = board[board["run_id"] == blendshape_run.name].iloc[0]
    assert row["model"] == "mediapipe_blendshapes" and row["test_acc"] == pytest.approx(status["test_acc"])
    again = evaluate_run(blendshape_run)  # `fer eval` works on it too
    assert again["accuracy"] == pytest.approx(status["test_acc"])


def test_blendshape_predictor_on_a_photo(blendshape_run):
    predictor = load_classifier(blendshape_run)
    assert isinstance(predictor, BlendshapePredictor) and not predictor.explainable and predictor.backend == "features"
    with create_detector("mediapipe", download=False) as detector:
        result = predict_image(predictor, skdata.astronaut(), detector)
    predictor.close()
    assert len(result.faces) == 1 and abs(sum(result.faces[0].probabilities.values()) - 1) < 1e-5
