"""Transfer learning (frozen head-only epochs, then layer4; backbone lr) and the experiment suites."""
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torchvision

from fer.config import load_config
from fer.core.errors import UserError
from fer.jobs.submit import run_suite
from fer.jobs.suites import SUITES, study_table, suite_configs, suite_report, suite_runs
from fer.models import create_model
from fer.runs.checkpoint import load_checkpoint
from fer.runs.store import read_config, read_metrics, read_status
from fer.training.fit import train
from fer.training.transfer import apply_freeze, parameter_groups


@pytest.fixture(scope="module")
def imagenet_cache(tmp_path_factory):
    """A torch hub cache holding ImageNet-shaped ResNet-18/34 files, as torchvision would after a download.

    There is no internet in tests, so these are freshly initialised torchvision networks: they exercise
    the real offline path (torchvision finds the cached file) and the freezing, not ImageNet features.
    """
    home = tmp_path_factory.mktemp("torch_home")
    cache = home / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.manual_seed(0)
    for builder, weights in ((torchvision.models.resnet18, torchvision.models.ResNet18_Weights.IMAGENET1K_V1),
                             (torchvision.models.resnet34, torchvision.models.ResNet34_Weights.IMAGENET1K_V1)):
        torch.save(builder().state_dict(), cache / weights.url.rsplit("/", 1)[-1])
    return home


def test_freeze_schedule_and_parameter_groups():
    cfg = load_config(None, ["model.name=resnet18", "transfer.freeze_epochs=2", "transfer.unfreeze=[layer3, layer4]",
                             "optim.lr=0.01", "optim.backbone_lr=0.001"])
    model = create_model("resnet18")
    groups = parameter_groups(model, cfg)
    assert [g["lr"] for g in groups] == [0.01, 0.001]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.fc.parameters()}

    def trainable(prefix):
        return {p.requires_grad for n, p in model.named_parameters() if n.startswith(prefix)}

    assert apply_freeze(model, cfg, 2).startswith("head only")
    assert trainable("fc") == {True} and trainable("layer4") == {False} and trainable("conv1") == {False}
    assert apply_freeze(model, cfg, 3) == "head + layer3, layer4"
    assert trainable("layer3") == trainable("layer4") == trainable("fc") == {True} and trainable("layer2") == {False}
    cfg.transfer.unfreeze = ["all"]
    apply_freeze(model, cfg, 3)
    assert all(p.requires_grad for p in model.parameters())
    cnn = create_model("plain_cnn")  # every model declares its head, so transfer works for all of them
    head, backbone = parameter_groups(cnn, cfg)
    assert {id(p) for p in head["params"]} == {id(p) for p in cnn.head.parameters()}
    assert len(head["params"]) + len(backbone["params"]) == len(list(cnn.parameters()))


@pytest.mark.slow
def test_frozen_then_layer4_run_really_freezes(small_folder, tmp_path, imagenet_cache, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(imagenet_cache))
    cfg = load_config(None, [f"data.path={small_folder}", f"runs_dir={tmp_path}", "train.epochs=2",
                             "model.name=resnet18", "model.kwargs={pretrained: true}", "transfer.freeze_epochs=1",
                             "optim.backbone_lr=0.0003", "data.limit=64", "train.batch_size=16"])
    run = train(cfg)
    assert read_status(run)["state"] == "completed"
    start = create_model("resnet18", pretrained=True).state_dict()
    final = load_checkpoint(run / "last.pt")["state_dict"]
    assert torch.equal(final["conv1.weight"], start["conv1.weight"])  # never unfrozen
    assert torch.equal(final["layer3.0.conv1.weight"], start["layer3.0.conv1.weight"])
    assert not torch.equal(final["layer4.0.conv1.weight"], start["layer4.0.conv1.weight"])  # unfrozen at epoch 2
    log = (run / "train.log").read_text()
    assert "epoch 1 trains head only" in log and "epoch 2 trains head + layer4" in log


def test_suite_configs_layer_variants_and_overrides():
    configs = suite_configs("depth", repeats=2, epochs=3, overrides=["optim.lr=0.005"])
    assert [c.name for c in configs] == [f"depth-depth{d}-s{s}" for d in (1, 3, 5, 7) for s in (0, 1)]
    assert all(c.train.epochs == 3 and c.optim.lr == 0.005 for c in configs)
    assert configs[2].model.kwargs == {"depth": 3} and configs[3].train.seed == 1
    assert configs[0].tags == ["suite:depth", "variant:depth1", "seed:0"]
    sched = {c.sched.name: c.sched for c in suite_configs("scheduler", epochs=20)}
    assert sched["multistep"].milestones == [10, 15] and sched["step"].step_size == 6
    arch = {c.name: c.model for c in suite_configs("architecture", epochs=1, config_path=None,
                                                   overrides=[])}
    assert arch["architecture-deep-emotion-s0"].name == "deep_emotion"
    assert arch["architecture-deep-emotion-s0"].kwargs == {}  # plain_cnn kwargs do not leak into it


@pytest.fixture(scope="module")
def suite_folder(tmp_path_factory):
    """One runs folder for every suite below, so one background worker serves them all."""
    return tmp_path_factory.mktemp("suites")


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITES.names())
def test_every_suite_runs_on_a_small_sample(name, small_folder, suite_folder, imagenet_cache, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(imagenet_cache))  # the worker (started by the first suite) inherits it
    overrides = [f"data.path={small_folder}", "data.limit=70", "data.test_limit=35", "train.batch_size=16",
                 "train.eval_batch_size=64"]
    states = run_suite(name, repeats=1, epochs=1, overrides=overrides, runs_dir=suite_folder, slots=2)
    assert list(states.values()) == ["completed"] * len(SUITES.get(name)(1))
    runs = suite_runs(name, suite_folder)
    assert set(runs["status"]) == {"completed"} and runs["test_acc"].notna().all()
    report = suite_report(name, suite_folder)
    assert sorted(report["variant"]) == sorted(v.name for v in SUITES.get(name)(1))
    assert (report["runs"] == 1).all() and report["train_val_gap_mean"].notna().all()
    study = SUITES.info(name).get("study")
    if study:  # the study's own table, beside ours
        table = study_table(study, {name: report})
        mine = table[table["suite"] == name]
        assert (mine["runs"] == 1).all() and mine["ours acc"].between(0, 1).all()
        # The sample has no PrivateTest: studies B, D (PrivateTest) and E (both test splits) then test on
        # PublicTest, and say so in a tag.
        assert {read_config(p).data.test_split for p in runs["path"]} == {"PublicTest"}
        adapted = runs["tags"].str.contains("adapted:test_split=PublicTest")
        assert adapted.all() if study in ("b", "d", "e") else not adapted.any()
        # Every --set that changes what a study's run learns is listed beside its number; data.path is not.
        departures = set(mine["adapted"].str.split("; ").explode())
        assert {"data.limit=70", "train.batch_size=16", "train.epochs=1"} <= departures  # 1 epoch: shorter too
        assert not any(d.startswith(("data.path", "train.eval_batch_size")) for d in departures)
        if name == "study-e-ladder":  # the study's method step 5: the ladder's best runs as one ensemble
            from fer.jobs.suites.ensemble import suite_ensemble

            table = suite_ensemble(name, suite_folder)
            assert list(table["variant"])[-1] == "ensemble" and len(table) == len(SUITES.get(name)(1)) + 1
            assert table["faces"].nunique() == 1 and table["accuracy"].between(0, 1).all()
            with pytest.raises(UserError, match="at least two variants"):
                suite_ensemble(name, suite_folder, variants=["cbam"])


@pytest.mark.slow
def test_suite_cli_runs_repeats_and_reports_mean_and_std(small_folder, tmp_path):
    base = [sys.executable, "-m", "fer", "suite"]
    sets = ["--set", f"data.path={small_folder}", "--set", "data.limit=70", "--set", "train.batch_size=16"]
    done = subprocess.run(base + ["run", "depth", "--variant", "depth1", "--variant", "depth7", "--repeats", "2",
                                  "--epochs", "2", "--jobs", "2", "--quiet", "--runs-dir", str(tmp_path)] + sets,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "4 of 4 runs completed" in done.stdout
    report = subprocess.run(base + ["report", "depth", "--runs-dir", str(tmp_path), "--format", "csv"],
                            capture_output=True, text=True, timeout=120)
    lines = report.stdout.strip().splitlines()
    assert lines[0].startswith("variant,runs,test_acc_mean,test_acc_std")
    rows = [line.split(",") for line in lines[1:]]
    assert sorted(r[0] for r in rows) == ["depth1", "depth7"]  # the variants asked for
    assert all(r[1] == "2" and r[3] != "" for r in rows)  # two seeds each, so a std exists
    listing = subprocess.run(base + ["list"], capture_output=True, text=True, timeout=120)
    assert all(name in listing.stdout for name in SUITES.names())

    # Learning curves over the seeds: each point is the mean and sample std of the seeds' own metrics.csv rows.
    shown = subprocess.run(base + ["curves", "depth", "--runs-dir", str(tmp_path), "--format", "csv"],
                           capture_output=True, text=True, timeout=120)
    curves = pd.read_csv(io.StringIO(shown.stdout))
    assert set(curves["variant"]) == {"depth1", "depth7"} and sorted(set(curves["epoch"])) == [1, 2]
    assert (curves["runs"] == 2).all() and (curves["metric"] == "val_acc").all()
    runs = suite_runs("depth", tmp_path)
    for point in curves.itertuples():
        paths = runs.loc[runs["variant"] == point.variant, "path"]
        values = [read_metrics(Path(p)).set_index("epoch").loc[point.epoch, "val_acc"] for p in paths]
        assert point.mean == pytest.approx(np.mean(values)) and point.std == pytest.approx(np.std(values, ddof=1))
        assert point.low == pytest.approx(point.mean - point.std)


def test_a_suite_runs_only_the_variants_named():
    assert [c.name for c in suite_configs("depth", variants=["depth3", "depth1"])] == ["depth-depth1-s0",
                                                                                       "depth-depth3-s0"]
    with pytest.raises(ValueError, match="no variant depth9; its variants: depth1, depth3, depth5, depth7"):
        suite_configs("depth", variants=["depth9"])
