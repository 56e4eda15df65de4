"""FER+ labels: the reference vote rules, the row join with fer2013.csv, and 8-class runs end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fer.cli.main import main
from fer.config import load_config
from fer.core.files import read_json
from fer.data import DataError, load_fer2013
from fer.data.ferplus import FERPLUS_CLASSES, VOTE_COLUMNS, apply_ferplus, ferplus_target
from fer.inference.predictor import Predictor
from fer.runs.checkpoint import load_checkpoint

# FER2013 label index -> FER+ column (angry, disgust, fear, happy, sad, surprise, neutral).
TO_FERPLUS = [4, 5, 6, 1, 3, 2, 0]


def _votes_for(i: int, label: int) -> tuple:
    """Ten annotators' votes for row i, and the image name ('' = removed by FER+): a pattern per i % 10."""
    votes = [0] * len(VOTE_COLUMNS)
    kind = i % 10
    if kind == 3:
        votes[7], votes[0] = 7, 3  # contempt by majority: the eighth class
    elif kind == 5:
        votes[8], votes[0] = 6, 4  # unknown wins: dropped
    elif kind == 7:
        votes[9] = 10  # not a face: dropped
    elif kind == 9:
        votes[0], votes[1], votes[2], votes[3] = 3, 3, 3, 1  # no majority: dropped, unless soft
    else:
        votes[TO_FERPLUS[label]], votes[(TO_FERPLUS[label] + 1) % 7] = 8, 2
    return votes, "" if i == 1 else f"fer{i:07d}.png"


@pytest.fixture(scope="module")
def ferplus_files(small_data, small_csv):
    """The small sample's fer2013.csv with a matching fer2013new.csv beside it (votes written above)."""
    from fer.core.constants import SPLITS
    lines = ["Usage,Image name," + ",".join(VOTE_COLUMNS)]
    for i, (label, split) in enumerate(zip(small_data.labels, small_data.splits)):
        votes, name = _votes_for(i, int(label))
        lines.append(f"{SPLITS[split]},{name}," + ",".join(map(str, votes)))
    votes_path = small_csv.with_name("fer2013new.csv")
    votes_path.write_text("\n".join(lines) + "\n")
    return small_csv, votes_path


def test_targets_follow_the_ferplus_reference_rules():
    def v(**named):
        out = np.zeros(len(VOTE_COLUMNS))
        for k, n in named.items():
            out[VOTE_COLUMNS.index(k)] = n
        return out

    assert ferplus_target(v(happiness=8, neutral=2)).tolist() == [0, 1, 0, 0, 0, 0, 0, 0]
    assert ferplus_target(v(happiness=5, neutral=5)) is None  # no strict majority
    assert ferplus_target(v(happiness=5, neutral=4, fear=1)).argmax() == 1  # the single vote is dropped first
    assert ferplus_target(v(unknown=6, neutral=4)) is None and ferplus_target(v(NF=10)) is None
    soft = ferplus_target(v(happiness=6, surprise=3, neutral=1), "soft")
    assert soft == pytest.approx([0, 6 / 9, 3 / 9, 0, 0, 0, 0, 0])
    assert ferplus_target(v(neutral=3, happiness=3, surprise=3, sadness=1), "soft") == pytest.approx(
        [1 / 3, 1 / 3, 1 / 3, 0, 0, 0, 0, 0])
    assert ferplus_target(v(neutral=2, happiness=2, surprise=2, sadness=2, anger=2), "soft") is None  # 5-way tie
    assert ferplus_target(v(happiness=6, unknown=3, neutral=1), "soft") == pytest.approx(
        [0, 1, 0, 0, 0, 0, 0, 0])  # unknown after an emotion is left out


def test_join_drops_what_ferplus_drops_and_adds_contempt(ferplus_files, small_data):
    csv_path, votes_path = ferplus_files
    data = load_fer2013(csv_path)
    majority = apply_ferplus(data, votes_path, "majority")
    assert majority.class_names == FERPLUS_CLASSES and len(FERPLUS_CLASSES) == 8
    kinds = np.arange(len(data)) % 10
    expected = (~np.isin(kinds, [5, 7, 9])) & (np.arange(len(data)) != 1)
    assert len(majority) == expected.sum()
    rows = np.array([int(s[4:]) - 2 for s in majority.sources])
    assert (rows == np.flatnonzero(expected)).all()
    contempt = majority.labels[np.isin(rows, np.flatnonzero(kinds == 3))]
    assert (contempt == 7).all() and len(contempt) > 10
    plain = ~np.isin(rows % 10, [3])
    assert (majority.labels[plain] == np.array(TO_FERPLUS)[data.labels[rows[plain]]]).all()
    soft = apply_ferplus(data, votes_path, "soft")
    assert len(soft) == len(majority) + ((kinds == 9) & (np.arange(len(data)) != 1)).sum()
    assert soft.soft_labels.shape == (len(soft), 8) and np.allclose(soft.soft_labels.sum(1), 1)
    assert "FER+ (majority)" in majority.report.summary()


def test_ferplus_needs_the_csv_and_a_matching_votes_file(ferplus_files, small_folder, tmp_path):
    csv_path, votes_path = ferplus_files
    with pytest.raises(DataError, match="fer2013.csv as the data source"):
        apply_ferplus(load_fer2013(small_folder), votes_path)
    with pytest.raises(DataError, match="github.com/microsoft/FERPlus"):
        apply_ferplus(load_fer2013(csv_path), tmp_path / "fer2013new.csv")
    short = tmp_path / "short.csv"
    short.write_text("\n".join(votes_path.read_text().splitlines()[:50]) + "\n")
    with pytest.raises(DataError, match="do not belong together"):
        apply_ferplus(load_fer2013(csv_path), short)


@pytest.mark.parametrize("mode", ["majority", "soft"])
def test_an_eight_class_ferplus_run_end_to_end(open_page, ferplus_files, tmp_path, mode, capsys, tiny_overrides):
    from fer.training.fit import train

    csv_path, _ = ferplus_files
    run = train(load_config(None, tiny_overrides(csv_path, tmp_path, 2, "data.labels=ferplus",
                                                 f"data.ferplus_mode={mode}", f"name=ferplus-{mode}")))
    ckpt = load_checkpoint(run / "best.pt")
    assert tuple(ckpt["class_names"]) == FERPLUS_CLASSES
    assert json.loads((run / "config.json").read_text())["data"]["labels"] == "ferplus"
    test = read_json(run / "eval_PublicTest.json")
    assert test["class_names"] == list(FERPLUS_CLASSES) and len(test["confusion_matrix"]) == 8
    kept = apply_ferplus(load_fer2013(csv_path), csv_path.with_name("fer2013new.csv"), mode)
    assert test["n"] == len(kept.split_indices("PublicTest"))  # FER+ test accuracy on FER+'s kept faces
    probs = Predictor.from_run(run).predict_faces(kept.images[:5])
    assert probs.shape == (5, 8)
    assert main(["eval", str(run), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["class_names"] == list(FERPLUS_CLASSES)
    if mode == "majority":  # the class names reach the pages too
        at = open_page("confusion", runs_dir=tmp_path, data_path=csv_path)
        at.selectbox(key="confusion_run").set_value("ferplus-majority").run()
        assert not at.exception
        assert list(at.dataframe[0].value.index) == list(FERPLUS_CLASSES)


def test_bad_ferplus_settings_fail_before_a_run_exists(ferplus_files, small_folder, tmp_path, tiny_overrides):
    from fer.config import ConfigError
    from fer.training.validate import check_config

    csv_path, _ = ferplus_files
    with pytest.raises(ConfigError, match="data.ferplus_mode"):
        check_config(load_config(None, tiny_overrides(csv_path, tmp_path, 1, "data.labels=ferplus",
                                                      "data.ferplus_mode=vote")))
    with pytest.raises(DataError, match="fer2013.csv as the data source"):
        check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "data.labels=ferplus")))
    assert not list(tmp_path.iterdir())
