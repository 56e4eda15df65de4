"""The five studies: their models' parameter counts, split protocols, augmentation, recipes and tables."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fer.config import AugmentConfig, RunConfig, load_config
from fer.core.text import check_tags
from fer.data import make_splits
from fer.data.augment import build_augmentation
from fer.jobs.suites import STUDIES, SUITES, fit_to_data, study_recipe, study_table, suite_configs
from fer.jobs.suites.study_tables import model_parameters
from fer.models import create_model
from fer.training.validate import check_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"a": "a_resnet34_224.yaml", "b": "b_cnn5_bn_skip.yaml", "c": "c_deep_emotion_cosine.yaml",
           "d": "d_complex_cnn.yaml", "e": "e_cbam_cnn.yaml"}
STUDY_SUITES = [name for name in SUITES.names() if name.startswith("study-")]


def variant_config(suite: str, variant: str, epochs: int = 30) -> RunConfig:
    return next(c for c in suite_configs(suite, epochs=epochs) if f"variant:{variant}" in c.tags)


def test_every_study_has_suites_a_recipe_and_reported_rows():
    assert STUDIES.names() == ["a", "b", "c", "d", "e"]
    assert len(STUDY_SUITES) == 7
    for key in STUDIES.names():
        study = STUDIES.get(key)
        for row in study.reported:  # every reported row names a real variant of one of its suites
            assert row.suite in study.suites
            assert row.variant in [v.name for v in SUITES.get(row.suite)(30)]
        assert study.best[1] in [v.name for v in SUITES.get(study.best[0])(30)]
        assert SUITES.info(study.best[0])["study"] == key


@pytest.mark.parametrize("key,row", [(k, r) for k in STUDIES.names() for r in STUDIES.get(k).reported
                                     if r.parameters])
def test_parameter_counts_are_within_five_percent_of_the_study(key, row):
    ours = model_parameters(variant_config(row.suite, row.variant))
    if row.extra_over:
        ours -= model_parameters(variant_config(row.suite, row.extra_over))
    assert abs(ours - row.parameters) <= 0.05 * row.parameters, (row.what, ours, row.parameters)


def test_study_models_are_the_studies_nets():
    b = variant_config("study-b-depth", "7-layers").model.kwargs
    assert b["convs_per_block"] == 1 and not b["batchnorm"] and b["dropout"] == 0 and len(b["widths"]) == 7
    assert variant_config("study-b-depth", "7-layers").augmentation == "none"
    deep_emotion = variant_config("study-c-schedulers", "steplr")
    assert model_parameters(deep_emotion) == 66_877  # Minaee et al., exactly
    resnet = create_model("resnet34", **{k: v for k, v in variant_config("study-a-optimizers", "adamw").model.kwargs
                                          .items() if k != "pretrained"})
    assert isinstance(resnet.fc[0], torch.nn.Dropout) and resnet.fc[0].p == 0.2 and resnet.head_name == "fc"
    assert resnet(torch.zeros(2, 1, 48, 48)).shape == (2, 7) and resnet.conv1.in_channels == 3  # gray repeated
    # Study E's nets are compared with its listings layer by layer in tests/test_study_nets.py.


def test_study_a_freezes_the_backbone_first_then_thaws_layer4_with_a_lower_rate():
    cfgs = {c.tags[-2]: c for c in suite_configs("study-a-optimizers", epochs=100)}
    assert set(cfgs) == {"variant:adamw", "variant:sgd", "variant:kacifann", "variant:momentum-kaci"}
    for cfg in cfgs.values():
        assert cfg.transfer.freeze_epochs == 5 and cfg.transfer.unfreeze == ["layer4"]
        assert cfg.optim.backbone_lr == pytest.approx(cfg.optim.lr / 10)
        assert cfg.sched.name == "onecycle" and cfg.data.sampler == "weighted" and cfg.loss.label_smoothing == 0.1
        assert cfg.train.grad_clip > 0 and cfg.augmentation == "custom" and cfg.aug.erasing > 0
        assert (cfg.data.mean, cfg.data.std) == (0.5, 0.5)  # the study's (x − 0.5) / 0.5
        assert cfg.optim.weight_decay == (0.01 if cfg.optim.name == "adamw" else 0.0)


def test_study_splits_follow_each_protocol(full_data):
    e = variant_config("study-e-ladder", "cbam").data
    s = make_splits(full_data, e.val_source, e.val_fraction, "PublicTest", 0, train_splits=e.train_splits,
                    val_stratify=e.val_stratify)
    assert (len(s.train), len(s.val)) == (22_967, 5_742)  # Study E's stratified 80/20 of Training
    train_share = np.bincount(full_data.labels[s.train], minlength=7) / len(s.train)
    val_share = np.bincount(full_data.labels[s.val], minlength=7) / len(s.val)
    assert np.abs(train_share - val_share).max() < 0.001

    d = variant_config("study-d-ladder", "complex").data
    assert d.test_split == "PrivateTest" and d.train_splits == ["Training", "PublicTest"]
    s = make_splits(full_data, d.val_source, d.val_fraction, d.test_split, 0, train_splits=d.train_splits,
                    val_stratify=d.val_stratify)
    assert (len(s.train), len(s.val), len(s.test)) == (24_223, 8_075, 0)  # 75/25 of 32,298 (no PrivateTest here)
    public = set(full_data.split_indices("PublicTest"))
    assert public & set(s.train) and public & set(s.val)  # PublicTest pooled into both
    with pytest.raises(ValueError, match="both in data.train_splits and the test split"):
        make_splits(full_data, "train_fraction", 0.25, "PublicTest", train_splits=["Training", "PublicTest"])


def test_data_without_privatetest_is_refused_before_training_or_fitted_for_a_suite(small_folder):
    cfg = variant_config("study-d-ladder", "basic")
    cfg.data.path = str(small_folder)
    with pytest.raises(ValueError, match="no images for data.test_split=PrivateTest"):
        check_config(cfg)  # a single run: a clear error before any run folder exists
    fitted = fit_to_data(cfg, ["Training", "PublicTest"])
    assert fitted.data.test_split == "PublicTest" and fitted.data.train_splits == ["Training"]
    assert "adapted:test_split=PublicTest" in fitted.tags and cfg.data.test_split == "PrivateTest"
    check_config(fitted)
    assert fit_to_data(cfg, ["Training", "PublicTest", "PrivateTest"]) is cfg


def test_custom_augmentation_is_built_from_the_settings():
    assert build_augmentation("custom", 48, AugmentConfig()) is None  # nothing asked for: identity
    face = torch.arange(48 * 48, dtype=torch.float32).reshape(1, 48, 48).div(48 * 48 / 255).to(torch.uint8)
    torch.manual_seed(0)
    flips = {bool(torch.equal(build_augmentation("custom", 48, AugmentConfig(flip=True))(face), face.flip(-1)))
             for _ in range(20)}
    assert flips == {True, False}
    study_d = build_augmentation("custom", 48, AugmentConfig(rotation=180.0))
    assert study_d.transforms[0].degrees == [-180.0, 180.0]
    full = build_augmentation("custom", 48, AugmentConfig(crop="resized", crop_scale=[0.5, 1.0], flip=True,
                                                          rotation=10, translate=0.1, jitter=0.2, erasing=0.5))
    names = [type(t).__name__ for t in full.transforms]
    assert names == ["RandomResizedCrop", "RandomHorizontalFlip", "RandomAffine", "ColorJitter", "RandomErasing"]
    out = full(face)
    assert out.shape == face.shape and out.dtype == torch.uint8


@pytest.mark.parametrize("override,message", [("aug.rotation=200", "aug.rotation"),
                                              ("aug.crop_scale=[0.9, 0.1]", "aug.crop_scale"),
                                              ("aug.erasing=1.5", "aug.erasing"), ("aug.crop=zoom", "aug.crop"),
                                              ("data.train_splits=[Train]", "data.train_splits")])
def test_bad_augmentation_and_split_settings_are_refused(small_folder, override, message):
    with pytest.raises(ValueError, match=message.replace(".", r"\.")):
        check_config(load_config(None, [f"data.path={small_folder}", override]))


@pytest.mark.parametrize("key", sorted(RECIPES))
def test_recipe_files_are_the_suites_best_variants(key):
    recipe = load_config(ROOT / "configs" / "studies" / RECIPES[key])
    assert recipe.to_dict() == study_recipe(key).to_dict()
    suite, variant = STUDIES.get(key).best
    suite_cfg = variant_config(suite, variant, STUDIES.get(key).recipe_epochs).to_dict()
    for section in ("model", "optim", "sched", "loss", "data", "aug", "transfer", "augmentation"):
        assert recipe.to_dict()[section] == suite_cfg[section], section


@pytest.mark.slow
@pytest.mark.parametrize("key", sorted(RECIPES))
def test_recipe_trains_end_to_end_on_a_small_sample(key, small_folder, tmp_path):
    from fer.runs.store import read_status
    from fer.training.fit import train

    overrides = [f"data.path={small_folder}", f"runs_dir={tmp_path}", "train.epochs=2", "data.limit=70",
                 "data.test_limit=35", "train.batch_size=16", "train.eval_batch_size=64"]
    if key == "a":  # ImageNet-shaped weights from a file: no network in tests
        weights = tmp_path / "resnet34-imagenet.pth"
        torch.save(__import__("torchvision").models.resnet34().state_dict(), weights)
        overrides += [f"model.kwargs.weights_path={weights}", "transfer.freeze_epochs=1"]
    cfg = fit_to_data(load_config(ROOT / "configs" / "studies" / RECIPES[key], overrides), ["Training", "PublicTest"])
    run_dir = train(cfg)
    status = read_status(run_dir)
    assert status["state"] == "completed" and 0 <= status["test_acc"] <= 1
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["model"]["kwargs"] == cfg.model.kwargs and saved["aug"] == cfg.to_dict()["aug"]
    if key == "a":
        log = (run_dir / "train.log").read_text()
        assert "epoch 1 trains head only" in log and "epoch 2 trains head + layer4" in log


def test_study_e_runs_carry_the_tags_it_used_in_wandb():
    tags = variant_config("study-e-ladder", "cbam").tags
    assert {"model_type:cbam_cnn", "experiment_type:attention", "dataset_version:fer2013-stratified-80-20",
            "suite:study-e-ladder", "variant:cbam"} <= set(tags)
    user = suite_configs("study-e-ladder", overrides=["tags=[mine]"])[0].tags
    assert user[0] == "mine" and "model_type:simple_cnn_v1" in user  # the user's tags and the study's, both kept


def test_a_study_suite_tags_each_departure_from_the_study():
    cfg = suite_configs("study-a-optimizers", overrides=["model.kwargs.pretrained=false", "data.path=/x",
                                                         "tracking.wandb=true", "transfer.freeze_epochs=0"])[0]
    assert [t for t in cfg.tags if t.startswith("adapted:")] == [
        "adapted:model.kwargs.pretrained=false", "adapted:transfer.freeze_epochs=0"]
    listed = suite_configs("study-c-schedulers", overrides=[
        "model.name=plain_cnn", "model.kwargs={widths: [8, 16, 32], hidden: 64}", "optim.lr=0." + "0" * 70 + "1"],
        variants=["cosine"])[0]
    departures = [t for t in listed.tags if t.startswith("adapted:")]  # fit for tags: no commas, at most 64
    assert departures[1] == "adapted:model.kwargs={widths: [8 16 32] hidden: 64}"
    assert len(departures[2]) == 64 and departures[2].endswith("…")
    assert check_tags(listed.tags) == listed.tags  # what check_config asks of tags
    plain = suite_configs("depth", overrides=["data.limit=10"])[0]  # the workbench's own ladders: nothing to depart from
    assert not any(t.startswith("adapted:") for t in plain.tags)


def test_study_e_trains_each_rung_as_the_study_did():
    rungs = {next(t for t in c.tags if t.startswith("variant:")): c for c in suite_configs("study-e-ladder")}
    length = {v: (c.train.epochs, c.train.early_stop_patience, c.optim.name, c.optim.lr, c.optim.weight_decay)
              for v, c in rungs.items()}
    assert length == {"variant:baseline-v1": (20, 5, "adam", 1e-3, 0.0),
                      "variant:baseline-v2": (20, 5, "adam", 5e-4, 1e-4),
                      "variant:deeper-v1": (40, 10, "adam", 1e-3, 1e-4),
                      "variant:deeper-v2": (30, 7, "adam", 1e-3, 1e-4),
                      "variant:deeper-v3": (30, 7, "adam", 1e-3, 1e-4),
                      "variant:cbam": (50, 7, "adamw", 1e-3, 1e-4)}
    assert rungs["variant:deeper-v2"].sched.patience == 3 and rungs["variant:deeper-v1"].sched.patience == 5
    assert all(c.tracking.wandb_project == "facial-expression-recognition" for c in rungs.values())
    assert not any(t.startswith("adapted:") for c in rungs.values() for t in c.tags)  # the study's own lengths
    v3 = rungs["variant:deeper-v3"].aug
    assert (v3.rotation, v3.flip, v3.translate, v3.scale, v3.erasing) == (15.0, True, 0.1, [0.9, 1.1], 0.1)
    assert v3.shear > 0 and v3.jitter > 0
    affine = build_augmentation("custom", 48, v3).transforms[1]
    assert type(affine).__name__ == "RandomAffine" and list(affine.scale) == [0.9, 1.1] and affine.shear
    cbam = rungs["variant:cbam"]
    assert cbam.augmentation == "custom" and cbam.aug.flip and cbam.aug.rotation > 0 and cbam.aug.shear == 0


def test_study_c_is_its_own_split_schedules_and_numbers():
    rungs = {next(t for t in c.tags if t.startswith("variant:"))[8:]: c for c in suite_configs("study-c-schedulers")}
    assert set(rungs) == {"steplr", "multistep", "cosine", "plateau", "lr-0.1"}
    assert all(c.data.val_fraction == 0.3 and c.data.test_split == "PublicTest" for c in rungs.values())
    assert rungs["multistep"].sched.milestones == [10, 20, 50] and rungs["lr-0.1"].optim.lr == 0.1
    assert STUDIES.get("c").best == ("study-c-schedulers", "cosine") and study_recipe("c").train.epochs == 100
    table = study_table("c", {}).set_index("variant")
    assert table.loc["cosine", "reported acc"] == 0.59 and table.loc["steplr", "reported acc"] == 0.54
    assert table.loc["lr-0.1", "reported acc"] == 0.24 and not (table["reported acc"] == 0.7002).any()
    assert set(table["reported on"]) - {""} == {"held-out 30% of Training"}
    report = pd.DataFrame([{"variant": "cosine", "runs": 1, "test_acc_mean": 0.40, "test_acc_std": np.nan,
                            "best_val_acc_mean": 0.50, "train_val_gap_mean": 0.05, "epochs": 100, "adapted": ""}])
    mine = study_table("c", {"study-c-schedulers": report}).set_index("variant").loc["cosine"]
    assert mine["gap"] == pytest.approx(0.50 - 0.59)  # the study's held-out 30% is our validation split


def test_study_d_grows_its_ladder_as_the_study_did():
    rungs = {next(t for t in c.tags if t.startswith("variant:"))[8:]: c for c in suite_configs("study-d-ladder")}
    assert list(rungs) == ["basic", "bn", "bn+dropout", "complex", "complex-fixes", "complex-final", "complex-last-try"]
    assert [c.optim.lr for c in rungs.values()] == [0.005] + [0.01] * 6
    stages = {v: (c.loss.class_weights, c.train.grad_clip, c.sched.name, c.sched.patience, c.sched.factor,
                  c.augmentation, c.aug.probability, c.train.epochs) for v, c in rungs.items()}
    # The complex CNN's stages in the study's order: fixes without transforms, the transforms back on a quarter
    # of the faces (the model it kept), then the last try's stronger decay, patience 1 and more epochs.
    assert stages.pop("complex-fixes") == (True, 1.0, "plateau", 3, 0.5, "none", 1.0, 30)
    assert stages.pop("complex-final") == (True, 1.0, "plateau", 3, 0.5, "custom", 0.25, 30)
    assert stages.pop("complex-last-try") == (True, 1.0, "plateau", 1, 0.1, "custom", 0.25, 40)
    assert {s[:3] + s[5:] for s in stages.values()} == {(False, 0.0, "none", "custom", 1.0, 30)}
    assert all((c.aug.rotation, c.aug.half_turn) == (10.0, 0.5) for c in rungs.values())
    assert all(c.model.kwargs == rungs["complex"].model.kwargs for v, c in rungs.items() if v.startswith("complex"))
    table = study_table("d", {}).set_index("variant")
    assert table.loc["complex", "reported acc"] == 0.61 and np.isnan(table.loc["bn+dropout", "reported acc"])
    assert table.loc["complex-final", "reported acc"] == 0.627473
    assert table.loc[["complex-fixes", "complex-last-try"], "reported acc"].isna().all()
    # The 180° turn is exact (a face upside down), and "less often" leaves most faces untouched.
    face = torch.arange(48 * 48, dtype=torch.float32).reshape(1, 48, 48).div(48 * 48 / 255).to(torch.uint8)
    turn = build_augmentation("custom", 48, AugmentConfig(half_turn=1.0))
    assert torch.equal(turn(face), face.flip(-1).flip(-2))
    torch.manual_seed(0)
    rarely = build_augmentation("custom", 48, AugmentConfig(half_turn=1.0, probability=0.25))
    touched = sum(not torch.equal(rarely(face), face) for _ in range(400))
    assert 60 < touched < 140  # about a quarter of 400


def test_study_b_reports_its_eleven_validation_figures_and_logs_each_experiment_apart():
    figures = [r for r in STUDIES.get("b").reported if r.accuracy is not None]
    distinct = {(r.what.split(" (")[0], r.accuracy) for r in figures if "experiment" not in r.what}
    assert len(distinct) == 11 and {r.split for r in figures} == {"validation"}
    table = study_table("b", {}).set_index("variant")
    assert table.loc["1-layers", "reported train acc"] == pytest.approx(0.867)
    assert "bn+dropout+augmentation" not in table.index  # the study never ran that combination
    projects = {s: {c.tracking.wandb_project for c in suite_configs(s)} for s in STUDIES.get("b").suites}
    assert projects == {"study-b-depth": {"depth_experiment"}, "study-b-regularization": {"regularization_exp"},
                        "study-b-architecture": {"advanced_architecture_experiment"}}
    assert all(c.train.early_stop_patience > 0 and c.train.epochs == 30 for c in suite_configs("study-b-depth"))
    one = create_model("plain_cnn", **variant_config("study-b-depth", "1-layers").model.kwargs)
    head = one.head[1]  # the 24×24×32 map flattened as it is, into the 2048-wide layer
    assert isinstance(head, torch.nn.Linear) and head.in_features == 24 * 24 * 32


def test_a_shorter_study_run_is_a_tagged_departure():
    short = suite_configs("study-e-ladder", epochs=3)
    assert {c.train.epochs for c in short} == {3}
    assert all("adapted:train.epochs=3" in c.tags for c in short)
    via_set = suite_configs("study-e-ladder", overrides=["train.epochs=3"], variants=["cbam"])[0]
    assert via_set.train.epochs == 3 and via_set.tags.count("adapted:train.epochs=3") == 1
    same = suite_configs("study-e-ladder", epochs=50, variants=["cbam"])[0]  # the study's own length: no tag
    assert not any(t.startswith("adapted:") for t in same.tags)
    assert study_recipe("e").train.epochs == 50 and "adapted:train.epochs=5" in study_recipe("e", 5).tags
    a = suite_configs("study-a-optimizers", variants=["adamw"])[0]
    assert a.train.epochs == 100 and a.transfer.freeze_epochs == 5  # Study A's 100 epochs by default


def test_study_e_table_shows_its_own_numbers_on_its_own_split():
    table = study_table("e", {}).set_index("variant")
    v1 = table.loc["baseline-v1"]
    assert v1["reported acc"] == pytest.approx(0.60) and v1["reported on"] == "validation"
    assert v1["reported train acc"] == pytest.approx(0.85) and v1["ours params"] == v1["reported params"] == 1_232_775
    assert table.loc["deeper-v1", "reported acc"] == pytest.approx(0.5772)
    assert np.isnan(table.loc["cbam", "reported acc"]) and pd.isna(table.loc["cbam", "reported params"])


def test_study_table_without_runs_lists_what_the_study_reported():
    table = study_table("b", {})
    skip = table[table["variant"] == "skip"].iloc[0]
    assert skip["reported acc"] == pytest.approx(0.629) and skip["runs"] == 0 and np.isnan(skip["ours acc"])
    assert table[table["variant"] == "attention"].iloc[0]["ours params"] == 44_832  # extra over the BN baseline
