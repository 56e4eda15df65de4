"""Optuna sweeps: the search space, and a real sweep on a small sample (trials through the job queue).

The sweep test runs real trials through the background worker: TPE proposes, each trial is a run
folder, per-epoch validation accuracy goes to Optuna, the median pruner stops poor trials, and the
study (SQLite in the runs folder) is resumed to more trials.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from fer.config import ConfigError, load_config
from fer.runs.store import list_runs, read_config, read_metrics, read_status

optuna = pytest.importorskip("optuna")  # the `sweep` extra (installed by the dev extra, so CI always runs these)

from fer.jobs.sweeps import (best_config, history, importances, list_sweeps, load_study, parse_space,  # noqa: E402
                        reproduce_command, trials_table)
from fer.jobs.sweeps.space import as_overrides, trial_layer  # noqa: E402


def test_space_parses_ranges_and_choices_of_any_field():
    space = parse_space({"optim.lr": {"low": 1e-4, "high": 0.1, "log": True}, "train.batch_size": {"low": 16, "high": 64,
                         "step": 16}, "model.kwargs.widths": {"choices": [[8, 16], [16, 32]]}, "augmentation": ["none",
                         "standard"], "model.kwargs.dropout": {"low": 0.0, "high": 0.5, "step": 0.1}})
    assert isinstance(space["optim.lr"].distribution, optuna.distributions.FloatDistribution)
    assert space["optim.lr"].distribution.log
    assert isinstance(space["train.batch_size"].distribution, optuna.distributions.IntDistribution)  # an int field
    assert space["model.kwargs.widths"].encoded and not space["augmentation"].encoded
    sampled = {"optim.lr": 0.01, "train.batch_size": 32, "model.kwargs.widths": "[16, 32]", "augmentation": "none",
               "model.kwargs.dropout": 0.2}
    layer = trial_layer(space, sampled)
    assert layer["model"]["kwargs"] == {"widths": [16, 32], "dropout": 0.2} and layer["train"]["batch_size"] == 32
    cfg = load_config(None, as_overrides(space, sampled))  # the printed --set items rebuild the same values
    assert cfg.model.kwargs["widths"] == [16, 32] and cfg.optim.lr == 0.01 and cfg.augmentation == "none"


@pytest.mark.parametrize("space, message", [
    ({"optim.learning_rate": [0.1]}, "unknown config key"),
    ({"optim.lr": {"low": 0.1}}, "low and high"),
    ({"optim.lr": {"choices": []}}, "non-empty list"),
    ({"optim.lr": {"low": 1, "high": 0.1}}, "optim.lr"),
    ({"optim.lr": "0.1"}, "expected {low, high}"),
    ({"train.epochs": {"low": 1, "high": 5, "type": "complex"}}, "int or float"),
])
def test_a_malformed_space_says_which_key(space, message):
    with pytest.raises(ConfigError, match=message):
        parse_space(space)


SPACE = """\
# The learning rate spans "learns nothing in 3 epochs" to "learns": the median pruner has work to do.
optim.lr: {low: 1.0e-7, high: 3.0e-2, log: true}
model.kwargs.hidden: [16, 64]
"""


@pytest.mark.slow
def test_a_sweep_prunes_stores_its_study_resumes_and_reports(small_folder, tmp_path, tiny_model):
    space, runs = tmp_path / "space.yaml", tmp_path / "runs"
    space.write_text(SPACE)
    sets = [f"data.path={small_folder}", "data.val_fraction=0.3", "train.epochs=3", "train.batch_size=16",
            tiny_model]
    base = [sys.executable, "-m", "fer", "sweep", "--name", "lr", "--runs-dir", str(runs), "--jobs", "2"]
    first = subprocess.run(base + ["--space", str(space), "--trials", "6", "--seed", "0", "--startup-trials", "2",
                                   *[a for s in sets for a in ("--set", s)]], capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (runs / "sweeps" / "lr.db").is_file() and list_sweeps(runs) == ["lr"]

    study = load_study("lr", runs)
    table = trials_table(study)
    assert len(table) == 6 and set(table["state"]) <= {"complete", "pruned"}
    assert (table["state"] == "pruned").sum() >= 1, first.stdout
    board = list_runs(runs)
    assert len(board) == 6
    for trial in study.trials:  # each trial is an ordinary run folder, tagged, with its sampled settings
        run_dir = runs / trial.user_attrs["run"]
        cfg, status = read_config(run_dir), read_status(run_dir)
        assert {"sweep:lr", f"trial:{trial.number}"} <= set(cfg.tags)
        assert cfg.optim.lr == trial.params["optim.lr"] and cfg.model.kwargs["hidden"] == trial.params["model.kwargs.hidden"]
        reported = dict(trial.intermediate_values)
        assert reported == {int(r.epoch): r.val_acc for r in read_metrics(run_dir).itertuples()}
        if trial.state.name == "PRUNED":
            assert status["state"] == "pruned" and status["pruned"].startswith("pruned by the sweep at epoch")
            assert len(reported) < 3
        else:
            assert status["state"] == "completed" and trial.value == pytest.approx(status["best_val_acc"])
    assert "pruned" in set(board["status"])

    # Continue the stored study to 8 trials: no --space or --config needed, and none repeated.
    again = subprocess.run(base + ["--trials", "8", "--seed", "0"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    study = load_study("lr", runs)
    assert len(study.trials) == 8 and len(list_runs(runs)) == 8
    assert len({t.params["optim.lr"] for t in study.trials}) == 8
    found = importances(study)
    assert set(found) == {"optim.lr", "model.kwargs.hidden"} and sum(found.values()) == pytest.approx(1.0)
    assert "parameter importance (fANOVA" in again.stdout and "fer train --config" in again.stdout
    steps = history(study)
    assert steps["best so far"].is_monotonic_increasing

    report = subprocess.run([sys.executable, "-m", "fer", "sweep", "report", "lr", "--runs-dir", str(runs),
                             "--format", "json"], capture_output=True, text=True, timeout=120)
    facts = json.loads(report.stdout)
    assert facts["trials"] == 8 and facts["best"]["value"] == max(t.value for t in study.trials
                                                                 if t.state.name == "COMPLETE")
    best = best_config(study, epochs=20)
    assert best.optim.lr == facts["best"]["params"]["optim.lr"] and best.train.epochs == 20
    assert "from-sweep:lr" in best.tags and not any(t.startswith("sweep:") for t in best.tags)
    assert f"--config {runs / facts['best']['run'] / 'config.json'}" in reproduce_command(study, runs)


def test_a_bad_choice_is_refused_before_the_study_exists(small_folder, tmp_path, capsys):
    from fer.cli.main import main

    space = tmp_path / "space.yaml"
    space.write_text("augmentation: [standard, heavyy]\n")
    code = main(["sweep", "--name", "bad", "--space", str(space), "--trials", "2", "--runs-dir", str(tmp_path),
                 "--set", f"data.path={small_folder}"])
    assert code == 2 and "search space augmentation = 'heavyy': unknown augmentation" in capsys.readouterr().err
    assert not (tmp_path / "sweeps").exists() and list_sweeps(tmp_path) == []
    # --config takes a preset's name, as `fer train --config quick` does: the space is what is refused.
    code = main(["sweep", "--name", "bad", "--config", "quick", "--space", str(space), "--trials", "2",
                 "--runs-dir", str(tmp_path), "--set", f"data.path={small_folder}"])
    assert code == 2 and "unknown augmentation" in capsys.readouterr().err
    assert main(["sweep", "report", "nope", "--runs-dir", str(tmp_path)]) == 2
    assert "no sweep 'nope'" in capsys.readouterr().err
