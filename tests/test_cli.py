"""The `fer` console script end to end, as a user runs it (real subprocesses)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fer.cli.main import main
from fer.runs.store import read_metrics, read_status, resolve_run
from fer.training.validate import check_config

ROOT = Path(__file__).resolve().parents[1]


def fer(*args, env=None, check=True, timeout=300):
    """Run `fer ARGS` through the installed console script's module."""
    proc = subprocess.run([sys.executable, "-m", "fer.cli.main", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"fer {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def sets(items):
    return [a for item in items for a in ("--set", item)]


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["runs"], ["cancel"], ["data", "stats"]])
def test_help_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: fer" in out
    if command == ["train"]:
        assert "plain_cnn" in out and "resnet18" in out and "onecycle" in out  # registry choices


# Run in a fresh interpreter: `fer … --help` for every command of the tree, then which heavy libraries loaded.
HELP_SCRIPT = """
import argparse, contextlib, io, sys
from fer.cli.main import build_parser, main

def every_command(parser, prefix=()):
    yield prefix
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from every_command(child, (*prefix, name))

commands = list(every_command(build_parser()))
for command in commands:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main([*command, '--help'])
        except SystemExit as e:
            assert e.code == 0 and 'usage: fer' in out.getvalue(), command
heavy = sorted(m for m in ('torch', 'torchvision', 'cv2', 'mediapipe', 'pytorch_grad_cam', 'optuna', 'ray',
                           'onnxruntime', 'sklearn', 'streamlit') if m in sys.modules)
print(len(commands), heavy)
"""


def test_every_help_answers_without_pytorch_opencv_or_mediapipe():
    done = subprocess.run([sys.executable, "-c", HELP_SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    count, heavy = done.stdout.split(" ", 1)
    assert int(count) >= 20 and heavy.strip() == "[]", done.stdout


def test_the_cli_catalog_matches_the_registries():
    from fer.cli.catalog import build_catalog, catalog

    assert catalog() == json.loads(json.dumps(build_catalog())), "run: python -m fer.cli.catalog"


@pytest.mark.slow
def test_train_runs_eval_end_to_end(small_folder, tmp_path, tiny_overrides):
    config = tmp_path / "exp.yaml"
    config.write_text("name: cli-run\ntags: [cli]\noptim:\n  lr: 0.003\n")
    proc = fer("train", "--config", config, *sets(tiny_overrides(small_folder, tmp_path / "runs", 2)),
               "--optimizer", "adam", "--augmentation", "light")
    assert "completed, test accuracy" in proc.stdout
    assert "epoch 2/2" in proc.stderr  # log echo
    run = resolve_run("cli-run", tmp_path / "runs")
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["optim"]["name"] == "adam" and cfg["augmentation"] == "light" and cfg["optim"]["lr"] == 0.003
    assert read_status(run)["launched_from"] == "terminal"  # its dashboard card says so, and Stop, not Cancel

    table = fer("runs", "--runs-dir", tmp_path / "runs", env={"COLUMNS": "400"}).stdout  # wide: every column
    assert run.name in table and "completed" in table and "plain_cnn" in table
    narrow = fer("runs", "--runs-dir", tmp_path / "runs", env={"COLUMNS": "80"}).stdout
    assert max(map(len, narrow.splitlines())) <= 80 and "cli-run" in narrow and "%" in narrow
    rows = json.loads(fer("runs", "--runs-dir", tmp_path / "runs", "--format", "json").stdout)
    mine = [r for r in rows if r["source"] == "local"]
    assert [r["run_id"] for r in mine] == [run.name] and 0 <= mine[0]["test_acc"] <= 1
    assert [r["run_id"] for r in rows if r["source"] == "built-in"] == ["default"]  # the shipped model

    out = fer("eval", "cli-run", "--runs-dir", tmp_path / "runs", "--split", "val").stdout
    assert "val (" in out and "accuracy" in out and "true \\ pred" in out
    result = json.loads(fer("eval", run, "--json").stdout)
    stored = json.loads((run / "eval_PublicTest.json").read_text())
    assert result["split"] == "PublicTest" and result["accuracy"] == pytest.approx(stored["accuracy"])
    assert (run / "predictions_val.csv").exists()


@pytest.mark.slow
def test_crash_then_resume(small_folder, tmp_path, tiny_overrides):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "fer.cli.main", "train", "--quiet",
            *sets(tiny_overrides(small_folder, runs, 30, "name=crashy", "augmentation=none"))]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        run = None
        while time.monotonic() < deadline:
            found = list(runs.glob("*crashy*")) if runs.exists() else []
            if found and (found[0] / "last.pt").exists() and len(read_metrics(found[0])) >= 1:
                run = found[0]
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
        assert run is not None, "the job never finished an epoch"
        proc.send_signal(signal.SIGKILL)  # a crash: no chance to write anything
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert read_status(run)["state"] == "interrupted"  # 'running' with a dead process
    done_before = len(read_metrics(run))
    assert done_before < 30
    out = fer("train", "--resume", run.name, "--runs-dir", runs, "--quiet").stdout
    assert "completed" in out
    metrics = read_metrics(run)
    assert list(metrics["epoch"]) == list(range(1, 31))
    assert "resuming from last.pt at epoch" in (run / "train.log").read_text()


@pytest.mark.slow
def test_sigterm_cancels_cleanly(small_folder, tmp_path, tiny_overrides):
    runs = tmp_path / "runs"
    args = [sys.executable, "-m", "fer.cli.main", "train", "--quiet",
            *sets(tiny_overrides(small_folder, runs, 50, "name=term"))]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        found = list(runs.glob("*term*")) if runs.exists() else []
        if found and read_status(found[0]).get("state") == "running":
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "cancelled" in stdout
    assert read_status(found[0])["state"] == "cancelled"


def test_cancel_command_goes_through_the_job_queue(small_folder, tmp_path, tiny_overrides):
    from fer.config import load_config
    from fer.runs.writer import write_status
    from fer.training.fit import create_run
    queued = create_run(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=queued"))))
    assert read_status(queued)["state"] == "queued"
    assert "cancelled (it was queued)" in fer("cancel", queued).stdout  # it simply leaves the queue
    assert read_status(queued)["state"] == "cancelled" and not (queued / "CANCEL").exists()
    running = create_run(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=running"))))
    write_status(running, "running")  # this test process plays the training job
    assert "cancel requested" in fer("cancel", running).stdout
    assert (running / "CANCEL").exists()


@pytest.mark.slow
def test_data_stats_on_csv_and_folders(small_csv, small_folder):
    out = fer("data", "stats", small_csv).stdout
    assert "385 images" in out and "imbalance ratio" in out and "exact duplicates" in out
    summary = json.loads(fer("data", "stats", small_folder, "--json").stdout)
    assert summary["counts"]["Training"]["total"] == 280 and summary["counts"]["PublicTest"]["total"] == 105
    assert summary["n_images"] == 385


@pytest.mark.parametrize("args, message", [
    (["train", "--set", "optim.lrr=1"], "unknown config key 'optim.lrr'"),
    (["train", "--set", "model.name=nope"], "unknown model 'nope'"),
    (["data", "stats", "/nonexistent/fer"], "does not exist"),
    (["eval", "no-such-run"], "no run 'no-such-run'"),
    (["train", "--set", "data.sampler=sometimes"], "data.sampler must be"),
    (["train"], "missing does not exist"),
])
def test_errors_are_clear_and_exit_2(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_DATA", str(tmp_path / "missing"))
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # no run folder was left behind


def test_light_commands_never_import_torch(tmp_path):
    probe = ("import sys; from fer.cli.main import main; main(['runs', '--runs-dir', sys.argv[1]]); "
             "main(['cancel', 'nothing', '--runs-dir', sys.argv[1]]); print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr  # so they answer fast on a busy machine
    assert "no run 'nothing'" in done.stderr


def test_runs_table_fits_the_terminal(trained_run):
    from fer.cli.queue import fit_table
    from fer.runs.store import BOARD_COLUMNS, list_runs
    board = list_runs(trained_run.parent, include_default=True)[BOARD_COLUMNS]
    for width in (60, 100, 160):
        text = fit_table(board, width)
        assert max(map(len, text.splitlines())) <= width and "artifacts" in text and "default" in text
    assert "run_id" in fit_table(board, 400) and "run_id" not in fit_table(board, 100)


def test_the_dashboard_settings_hold_outside_the_checkout():
    import tomllib

    from fer.cli.dashboard import STREAMLIT_OPTIONS

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    flat = {f"{section}.{key}": str(value).lower() if isinstance(value, bool) else str(value)
            for section, values in config.items() for key, value in values.items()}
    assert flat.pop("server.address") == "127.0.0.1"  # `fer dashboard --host` sets it
    assert flat == STREAMLIT_OPTIONS


def test_a_pip_install_carries_the_dashboard_the_presets_and_the_catalog(tmp_path):
    import zipfile

    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", str(ROOT),
                           "-w", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("fer_studio-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    from fer.training.presets import PRESETS
    expected = {"dashboard/app.py", "dashboard/forms.py", "dashboard/views/train.py", "fer/cli/catalog.json",
                "fer/runs/shipped/best.pt"} | {f"fer/configs/{PRESETS.get(n).relative_to(PRESETS.get('quick').parent)}"
                                               for n in PRESETS.in_order()}
    assert expected <= names, sorted(expected - names)
    assert not any(n.startswith(("tests/", "benchmarks/", "docs/")) for n in names)
