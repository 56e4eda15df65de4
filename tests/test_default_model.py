"""The model shipped in the package: loads offline from its checkpoint, is small, and really scores what
its card says on the shared PublicTest (re-evaluated here, not read back)."""
import json

import pytest
from skimage import data as skdata

from fer.data import load_fer2013
from fer.inference.classifiers import load_classifier
from fer.inference.faces import create_detector
from fer.inference.pipeline import predict_image
from fer.inference.predictor import Predictor
from fer.runs.release import MAX_BYTES
from fer.runs.store import SHIPPED_RUN_DIR, list_runs, resolve_run

pytestmark = pytest.mark.usefixtures("mediapipe_models")


def test_shipped_run_folder_is_complete_and_small():
    names = {p.name for p in SHIPPED_RUN_DIR.iterdir()}
    assert {"best.pt", "config.json", "status.json", "metrics.jsonl", "eval_PublicTest.json", "CARD.md"} <= names
    assert sum(p.stat().st_size for p in SHIPPED_RUN_DIR.iterdir()) <= MAX_BYTES
    card = (SHIPPED_RUN_DIR / "CARD.md").read_text()
    assert "fer train --config configs/default_model_cpu.yaml" in card


@pytest.mark.slow
def test_default_model_scores_its_card_on_public_test(fer_root, data_from_csv):
    recorded = json.loads((SHIPPED_RUN_DIR / "eval_PublicTest.json").read_text())
    predictor = Predictor.default()
    data = load_fer2013(fer_root)
    test = data.split_indices("PublicTest")
    probs = predictor.predict_faces(data.images[test])
    accuracy = float((probs.argmax(1) == data.labels[test]).mean())
    # Batching may move a borderline face or two; the CSV's original pixels are not the release's JPEGs.
    assert accuracy == pytest.approx(recorded["accuracy"], abs=0.01 if data_from_csv else 6e-4)
    assert accuracy >= 0.66  # the bar for a CPU-trained default model


def test_default_model_is_used_when_no_run_is_chosen_and_is_on_the_leaderboard(tmp_path):
    predictor = load_classifier(None)
    assert predictor.name == "default"
    with create_detector("auto", download=False) as detector:
        result = predict_image(predictor, skdata.astronaut(), detector)
    assert [f.label for f in result.faces] == ["happy"]  # a broad smile
    board = list_runs(tmp_path, include_default=True)
    assert list(board["source"]) == ["built-in"] and board["test_acc"].iloc[0] >= 0.66
    assert resolve_run("default", tmp_path) == SHIPPED_RUN_DIR


def test_the_shipped_model_has_one_name_in_tables_and_legends(trained_run):
    from fer.runs.compare import config_diff, curves
    from fer.runs.store import SHIPPED_RUN_DIR, list_runs

    board = list_runs(trained_run.parent, include_default=True)
    labels = dict(zip(board["run_id"], board["label"]))
    assert set(curves([SHIPPED_RUN_DIR, trained_run], labels)["run"]) == {"default", labels[trained_run.name]}
    assert "default" in config_diff([SHIPPED_RUN_DIR, trained_run], labels).columns


def test_parallel_coordinates_name_their_axes_and_label_their_values(trained_run):
    from fer.runs.compare import axis_ticks, axis_titles, parallel_coordinates
    from fer.runs.store import list_runs

    board = list_runs(trained_run.parent, include_default=True)
    columns = ["config.optim.lr", "config.model.name", "config.train.epochs"]
    assert axis_titles(columns) == {"config.optim.lr": "Learning rate", "config.model.name": "Model",
                                    "config.train.epochs": "Epochs"}
    ticks = axis_ticks(parallel_coordinates(board, columns))
    lr = ticks[ticks["axis"] == "config.optim.lr"]
    assert len(lr) == board["config.optim.lr"].nunique() and set(lr["value"]) == \
        {f"{v:.4g}" for v in board["config.optim.lr"]}
    assert set(ticks[ticks["axis"] == "config.model.name"]["value"]) == set(board["config.model.name"])


def test_parallel_coordinates_label_a_value_per_run_axis_with_a_few_spread_ticks():
    import numpy as np
    import pandas as pd

    from fer.runs.compare import axis_ticks, parallel_coordinates

    lrs = [10 ** (-4 + 2 * i / 499) for i in range(500)]  # one learning rate per run, as a random search draws
    board = pd.DataFrame({"run_id": [f"r{i}" for i in range(500)], "test_acc": 0.6, "config.optim.lr": lrs,
                          "config.model.name": ["a", "b"] * 250})
    ticks = axis_ticks(parallel_coordinates(board, ["config.optim.lr", "config.model.name"]), most=5)
    lr = ticks[ticks["axis"] == "config.optim.lr"].sort_values("scaled")
    assert len(lr) == 5 and lr["value"].iloc[0] == "0.0001" and lr["value"].iloc[-1] == "0.01"  # the ends
    assert np.allclose(lr["scaled"], [0, 0.25, 0.5, 0.75, 1], atol=0.01)  # evenly spread on the (log) axis
    assert set(ticks[ticks["axis"] == "config.model.name"]["value"]) == {"a", "b"}  # few values: all shown
