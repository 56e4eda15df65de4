"""Settings fail at once, before a run folder exists, and the precision suits the CPU."""
import re
from pathlib import Path

import pytest
import torch

import fer.core.device as device_module
from fer.config import ConfigError, apply, load_config
from fer.core.device import amp_dtype, amp_warning
from fer.data import DataError
from fer.training.fit import create_run, train
from fer.training.validate import check_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("flags, expected", [({"avx2", "fma"}, None), ({"avx2", "avx512_bf16"}, torch.bfloat16),
                                             ({"amx_bf16"}, torch.bfloat16), ({"fp", "asimd", "bf16"}, torch.bfloat16)])
def test_auto_precision_on_the_cpu_follows_native_bf16(flags, expected, monkeypatch):
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset(flags))
    cpu = torch.device("cpu")
    assert amp_dtype("auto", cpu) is expected
    assert amp_dtype("bf16", cpu) is torch.bfloat16  # forcing it is still allowed...
    assert (amp_warning("bf16", cpu) is None) == (expected is not None)  # ...with a warning where it is emulated
    assert amp_warning("auto", cpu) is None and amp_warning("off", cpu) is None


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_leave_the_precision_to_auto(path):
    assert load_config(path).train.amp == "auto"


def test_text_is_read_as_the_fields_type(tmp_path):
    cfg = load_config(None, ["train.amp=off", "name=2024", "train.channels_last=no", "tags=[yes, 2024]"])
    assert (cfg.train.amp, cfg.name, cfg.train.channels_last, cfg.tags) == ("off", "2024", False, ["yes", "2024"])
    path = tmp_path / "run.yaml"
    path.write_text("name: yes\ntrain:\n  amp: off\n  epochs: 3\n")  # YAML 1.1 would read both as booleans
    cfg = load_config(path)
    assert (cfg.name, cfg.train.amp, cfg.train.epochs) == ("yes", "off", 3)
    assert apply(cfg, {"name": "2024", "train.amp": "bf16", "optim.lr": "0.01"}).optim.lr == 0.01
    with pytest.raises(ConfigError, match="model.kwargs: not valid YAML"):
        apply(cfg, {"model.kwargs": "{widths: [8, 16"})


def test_forced_bf16_on_a_cpu_without_it_warns_in_the_log(small_folder, tmp_path, monkeypatch, tiny_overrides):
    monkeypatch.setattr(device_module, "cpu_flags", lambda: frozenset({"avx2"}))
    run = train(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "train.amp=bf16", "data.limit=64")))
    assert "10-20x slower than fp32" in (run / "train.log").read_text()


@pytest.mark.parametrize("override, message", [
    ("optim.lr=-0.1", "optim.lr must be more than 0"),
    ("optim.lr=nan", "optim.lr must be more than 0"),
    ("optim.lr=0", "optim.lr must be more than 0"),
    ("optim.lr=inf", "optim.lr must be more than 0"),
    ("train.epochs=0", "train.epochs must be at least 1"),
    ("train.epochs=-3", "train.epochs must be at least 1"),
    ("train.nonfinite=ignore", "train.nonfinite must be one of stop, skip"),
    ("model.kwargs={widths: [-8, 16]}", "cannot be built"),
    ("train.batch_size=0", "train.batch_size must be at least 1"),
    ("data.val_source=PublicTest", "both PublicTest"),
    ("data.val_fraction=1.5", "data.val_fraction must be in (0, 1)"),
    ("loss.label_smoothing=1", "loss.label_smoothing must be in [0, 1)"),
    ("model.kwargs={no_such_option: 1}", "cannot be built"),
    ("model.kwargs={widths: [0, 16]}", "cannot be built"),
    ("transfer.freeze_epochs=1", "cannot be built"),  # plain_cnn has no layer4 to unfreeze
    ("data.test_split=PrivateTest", "no images for data.test_split=PrivateTest"),  # image folders: Public only
    ("train.amp=fast", "train.amp must be one of"),
    ("model.name=nope", "unknown model 'nope'"),
    ("train.gpus=0", "train.gpus must be at least 1"),
    ("train.global_batch=100", "must be a multiple of train.batch_size × train.gpus (32)"),
    ("train.sync_bn=true && train.gpus=2", "train.sync_bn needs CUDA"),
])
def test_impossible_settings_fail_before_a_run_folder_exists(override, message, small_folder, tmp_path, tiny_overrides):
    cfg = load_config(None, tiny_overrides(small_folder, tmp_path, 1, *override.split(" && ")))
    with pytest.raises((ConfigError, DataError), match=re.escape(message)):
        create_run(check_config(cfg))
    assert not any(tmp_path.iterdir())


def test_a_huge_model_is_a_warning_found_on_the_meta_device(small_folder, tmp_path):
    cfg = load_config(None, [f"data.path={small_folder}", f"runs_dir={tmp_path}", "model.kwargs={depth: 99}"])
    checked = check_config(cfg)  # 114 M parameters, never allocated
    warnings = checked.warnings
    assert len(warnings) == 1 and "M parameters" in warnings[0]
    run = create_run(checked)  # allowed when the user insists, and the warning goes with the run
    assert "M parameters" in (run / "status.json").read_text()


@pytest.mark.parametrize("command", [["train", "--queue"], ["suite", "run", "depth", "--epochs", "1"],
                                     ["blendshapes", "train", "--queue"]])
def test_a_bad_setting_queues_nothing_from_any_command(command, small_folder, tmp_path, capsys):
    from fer.cli.main import main

    bad = ["--C", "-1"] if command[0] == "blendshapes" else ["--set", "optim.lr=-1"]
    source = [str(small_folder)] if command[0] == "blendshapes" else ["--set", f"data.path={small_folder}"]
    assert main([*command, *source, *bad, "--runs-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert ("model.kwargs.Cs" if command[0] == "blendshapes" else "optim.lr must be more than 0") in error
    assert not [p for p in tmp_path.iterdir() if (p / "config.json").exists()]  # not one run folder, not even the first
