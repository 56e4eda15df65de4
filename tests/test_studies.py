"""The five studies: their models' parameter counts, split protocols, augmentation, recipes and tables."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fer.config import AugmentConfig, RunConfig, load_config
from fer.data import make_splits
from fer.data.augment import build_augmentation
from fer.jobs.suites import STUDIES, SUITES, fit_to_data, study_recipe, study_table, suite_configs
from fer.jobs.suites.studies import model_parameters
from fer.models import create_model
from fer.training.validate import check_config

ROOT = Path(__file__).resolve().parents[1]
RECIPES = {"a": "a_resnet34_224.yaml", "b": "b_cnn5_bn_skip.yaml", "c": "c_deep_emotion_steplr.yaml",
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
    cbam = create_model("plain_cnn", **variant_config("study-e-ladder", "cbam").model.kwargs)
    block = cbam.features[0]
    assert type(block.attention).__name__ == "CBAM" and isinstance(block.post[0], torch.nn.MaxPool2d)


def test_study_a_freezes_the_backbone_first_then_thaws_layer4_with_a_lower_rate():
    cfgs = {c.tags[-2]: c for c in suite_configs("study-a-optimizers", epochs=100)}
    assert set(cfgs) == {"variant:adamw", "variant:sgd", "variant:kacifann", "variant:momentum-kaci"}
    for cfg in cfgs.values():
        assert cfg.transfer.freeze_epochs == 5 and cfg.transfer.unfreeze == ["layer4"]
        assert cfg.optim.backbone_lr == pytest.approx(cfg.optim.lr / 10)
        assert cfg.sched.name == "onecycle" and cfg.data.sampler == "weighted" and cfg.loss.label_smoothing == 0.1
        assert cfg.train.grad_clip > 0 and cfg.augmentation == "custom" and cfg.aug.erasing > 0


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
    assert user[0] == "mine" and "model_type:baseline_v1" in user  # the user's tags and the study's, both kept


def test_a_study_suite_tags_each_departure_from_the_study():
    cfg = suite_configs("study-a-optimizers", overrides=["model.kwargs.pretrained=false", "data.path=/x",
                                                         "tracking.wandb=true", "transfer.freeze_epochs=0"])[0]
    assert [t for t in cfg.tags if t.startswith("adapted:")] == [
        "adapted:model.kwargs.pretrained=false", "adapted:transfer.freeze_epochs=0"]
    plain = suite_configs("depth", overrides=["data.limit=10"])[0]  # the workbench's own ladders: nothing to depart from
    assert not any(t.startswith("adapted:") for t in plain.tags)


def test_study_table_without_runs_lists_what_the_study_reported():
    table = study_table("b", {})
    skip = table[table["variant"] == "skip"].iloc[0]
    assert skip["reported acc"] == pytest.approx(0.629) and skip["runs"] == 0 and np.isnan(skip["ours acc"])
    assert table[table["variant"] == "attention"].iloc[0]["ours params"] == 44_832  # extra over the BN baseline
