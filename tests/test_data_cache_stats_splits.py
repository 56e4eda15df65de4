"""The decoded cache, the statistics functions and the train/val/test splits."""
import os
import shutil
import time

import numpy as np
import pytest

from fer.core.constants import CLASS_NAMES
from fer.data import FaceData, cache as cache_module, load_fer2013, make_splits
from fer.data.stats import (class_counts, duplicate_groups, imbalance_ratio, leakage_report, mean_faces, pixel_stats,
                            summarize)


def test_cache_serves_second_load_and_notices_changes(small_folder, tmp_path, monkeypatch):
    root = tmp_path / "fer"
    shutil.copytree(small_folder, root)
    first = load_fer2013(root)
    calls = []
    monkeypatch.setattr(cache_module, "read_image_folders", lambda p, **options: calls.append(p) or first)
    second = load_fer2013(root)
    assert calls == []  # served from the cache, not decoded again
    np.testing.assert_array_equal(second.images, first.images)
    np.testing.assert_array_equal(second.sources, first.sources)
    victim = next((root / "train" / "happy").iterdir())
    stamp = time.time() + 5
    os.utime(victim, (stamp, stamp))
    load_fer2013(root)
    assert calls == [root]  # an mtime change invalidates the cache


def test_first_decode_reports_its_progress(small_folder, small_csv):
    for source in (small_folder, small_csv):
        seen = []
        load_fer2013(source, use_cache=False, progress=lambda share, message: seen.append((share, message)))
        assert seen and all(0 <= share <= 1 for share, _ in seen) and seen[0][1]


def test_full_dataset_second_load_comes_from_the_cache(fer_root, full_data, monkeypatch):
    def no_decoding(path, **options):
        raise AssertionError(f"{path} was decoded again instead of read from the cache")

    monkeypatch.setattr(cache_module, "read_image_folders", no_decoding)
    again = load_fer2013(fer_root)  # `full_data` decoded it once this session; the README's benchmark times it
    assert len(again) == len(full_data)
    np.testing.assert_array_equal(again.labels, full_data.labels)


def test_counts_imbalance_and_pixels(full_data):
    counts = class_counts(full_data)
    assert list(counts.columns) == list(CLASS_NAMES) + ["total"]
    assert imbalance_ratio(full_data, "Training") == pytest.approx(7215 / 436)
    stats = pixel_stats(full_data, "Training")
    train = full_data.images[full_data.split_indices("Training")].astype(np.float64)
    assert stats["mean"] == pytest.approx(train.mean(), rel=1e-9)
    assert stats["std"] == pytest.approx(train.std(), rel=1e-9)
    assert sum(stats["histogram"]) == train.size and stats["n_images"] == 28_709


def test_duplicates_and_leakage_on_real_images(small_data):
    # Three known copies: one inside Training, one from Training into PublicTest with another label.
    a, b = small_data.split_indices("Training")[:2]
    images = np.concatenate([small_data.images, small_data.images[[a, b]]])
    labels = np.concatenate([small_data.labels, [small_data.labels[a], (small_data.labels[b] + 1) % 7]])
    splits = np.concatenate([small_data.splits, [0, 1]])
    sources = np.concatenate([small_data.sources, ["copy_a", "copy_b"]])
    data = FaceData(images, labels, splits, sources)
    baseline = leakage_report(small_data)
    report = leakage_report(data)
    assert report["duplicate_groups"] == baseline["duplicate_groups"] + 2
    assert report["within_split_groups"] == baseline["within_split_groups"] + 1
    assert report["cross_split_groups"] == baseline["cross_split_groups"] + 1
    assert report["conflicting_label_groups"] == baseline["conflicting_label_groups"] + 1
    dups = duplicate_groups(data)
    assert {"copy_a", "copy_b"} <= set(dups["source"])


def test_full_dataset_leakage_report(full_data):
    report = leakage_report(full_data)
    # FER2013 is known to hold exact duplicates, some across Training and PublicTest.
    assert report["duplicate_groups"] > 0 and report["cross_split_groups"] > 0
    assert set(report["cross_split_pairs"]) == {"Training/PublicTest"}


def test_mean_faces(small_data):
    means = mean_faces(small_data, "Training")
    assert means.shape == (7, 48, 48)
    happy = small_data.images[(small_data.labels == 3) & (small_data.splits == 0)].astype(np.float64).mean(0)
    np.testing.assert_allclose(means[3], happy, rtol=1e-5)


def test_summarize_is_json_friendly(small_data):
    import json
    summary = summarize(small_data)
    assert json.loads(json.dumps(summary))["counts"]["Training"]["total"] == 280


def test_splits_stratified_disjoint_and_seeded(full_data):
    s = make_splits(full_data, val_fraction=0.1, seed=3)
    train_set, val_set, test_set = set(s.train), set(s.val), set(s.test)
    assert not (train_set & val_set) and not (train_set & test_set) and not (val_set & test_set)
    assert len(s.train) + len(s.val) == 28_709 and len(s.test) == 3_589
    val_share = np.bincount(full_data.labels[s.val], minlength=7) / len(s.val)
    train_share = np.bincount(full_data.labels[s.train], minlength=7) / len(s.train)
    np.testing.assert_allclose(val_share, train_share, atol=0.002)
    again = make_splits(full_data, val_fraction=0.1, seed=3)
    np.testing.assert_array_equal(again.val, s.val)
    assert not np.array_equal(make_splits(full_data, val_fraction=0.1, seed=4).val, s.val)


def test_splits_publictest_validation_and_test_never_used_for_selection(full_data):
    with pytest.raises(ValueError, match="never used for model selection"):
        make_splits(full_data, val_source="PublicTest", test_split="PublicTest")
    s = make_splits(full_data, val_source="PublicTest", test_split="PrivateTest")
    assert len(s.val) == 3_589 and len(s.test) == 0 and len(s.train) == 28_709


def test_splits_limit_keeps_class_proportions(full_data):
    s = make_splits(full_data, limit=700, seed=0)
    assert len(s.train) == len(s.val) == 700
    assert len(s.test) == 3_589  # the test split stays whole, so runs compare on the same images...
    assert set(np.unique(full_data.labels[s.train])) == set(range(7))
    assert len(make_splits(full_data, limit=700, test_limit=500, seed=0).test) == 500  # ...unless asked
