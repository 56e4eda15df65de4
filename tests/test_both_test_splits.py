"""Both test splits as one test set (Study E tested on 7,178 faces): splits, checks, suites, and a real run."""
from dataclasses import replace

import numpy as np
import pytest

from fer.config import ConfigError, TEST_SPLITS, VAL_SOURCES, load_config
from fer.core.constants import BOTH_TESTS, SPLITS
from fer.data import make_splits
from fer.jobs.suites import fit_to_data, suite_configs
from fer.runs.store import list_runs, read_json
from fer.training.estimate import planned_images
from fer.training.fit import train
from fer.training.validate import check_config


@pytest.fixture(scope="module")
def three_splits(small_data):
    """The real sample with every other PublicTest face moved to PrivateTest, as Kaggle's CSV has all three."""
    splits = small_data.splits.copy()
    public = np.flatnonzero(splits == SPLITS.index("PublicTest"))
    splits[public[::2]] = SPLITS.index("PrivateTest")
    return replace(small_data, splits=splits)


@pytest.fixture(scope="module")
def three_split_csv(three_splits, write_fer_csv, tmp_path_factory):
    return write_fer_csv(three_splits, tmp_path_factory.mktemp("both") / "fer2013.csv")


def test_both_tests_are_a_test_split_but_never_a_validation_source():
    assert BOTH_TESTS in TEST_SPLITS and BOTH_TESTS not in VAL_SOURCES


def test_the_union_is_both_test_splits_and_disjoint_from_training(three_splits):
    s = make_splits(three_splits, test_split=BOTH_TESTS)
    public, private = three_splits.split_indices("PublicTest"), three_splits.split_indices("PrivateTest")
    assert len(public) and len(private)
    assert set(s.test) == set(public) | set(private)
    assert not set(s.test) & (set(s.train) | set(s.val))
    for val_source in ("PublicTest", "PrivateTest"):  # a half of the test set can never select the model
        with pytest.raises(ValueError, match="validation and test are both"):
            make_splits(three_splits, val_source=val_source, test_split=BOTH_TESTS)
    with pytest.raises(ValueError, match="both in data.train_splits and the test split"):
        make_splits(three_splits, test_split=BOTH_TESTS, train_splits=["Training", "PrivateTest"])


def test_check_config_refuses_validating_on_half_of_the_test_set(three_split_csv):
    cfg = load_config(None, [f"data.path={three_split_csv}", f"data.test_split={BOTH_TESTS}",
                             "data.val_source=PrivateTest"])
    with pytest.raises(ConfigError, match="never used for model selection"):
        check_config(cfg)


def test_the_time_estimate_counts_both_halves():
    cfg = load_config(None, [f"data.test_split={BOTH_TESTS}"])
    assert planned_images(cfg, {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589})["test"] == 7178


def test_study_e_tests_on_both_where_both_exist_and_says_so_where_not():
    for cfg in suite_configs("study-e-ladder"):
        assert cfg.data.test_split == BOTH_TESTS
        assert fit_to_data(cfg, list(SPLITS)) is cfg
        fitted = fit_to_data(cfg, ["Training", "PublicTest"])  # Kaggle's image folders
        assert fitted.data.test_split == "PublicTest" and "adapted:test_split=PublicTest" in fitted.tags


def test_a_run_scores_the_union_once_and_the_leaderboard_reads_it(three_split_csv, three_splits, tmp_path,
                                                                    tiny_overrides):
    run = train(load_config(None, tiny_overrides(three_split_csv, tmp_path, 1, f"data.test_split={BOTH_TESTS}")))
    scored = read_json(run / f"eval_{BOTH_TESTS}.json")
    n_test = len(three_splits.split_indices("PublicTest")) + len(three_splits.split_indices("PrivateTest"))
    assert scored["split"] == BOTH_TESTS and scored["n"] == n_test
    assert (run / f"predictions_{BOTH_TESTS}.csv").exists()
    row = list_runs(tmp_path).iloc[0]
    assert row["test_split"] == BOTH_TESTS and row["test_n"] == n_test
    assert row["test_acc"] == pytest.approx(scored["accuracy"])
