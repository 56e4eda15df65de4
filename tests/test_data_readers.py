"""Both FER2013 readers on real images, the known counts, and every kind of bad input."""
import shutil

import numpy as np
import pytest

from fer.core.constants import CLASS_NAMES, SPLITS
from fer.data import DataError, load_fer2013, read_fer_csv, read_image_folders
from fer.data.readers import resolve_source
from fer.data.stats import class_counts


def test_full_image_folders_match_published_counts(full_data, known_counts):
    counts = class_counts(full_data)
    assert counts.loc["Training", "total"] == 28_709
    assert counts.loc["PublicTest", "total"] == 3_589
    for split, per_class in known_counts.items():
        for name, n in per_class.items():
            assert counts.loc[split, name] == n, (split, name)
    assert full_data.images.shape == (32_298, 48, 48) and full_data.images.dtype == np.uint8
    assert full_data.report.n_skipped == 0


def test_split_comes_from_file_prefix(full_data):
    names = full_data.split_names()
    for source, split in zip(full_data.sources[::997], names[::997]):
        assert source.split("/")[-1].startswith(split + "_")


def test_a_csv_becomes_the_test_suites_image_folders(small_csv, small_data, tmp_path, csv_as_image_folders):
    folders = read_image_folders(csv_as_image_folders(small_csv, tmp_path / "fer2013"))
    order = np.lexsort((folders.labels, folders.images.reshape(len(folders), -1).sum(1)))
    expected = np.lexsort((small_data.labels, small_data.images.reshape(len(small_data), -1).sum(1)))
    np.testing.assert_array_equal(folders.images[order], small_data.images[expected])  # PNG is lossless
    np.testing.assert_array_equal(folders.labels[order], small_data.labels[expected])
    assert set(folders.split_names()) == {"Training", "PublicTest"}


def test_csv_reader_matches_folder_reader(small_data, small_csv):
    from_csv = read_fer_csv(small_csv)
    assert len(from_csv) == len(small_data) > 300
    np.testing.assert_array_equal(from_csv.images, small_data.images)
    np.testing.assert_array_equal(from_csv.labels, small_data.labels)
    np.testing.assert_array_equal(from_csv.splits, small_data.splits)
    assert from_csv.report.n_skipped == 0
    assert from_csv.sources[0] == "csv:2"


def test_icml_variant_header_with_spaces(small_data, tmp_path, write_fer_csv):
    path = write_fer_csv(small_data.subset(np.arange(20)), tmp_path / "icml_face_data.csv",
                         header=("emotion", " Usage", " pixels"))
    # Column order differs too: rewrite rows as emotion, Usage, pixels.
    lines = path.read_text().splitlines()
    rows = [lines[0]] + [",".join([r.split(",")[0], r.split(",")[2], r.split(",")[1]]) for r in lines[1:]]
    path.write_text("\n".join(rows) + "\n")
    data = load_fer2013(tmp_path, use_cache=False)  # a folder holding icml_face_data.csv
    np.testing.assert_array_equal(data.images, small_data.images[:20])
    np.testing.assert_array_equal(data.labels, small_data.labels[:20])


def test_csv_bad_rows_are_skipped_and_counted(small_data, tmp_path, write_fer_csv):
    good = small_data.subset(np.arange(10))
    pixels = " ".join(["7"] * 2304)
    bad = [f"3,{' '.join(['7'] * 2303)},Training",            # wrong pixel count
           f"3,{pixels[:-1]}x,Training",                       # non-numeric pixel
           f"9,{pixels},Training",                             # label out of range
           f"happy,{pixels},Training",                         # non-numeric label
           f"3,{pixels.replace('7', '300', 1)},Training",      # pixel out of range
           f"3,{pixels},Validation",                           # unknown Usage
           "3",                                                 # missing columns
           ""]                                                  # blank line: ignored
    data = read_fer_csv(write_fer_csv(good, tmp_path / "fer2013.csv", extra_rows=bad))
    assert len(data) == 10
    np.testing.assert_array_equal(data.images, good.images)
    assert data.report.n_skipped == 7
    assert data.report.skipped["wrong pixel count (expected 2304)"] == 1
    assert data.report.skipped["non-numeric pixels"] == 1
    assert data.report.skipped["emotion out of range 0-6"] == 1
    assert data.report.skipped["non-numeric emotion"] == 1
    assert data.report.skipped["pixel value out of range 0-255"] == 1
    assert data.report.skipped["unknown Usage"] == 1
    assert data.report.skipped["missing columns"] == 1
    assert ("csv:12", "wrong pixel count (expected 2304)") in data.report.examples
    assert "skipped 7" not in data.report.summary() and "wrong pixel count" in data.report.summary()


def test_csv_without_usage_is_all_training(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("emotion,pixels\n3," + " ".join(["1"] * 2304) + "\n")
    data = read_fer_csv(path)
    assert data.split_names().tolist() == ["Training"] and "no Usage column" in data.report.summary()


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("emotion,pixels,Usage\n", "no rows"),
    ("label,image\n1,2\n", "missing column"),
    ("emotion,pixels,Usage\n3,1 2 3,Training\n", "no usable rows"),
])
def test_csv_unusable_sources_raise_clear_errors(tmp_path, content, message):
    path = tmp_path / "fer2013.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_fer_csv(path)


def test_image_folders_bad_files_unknown_classes_and_case(small_folder, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(small_folder, root)
    (root / "train" / "happy").rename(root / "train" / "HAPPY")  # class folders are case-insensitive
    (root / "train" / "angry" / "Training_broken.jpg").write_bytes(b"not a jpeg at all")
    (root / "train" / "angry" / "Training_empty.jpg").write_bytes(b"")
    (root / "train" / "angry" / "notes.txt").write_text("hello")
    (root / "train" / "contempt").mkdir()
    shutil.copy(next((root / "train" / "sad").iterdir()), root / "train" / "contempt" / "Training_1.jpg")
    (root / "extras").mkdir()
    data = read_image_folders(root)
    reference = read_image_folders(small_folder)
    assert len(data) == len(reference)
    assert (data.labels == CLASS_NAMES.index("happy")).sum() == (reference.labels == 3).sum()
    assert data.report.skipped == {"unreadable image": 2, "not an image file": 1,
                                   "unknown class folder 'contempt'": 1}
    assert any("extras" in note for note in data.report.notes)


def test_split_from_folder_when_no_prefix_and_resize(small_folder, tmp_path):
    import cv2
    root = tmp_path / "data"
    for split in ("train", "test"):
        (root / split / "fear").mkdir(parents=True)
    src = next((small_folder / "train" / "fear").iterdir())
    shutil.copy(src, root / "train" / "fear" / "a.jpg")
    shutil.copy(src, root / "test" / "fear" / "b.jpg")
    shutil.copy(src, root / "test" / "fear" / "PrivateTest_9.jpg")
    big = cv2.resize(cv2.imread(str(src), cv2.IMREAD_GRAYSCALE), (96, 96))
    cv2.imwrite(str(root / "test" / "fear" / "big.png"), big)
    data = read_image_folders(root)
    by_source = dict(zip(data.sources, data.split_names()))
    assert by_source == {"train/fear/a.jpg": "Training", "test/fear/b.jpg": "PublicTest",
                         "test/fear/PrivateTest_9.jpg": "PrivateTest", "test/fear/big.png": "PublicTest"}
    assert data.report.resized == 1 and data.images.shape[1:] == (48, 48)
    assert set(SPLITS) == set(by_source.values())


def test_empty_and_missing_sources(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_fer2013(tmp_path / "nowhere", use_cache=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither fer2013.csv nor"):
        load_fer2013(tmp_path / "empty", use_cache=False)
    (tmp_path / "nofiles" / "train" / "happy").mkdir(parents=True)
    with pytest.raises(DataError, match="no images found"):
        load_fer2013(tmp_path / "nofiles", use_cache=False)


def test_resolve_source_finds_csv_and_folders(small_csv, small_folder):
    assert resolve_source(small_csv) == ("csv", small_csv)
    assert resolve_source(small_csv.parent) == ("csv", small_csv)
    assert resolve_source(small_folder) == ("folders", small_folder)
    assert resolve_source(small_folder.parent) == ("folders", small_folder)  # finds a fer2013/ subfolder
