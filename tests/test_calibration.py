"""Calibrated probabilities: temperature scaling fitted on validation, ECE and the reliability diagram.

The maths is checked on probabilities whose calibration is known by construction; the rest on real
runs trained on a small FER2013 sample.
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from fer.cli.main import main
from fer.core.files import read_json
from fer.inference.predictor import Predictor
from fer.metrics.calibration import (apply_temperature, calibration_metrics, expected_calibration_error,
                                     fit_temperature, reliability_table)
from fer.runs.checkpoint import load_checkpoint
from fer.runs.compare import reliability
from fer.runs.store import SHIPPED_RUN_DIR
from fer.training.evaluate import calibrate_run


def _overconfident(n: int = 4000, classes: int = 7, seed: int = 0):
    """Labels drawn from known probabilities p, reported sharpened as softmax(log p × 3): T = 3 undoes it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.0, (n, classes))
    true_p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    labels = np.array([rng.choice(classes, p=p) for p in true_p])
    return apply_temperature(true_p, 1 / 3.0), labels, true_p


def test_temperature_scaling_recovers_a_known_overconfidence():
    reported, labels, true_p = _overconfident()
    temperature = fit_temperature(reported, labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    fixed = apply_temperature(reported, temperature)
    assert (fixed.argmax(1) == reported.argmax(1)).all()  # the predicted class never changes
    assert expected_calibration_error(fixed, labels) < expected_calibration_error(reported, labels) / 3
    assert np.allclose(apply_temperature(fixed, 1 / temperature), reported, atol=1e-5)  # and it inverts
    metrics = calibration_metrics(fixed, labels, temperature)
    assert metrics["ece_uncalibrated"] == pytest.approx(expected_calibration_error(reported, labels), abs=1e-4)


def test_ece_and_reliability_bins_by_hand():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    table = reliability_table(probs, labels, bins=10)
    assert table["count"].sum() == 4 and len(table) == 10
    top = table[table["count"] == 2].iloc[0]
    assert top["confidence"] == pytest.approx(0.9) and top["accuracy"] == pytest.approx(0.5)
    # |0.9-0.5|·2 + |0.6-1|·1 + |0.7-1|·1, over 4 faces
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx((0.8 + 0.4 + 0.3) / 4)


def test_a_finished_run_is_calibrated_and_predicts_with_it(trained_run):
    ckpt = load_checkpoint(trained_run / "best.pt")
    temperature = ckpt["calibration"]["temperature"]
    assert ckpt["calibration"]["fitted_on"] == "val" and temperature != 1.0
    val, test = read_json(trained_run / "eval_val.json"), read_json(trained_run / "eval_PublicTest.json")
    assert val["temperature"] == test["temperature"] == temperature
    assert val["ece"] <= val["ece_uncalibrated"] + 1e-9  # fitted there: it cannot do worse on validation
    assert ckpt["metrics"]["test"]["ece"] == pytest.approx(test["ece"])
    calibrated, raw = Predictor.from_run(trained_run), Predictor.from_run(trained_run, calibrated=False)
    faces = np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)
    p_cal, p_raw = calibrated.predict_faces(faces), raw.predict_faces(faces)
    assert np.allclose(p_cal, apply_temperature(p_raw, temperature), atol=1e-6)
    assert (p_cal.argmax(1) == p_raw.argmax(1)).all()
    bins = reliability(trained_run, "PublicTest", temperature)
    assert set(bins["version"]) == {"calibrated", "uncalibrated"} and bins.groupby("version")["count"].sum().eq(105).all()


def test_fer_calibrate_fits_an_older_run(trained_run, tmp_path, capsys):
    old = tmp_path / trained_run.name
    shutil.copytree(trained_run, old)
    ckpt = load_checkpoint(old / "best.pt")
    ckpt.pop("calibration")  # as a run trained before calibration existed
    from fer.runs.writer import save_checkpoint

    save_checkpoint(old, "best.pt", ckpt)
    assert main(["calibrate", str(old)]) == 0
    out = capsys.readouterr().out
    assert "val: temperature" in out and "PublicTest: temperature" in out
    assert load_checkpoint(old / "best.pt")["calibration"]["temperature"] == pytest.approx(
        load_checkpoint(trained_run / "best.pt")["calibration"]["temperature"], rel=1e-3)
    assert main(["eval", str(old)]) == 0
    out = capsys.readouterr().out
    assert "expected calibration error" in out
    support = [line.split()[-1] for line in out.splitlines() if line.split()[:1] == ["happy"]][0]
    assert support.isdigit(), f"supports are counts of faces: {support}"  # never 467.000
    with pytest.raises(Exception, match="shipped model"):
        calibrate_run(SHIPPED_RUN_DIR)
