"""Test scores without the test faces that are pixel copies of Training faces (FER2013 has such leaks)."""
import numpy as np

from fer.data import RunData
from fer.inference.classifiers import load_classifier
from fer.runs.release import run_card
from fer.runs.store import read_config
from fer.training.evaluate import score


def test_test_scores_also_leave_out_faces_that_training_holds(trained_run):
    run_data = RunData.from_config(read_config(trained_run))
    data, test = run_data.data, run_data.splits.test
    training = data.split_indices("Training")
    data.images = data.images.copy()
    copied = test[:5]
    data.images[copied] = data.images[training[:5]]  # five test faces leak from Training
    classifier = load_classifier(trained_run, backend="torch", tta="none")
    metrics = score(classifier, data, test, "PublicTest").metrics
    dedup = metrics["deduplicated"]
    training_faces = {f.tobytes() for f in data.images[training]}
    leaked = np.array([f.tobytes() in training_faces for f in data.images[test]])
    assert leaked[:5].all() and dedup["removed"] == leaked.sum() >= 5 and dedup["n"] == len(test) - leaked.sum()
    kept = test[~leaked]
    expected = (classifier.predict_faces(data.images[kept]).argmax(1) == data.labels[kept]).mean()
    assert dedup["accuracy"] == float(expected)
    assert "deduplicated" not in score(classifier, data, run_data.splits.val, "val").metrics


def test_the_run_card_reports_the_deduplicated_test_accuracy(trained_run, tmp_path):
    import shutil

    from fer.core.files import read_json, write_json

    run = tmp_path / trained_run.name
    shutil.copytree(trained_run, run)
    test = read_json(run / "eval_PublicTest.json")
    write_json(run / "eval_PublicTest.json", {**test, "deduplicated": {"n": 90, "removed": 15, "accuracy": 0.5,
                                                                        "macro_f1": 0.4}})
    assert "de-duplicated PublicTest (without the 15 faces that are pixel copies of Training faces; 90 left): " \
           "accuracy 50.00%" in run_card(run, "fer train")
