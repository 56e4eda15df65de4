"""Caps on work and memory: hostile config text, deep nesting and huge values give one ConfigError line.

Memory is measured with tracemalloc (what Python allocates), never wall-clock time: this machine is
shared and noisy. See docs/reliability.md.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from fer.config import ConfigError, load_config, parse_override
from fer.models import MODELS

MiB = 2**20


def _alias_bomb(levels: int = 9) -> str:
    """~300 bytes of YAML that expand to 9**levels strings when aliases are followed."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\nname: bomb\n"


def _peak(fn) -> tuple:
    """What `fn` raised (or returned), and the peak Python memory it took."""
    tracemalloc.start()
    try:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - the test looks at what was raised
            result = e
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_an_alias_bomb_in_a_config_file_is_refused_in_little_memory(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb())
    assert len(path.read_text()) < 700
    error, peak = _peak(lambda: load_config(path))
    assert isinstance(error, ConfigError) and "aliases" in str(error) and "\n" not in str(error)
    assert peak < 20 * MiB


def test_an_alias_bomb_in_a_set_value_or_form_field_is_refused():
    bomb = "[" + ",".join(["&a [1,2,3,4,5,6,7,8,9]"] + ["*a"] * 8) + "]"
    error, peak = _peak(lambda: parse_override(f"model.kwargs={{widths: {bomb}}}"))
    assert isinstance(error, ConfigError) and "aliases" in str(error)
    assert peak < 20 * MiB


@pytest.mark.parametrize("depth", [40, 5_000, 20_000])
def test_configs_nested_thousands_deep_are_one_error_line(tmp_path, depth):
    path = tmp_path / "deep.yaml"
    path.write_text("model:\n  kwargs:\n    x: " + "[" * depth + "1" + "]" * depth + "\n")
    error, peak = _peak(lambda: load_config(path))
    assert isinstance(error, ConfigError) and "nested more than" in str(error) and "\n" not in str(error)
    with pytest.raises(ConfigError, match="nested more than|more than the 16,384 one value may hold"):
        parse_override("model.kwargs={x: " + "[" * depth + "1" + "]" * depth + "}")
    assert peak < 50 * MiB


def test_a_huge_value_is_refused_and_never_quoted_whole(tmp_path):
    with pytest.raises(ConfigError) as caught:
        parse_override("model.kwargs=" + "x: [" + "1," * 200_000 + "1]")
    assert "characters, more than" in str(caught.value) and len(str(caught.value)) < 400
    with pytest.raises(ConfigError) as caught:
        parse_override("train.epochs=" + "9x" * 100_000)
    assert len(str(caught.value)) < 300
    path = tmp_path / "huge.yaml"
    path.write_text("name: " + "a" * (300 * 1024) + "\n")
    with pytest.raises(ConfigError, match="more than the"):
        load_config(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{},&*!|>'\"\n #0123456789.ex")), max_size=3000))
def test_any_config_text_loads_or_is_one_config_error_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fuzz") / "config.yaml"
    path.write_text(text)
    result, peak = _peak(lambda: load_config(path))
    assert not isinstance(result, Exception) or (isinstance(result, ConfigError) and "\n" not in str(result)), \
        repr(result)
    assert peak < 30 * MiB


# --- checkpoints that claim more than they hold -------------------------------------------------------------

def _bombs(good: dict) -> dict:
    """Small checkpoints whose spec claims huge layers, class counts or inputs, or odd class names."""
    spec = good["model"]
    return {
        "huge layers": ({**good, "model": {**spec, "kwargs": {**spec["kwargs"], "hidden": 4_000_000_000}}},
                        "weights do not fit"),
        "huge class count": ({**good, "model": {**spec, "num_classes": 10**9}}, "classes for"),
        "huge input": ({**good, "preprocessing": {**good["preprocessing"], "input_size": 20_000}}, "inputs"),
        "channels": ({**good, "model": {**spec, "in_chans": 4096}}, "input channels"),
        "class names": ({**good, "class_names": [1, 2, 3, 4, 5, 6, 7]}, "class names"),
        "state dict": ({**good, "state_dict": {"w": "not a tensor"}}, "not a mapping of tensors|do not fit"),
    }


def test_checkpoint_size_bombs_are_refused_before_anything_is_allocated(trained_run, tmp_path):
    import psutil
    import torch

    from fer.runs.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint

    good = load_checkpoint(trained_run / "best.pt")
    rss = psutil.Process().memory_info().rss
    for name, (payload, message) in _bombs(good).items():
        torch.save(payload, tmp_path / "bomb.pt")
        assert (tmp_path / "bomb.pt").stat().st_size < 10 * MiB
        with pytest.raises(CheckpointError, match=message) as caught:
            model_from_checkpoint(load_checkpoint(tmp_path / "bomb.pt"))
        assert "\n" not in str(caught.value), name
    assert psutil.Process().memory_info().rss - rss < 500 * MiB  # a real attempt would ask for 16 GB and more


@pytest.mark.parametrize("name", MODELS.names())
def test_the_bounds_admit_every_registered_model_at_224(name):
    import torch

    from fer.models import create_model
    from fer.runs.checkpoint import _check_sizes, check_spec

    size = 224

    with torch.device("meta"):
        state = create_model(name, num_classes=7, in_chans=3).state_dict()
    ckpt = {"model": {"name": name, "kwargs": {}, "num_classes": 7, "in_chans": 3}, "state_dict": state,
            "class_names": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"],
            "preprocessing": {"input_size": size, "in_chans": 3, "mean": 0.5, "std": 0.25}}
    check_spec(ckpt)
    _check_sizes(ckpt)


# --- settings that would exhaust the machine ----------------------------------------------------------------

@pytest.mark.parametrize("override,refusal", [
    ("data.num_workers=500", "data.num_workers must be at most 256"),
    ("train.gpus=5000", "train.gpus must be at most 256"),
    ("model.input_size=20000", r"model.input_size must be in \[8, 512\]"),
    ("model.kwargs={depth: 1000}", r"model.kwargs.depth must be in \[0, 128\]"),
    ("optim.betas=[0.9]", "optim.betas must be two numbers"),
    ("model.in_chans=4096", "model.in_chans must be 1"),
])
def test_settings_no_machine_can_run_are_refused(small_folder, override, refusal):
    from fer.training.validate import check_config

    with pytest.raises(ConfigError, match=refusal):
        check_config(load_config(None, [f"data.path={small_folder}", override]))


MORE_THAN_CORES = min(256, (os.cpu_count() or 1) + 1)


@pytest.mark.parametrize("overrides,warning", [
    ([f"data.num_workers={MORE_THAN_CORES}"], f"data.num_workers={MORE_THAN_CORES} on a machine with"),
    ([f"train.gpus={MORE_THAN_CORES}"], f"train.gpus={MORE_THAN_CORES} processes on"),
    (["model.name=resnet34", "model.in_chans=3", "model.input_size=512", "train.batch_size=512"],
     "one training step needs about"),  # activations, not only parameters
])
def test_costly_settings_come_back_as_warnings_to_confirm(small_folder, overrides, warning):
    from fer.training.validate import check_config

    checked = check_config(load_config(None, [f"data.path={small_folder}", *overrides]))
    assert any(warning in w for w in checked.warnings), checked.warnings


def test_every_dashboard_cache_keyed_on_input_is_bounded():
    """A cache keyed on what a visitor picks holds a bounded number of entries (st.cache_* max_entries)."""
    import ast
    from pathlib import Path

    unbounded = []
    for path in (Path(__file__).parents[1] / "dashboard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef) or not node.args.args:
                continue  # a cache without arguments holds one entry
            for deco in node.decorator_list:
                call = deco if isinstance(deco, ast.Call) else None
                name = ast.unparse(call.func if call else deco)
                if name.startswith("st.cache_") and not any(k.arg == "max_entries" for k in (call.keywords if call else [])):
                    unbounded.append(f"{path.name}:{node.name}")
    assert unbounded == []


# --- one-line errors, and commands that check what they need before loading anything -------------------------

def test_predict_refuses_an_output_it_cannot_write_and_a_silly_margin(small_folder, tmp_path, capsys):
    from fer.cli.main import main

    face = str(next((small_folder / "test" / "happy").iterdir()))
    (tmp_path / "a-file").write_text("")
    assert main(["predict", face, "--whole-image", "--annotate", str(tmp_path / "a-file" / "out.png")]) == 2
    assert "cannot write into" in capsys.readouterr().err
    # OpenCV refuses the file only once the model ran: the command fails instead of reporting it written.
    done = subprocess.run([sys.executable, "-m", "fer", "predict", face, "--whole-image", "--annotate",
                           str(tmp_path / "out.unknown-extension")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "cannot write" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.unknown-extension").exists()
    with pytest.raises(SystemExit) as caught:
        main(["predict", face, "--margin", "1e9"])
    assert caught.value.code == 2 and "outside 0 to 1" in capsys.readouterr().err


def test_export_of_a_run_without_its_checkpoint_fails_before_loading_anything(small_folder, tmp_path, capsys):
    from fer.cli.main import main
    from fer.training.fit import create_run
    from fer.training.validate import check_config

    run = create_run(check_config(load_config(None, [f"data.path={small_folder}"])), tmp_path)
    assert main(["export", run.name, "--runs-dir", str(tmp_path)]) == 2
    assert "has no best.pt yet" in capsys.readouterr().err


def test_a_sweep_storage_whose_driver_is_missing_is_one_line(tmp_path):
    pytest.importorskip("optuna")
    from fer.jobs.sweeps.study import SweepError, load_study

    import importlib.util

    if importlib.util.find_spec("psycopg2"):
        pytest.skip("PostgreSQL's driver is installed here")
    with pytest.raises(SweepError, match=r"driver is not installed \(pip install psycopg2?\)") as caught:
        load_study("s", tmp_path, "postgresql://fer:secret@db.example/fer")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(SweepError, match="cannot open the sweep storage"):
        load_study("s", tmp_path, "mysql+nosuchdriver://fer:secret@db.example/fer")
