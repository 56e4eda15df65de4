"""Knowledge distillation (fer.training.distill): a student trained on a teacher's probabilities, on real faces."""
import json

import numpy as np
import pytest

from conftest import tiny_overrides
from fer.cli.main import main
from fer.config import ConfigError, load_config
from fer.data import RunData
from fer.inference.classifiers import load_classifier
from fer.runs.checkpoint import load_checkpoint
from fer.training.distill import consistent_teacher, mix_targets, teacher_problems, teacher_targets
from fer.training.validate import check_config


def test_targets_mix_the_softened_teacher_with_the_label():
    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([1, 2])
    assert np.allclose(mix_targets(teacher, labels, 1.0, 1.0), teacher, atol=1e-6)
    assert np.array_equal(mix_targets(teacher, labels, 0.0, 1.0), np.eye(3, dtype=np.float32)[labels])
    mixed = mix_targets(teacher, labels, 0.5, 1.0)
    assert np.allclose(mixed.sum(1), 1) and mixed[0, 1] == pytest.approx(0.5 * 0.2 + 0.5)
    soft = mix_targets(teacher, labels, 1.0, 4.0)  # a hotter teacher: same ranking, flatter
    assert (soft.argmax(1) == teacher.argmax(1)).all() and (soft.max(1) < teacher.max(1)).all()


def test_the_teacher_predicts_every_training_face_as_the_product_would(trained_run, small_folder, tmp_path):
    cfg = check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, f"distill.teacher=[{trained_run}]",
                                                        "distill.weight=1.0"))).config
    run_data = RunData.from_config(cfg)
    taught = teacher_targets(cfg, run_data)
    faces = run_data.data.images[run_data.splits.train]
    expected = load_classifier(trained_run, backend="auto", tta="flip").predict_faces(faces)
    assert taught["targets"].shape == (len(faces), 7)
    assert np.allclose(taught["targets"], expected, atol=1e-5)
    assert 0 < taught["val_accuracy"] <= 1 and taught["teacher"] == trained_run.name


def test_a_distilled_run_trains_on_the_teachers_targets_and_records_its_teacher(trained_run, small_folder, tmp_path):
    runs = tmp_path / "runs"
    args = ["train", "--quiet", "--teacher", str(trained_run), "--teacher", "default"]
    for item in tiny_overrides(small_folder, runs, 1, "name=student", "distill.temperature=2.0"):
        args += ["--set", item]
    assert main(args) == 0
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    config = json.loads((run / "config.json").read_text())
    assert config["distill"]["teacher"] == [str(trained_run), "default"]
    assert load_checkpoint(run / "best.pt")["config"]["distill"]["temperature"] == 2.0
    log = (run / "train.log").read_text()
    assert f"distilling from {trained_run.name}+default" in log and "teacher val acc 0." in log


def test_consistent_teaching_targets_each_augmented_batch_as_the_teacher_predicts_it(trained_run, small_folder,
                                                                                      tmp_path):
    import torch

    cfg = check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, f"distill.teacher=[{trained_run}]",
                                                        "distill.consistent=true", "distill.weight=0.8"))).config
    run_data = RunData.from_config(cfg)
    faces = torch.from_numpy(run_data.data.images[run_data.splits.train][:48, None].copy())  # N×1×H×W
    labels = torch.from_numpy(run_data.data.labels[run_data.splits.train][:48].copy())
    # Two "augmented" batches: the faces themselves and the faces shifted by 8 pixels with a black border.
    shifted = torch.zeros_like(faces)
    shifted[..., 8:, 8:] = faces[..., :-8, :-8]
    batches = [(faces, labels), (shifted, labels)]
    taught = consistent_teacher(cfg, run_data, batches, torch.device("cpu"))
    assert len(taught) == 2
    teacher = load_classifier(trained_run, backend="torch", tta="flip")
    for (x, y), (_, targets) in zip(batches, taught):
        expected = mix_targets(teacher.predict_faces(x.numpy()[:, 0]), y.numpy(), 0.8, 1.0)
        assert np.allclose(targets.numpy(), expected, atol=1e-5)
    # The shifted faces get their own targets, not those of the faces they came from (by far more than the
    # tolerance above, even for the barely trained teacher of the tests).
    first, second = [t.numpy() for _, t in taught]
    assert np.abs(first - second).max() > 1e-4


def test_a_consistently_taught_run_trains_and_says_where_its_targets_come_from(trained_run, small_folder, tmp_path):
    runs = tmp_path / "runs"
    args = ["train", "--quiet", "--teacher", str(trained_run)]
    for item in tiny_overrides(small_folder, runs, 1, "name=consistent", "distill.consistent=true",
                               "augmentation=heavy"):
        args += ["--set", item]
    assert main(args) == 0
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    assert load_checkpoint(run / "best.pt")["config"]["distill"]["consistent"] is True
    log = (run / "train.log").read_text()
    assert f"targets from {trained_run} on each augmented batch (tta flip)" in log
    assert "distilling from" not in log  # no pass over the faces before training


@pytest.mark.parametrize("overrides, message", [
    (["distill.teacher=[no-such-run]"], "distill.teacher 'no-such-run'"),
    (["distill.teacher=[default]", "distill.weight=1.5"], "distill.weight"),
    (["distill.teacher=[default]", "distill.tta=mirror"], "distill.tta"),
    (["distill.teacher=[default]", "distill.consistent=true", "distill.tta=tencrop"], "distill.consistent"),
])
def test_a_teacher_that_cannot_teach_is_refused_before_the_run_exists(small_folder, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, *overrides)))
    assert not any(tmp_path.glob("*/config.json"))


def test_fer_plus_targets_and_a_teacher_exclude_each_other():
    cfg = load_config(None, ["distill.teacher=[default]", "data.labels=ferplus"])
    assert "FER+ votes are the targets" in teacher_problems(cfg)[0]
    assert teacher_problems(load_config(None, ["distill.teacher=[default]"])) == []
