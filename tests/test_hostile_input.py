"""Hostile and bad input: code-carrying pickles, escaping paths, YAML tags, damaged run folders, fuzzed
CSV rows and image bytes. Each is refused or survived with a one-line reason, never a traceback or a
write outside its folder. See docs/reliability.md.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st
from PIL import Image

from fer.config import ConfigError, load_config
from fer.data import DataError, read_fer_csv, read_image_folders
from fer.inference.classifiers import available_models, load_classifier, unusable_models
from fer.inference.images import ImageError, load_image
from fer.runs.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from fer.runs.store import SHIPPED_RUN_DIR, list_runs, resolve_run
from fer.runs.trash import delete_run
from fer.runs.writer import new_run_id, record_evaluation, rename_run

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                      HealthCheck.function_scoped_fixture])


def _fer(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fer", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-1500:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-1500:]
    for needle in needles:
        assert needle in lines[0], lines[0]


class _RunsCode:
    """Unpickling this creates a marker folder: what an attacker's checkpoint would do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _jpeg(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture()
def runs_copy(trained_run, tmp_path) -> Path:
    """A private copy of the session's trained run, alone in a runs folder."""
    runs = tmp_path / "runs"
    shutil.copytree(trained_run, runs / trained_run.name)
    return runs / trained_run.name


# --- checkpoints ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_pickle_that_runs_code_is_refused_everywhere_without_running(runs_copy, small_folder, tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format_version": 1, "model": _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(evil)
    face = next((small_folder / "test" / "happy").iterdir())
    _one_line_error(_fer("predict", face, "--checkpoint", evil), "refused")  # given as --checkpoint
    shutil.copy(evil, runs_copy / "best.pt")  # placed as a run's best.pt
    with pytest.raises(CheckpointError, match="refused"):
        load_classifier(runs_copy)
    _one_line_error(_fer("eval", runs_copy.name, "--runs-dir", runs_copy.parent, "--data", small_folder), "refused")
    with pytest.raises(ImageError, match="not an image"):  # uploaded (as a photo: the only upload there is)
        load_image(evil.read_bytes(), "evil.png")
    assert not marker.exists()


def test_damaged_checkpoints_give_one_line_errors(trained_run, small_folder, tmp_path):
    good = load_checkpoint(trained_run / "best.pt")
    cases = {
        "version": ({**good, "format_version": 99}, "format 1 (found 99)"),
        "keys": ({k: v for k, v in good.items() if k != "state_dict"}, "lacks state_dict"),
        "not_dict": ([1, 2, 3], "found None"),
    }
    for name, (payload, message) in cases.items():
        torch.save(payload, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_checkpoint(tmp_path / f"{name}.pt")
    mismatched = {**good, "state_dict": {k: v[:1] if v.ndim else v for k, v in good["state_dict"].items()}}
    with pytest.raises(CheckpointError, match="weights do not fit") as info:
        model_from_checkpoint(mismatched)
    assert "\n" not in str(info.value)
    raw = (trained_run / "best.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "empty.pt").write_bytes(b"")
    (tmp_path / "garbage.pt").write_bytes(os.urandom(4096))
    (tmp_path / "folder.pt").mkdir()
    for name, message in (("truncated", "unreadable checkpoint"), ("empty", "0 bytes"), ("garbage", "unreadable"),
                          ("folder", "is a folder"), ("missing", "no such checkpoint")):
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(tmp_path / f"{name}.pt")
        assert "\n" not in str(info.value)
    face = next((small_folder / "test" / "sad").iterdir())
    _one_line_error(_fer("predict", face, "--checkpoint", tmp_path / "truncated.pt"), "unreadable checkpoint")


# --- paths and names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../../escape", "/etc/passwd", "a\0b", "$(touch x); rm -rf ~ `id` | &", "n" * 10_000,
                                  "..", "CON", "ünïcødé 😀"])
def test_run_names_never_escape_the_runs_folder(name, tmp_path):
    from fer.runs.writer import create_run

    cfg = load_config(None, [])
    cfg.name = name
    run = create_run(cfg, tmp_path / "runs")
    assert run.parent == tmp_path / "runs" and len(run.name) < 80
    assert set(run.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
    assert json.loads((run / "config.json").read_text())["name"] == name  # the display name is kept as given
    assert list_runs(tmp_path / "runs").loc[0, "name"] == name
    assert not (tmp_path / "x").exists()


def test_run_references_outside_the_runs_folder_are_refused(runs_copy, tmp_path):
    runs = runs_copy.parent
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "best.pt").write_bytes(b"")  # a folder that is not a run, reached by ../
    for ref in ("../etc", "../../etc", "/etc", "..", ".", runs_copy.name + "/../..", "x" * 10_000):
        with pytest.raises(FileNotFoundError):
            resolve_run(ref, runs)
    with pytest.raises(ValueError, match="not a run reference"):
        resolve_run("a\0b", runs)
    assert resolve_run(runs_copy.name, runs) == runs / runs_copy.name  # ids, paths to run folders still work
    assert resolve_run(runs_copy, runs) == runs_copy
    _one_line_error(_fer("eval", "../../etc", "--runs-dir", runs), "no run folder")
    with pytest.raises(ValueError, match="at most 200"):
        rename_run(runs_copy, "n" * 10_000)
    with pytest.raises(ValueError, match="printable"):
        rename_run(runs_copy, "two\nlines")
    link = runs / "link"
    link.symlink_to(runs_copy)
    with pytest.raises(ValueError, match="not a run folder"):
        delete_run(link)
    assert runs_copy.is_dir()


def test_new_run_ids_are_plain_names():
    for name in ("../x", "a/b", "\0", "", " ", "-" * 50):
        run_id = new_run_id(name)
        assert "/" not in run_id and "\0" not in run_id and run_id not in (".", "..")


# --- configs --------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("text, message", [
    ("!!python/object/apply:os.mkdir ['{marker}']\n", "not valid YAML/JSON"),
    ("train: !!python/object/new:os.system [touch {marker}]\n", "not valid YAML/JSON"),
    ("trian: {epochs: 3}\n", "unknown config key(s) ['trian']"),
    ("train: {epochs: many}\n", "train.epochs: expected int"),
    ("- a list\n- of things\n", "a config file holds a mapping"),
    ("train: {epochs: 3\n", "not valid YAML/JSON"),
])
def test_hostile_config_files_fail_in_one_line_before_any_run_folder(text, message, small_folder, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(text.replace("{marker}", str(marker)))
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
                       .replace(")", r"\)")):
        load_config(path)
    runs = tmp_path / "runs"
    result = _fer("train", "--config", path, "--runs-dir", runs, "--set", f"data.path={small_folder}")
    _one_line_error(result, "error")
    assert not marker.exists() and not runs.exists()


def test_a_binary_config_file_is_a_one_line_error(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage\x80\x81")
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(path)


# --- damaged run folders ------------------------------------------------------------------------------------

def _damaged_runs(trained_run: Path, root: Path) -> dict:
    """A runs folder with one whole run and one of each kind of damage; name -> expected problem."""
    whole = root / "whole"
    shutil.copytree(trained_run, whole)
    damage = {
        "status_truncated": ("status.json", b'{"state": "compl', "status.json is unreadable"),
        "metrics_torn": ("metrics.jsonl", None, "metrics.jsonl has 2 unreadable lines"),
        "config_garbage": ("config.json", b"\x00\x01not json", "config.json is unreadable"),
        "config_list": ("config.json", b"[1, 2]", "config.json is unreadable"),
        "best_empty": ("best.pt", b"", "best.pt is empty (0 bytes)"),
        "best_garbage": ("best.pt", b"not a zip at all", "best.pt is not a PyTorch checkpoint"),
        "eval_garbage": ("eval_PublicTest.json", b'"just a string"', None),
    }
    for name, (file, content, _) in damage.items():
        shutil.copytree(trained_run, root / name)
        if content is None:
            with open(root / name / file, "a") as fh:
                fh.write('{"epoch": 5, "train_lo\n7\n')
        else:
            (root / name / file).write_bytes(content)
    (root / "only_metrics").mkdir()
    shutil.copy(trained_run / "metrics.jsonl", root / "only_metrics")
    (root / "stray.txt").write_text("not a run")
    (root / "mlruns").mkdir()  # a tracker's folder: not a run at all
    expected = {name: problem for name, (_, _, problem) in damage.items()}
    expected.update(whole=None, only_metrics="no config.json")
    return expected


def test_damaged_run_folders_are_listed_and_marked_never_hide_the_others(trained_run, tmp_path):
    root = tmp_path / "runs"
    expected = _damaged_runs(trained_run, root)
    board = list_runs(root).set_index("run_id")
    assert set(board.index) == set(expected)
    for name, problem in expected.items():
        if problem is None:
            assert board.loc[name, "problem"] is None or board.loc[name, "problem"] != board.loc[name, "problem"]
        else:
            assert problem in board.loc[name, "problem"], (name, board.loc[name, "problem"])
    assert board.loc["whole", "test_acc"] > 0 and board.loc["whole", "status"] == "completed"
    assert board.loc["eval_garbage", "test_acc"] != board.loc["eval_garbage", "test_acc"]  # NaN, not a crash
    assert "best_empty" not in available_models(root) and "whole" in available_models(root)
    assert unusable_models(root) == {"best_empty": "best.pt is empty (0 bytes)",
                                     "best_garbage": "best.pt is not a PyTorch checkpoint"}
    result = _fer("runs", "--runs-dir", root)
    assert result.returncode == 0 and "whole" in result.stdout or "artifacts" in result.stdout
    assert "damaged: " in result.stderr and "best.pt is empty" in result.stderr


def test_pages_list_every_other_run_beside_a_damaged_one(open_page, trained_run, small_folder, tmp_path):
    root = tmp_path / "runs"
    _damaged_runs(trained_run, root)
    runs = open_page("runs", data_path=small_folder, runs_dir=root)
    assert not runs.exception
    assert any("damaged files" in w.value and "best.pt is empty" in w.value for w in runs.warning)
    assert len(runs.dataframe[0].value) == 10  # nine run folders and the shipped model
    for page in ("predict", "confusion", "gradcam"):
        at = open_page(page, data_path=small_folder, runs_dir=root)
        assert not at.exception, (page, at.exception)
    predict = open_page("predict", data_path=small_folder, runs_dir=root)
    assert any("Not offered" in w.value and "best.pt is empty" in w.value for w in predict.warning)
    predict.multiselect(key="predict_models").set_value(
        [label for label in predict.multiselect(key="predict_models").options if "artifacts" in label][:1]).run()
    assert not predict.exception


# --- the shipped model stays read-only ------------------------------------------------------------------------

@pytest.mark.slow
def test_evaluating_the_shipped_model_never_writes_into_the_package(small_folder, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    before = {p: p.stat().st_mtime_ns for p in SHIPPED_RUN_DIR.iterdir()}
    result = _fer("eval", "default", "--split", "Training", "--data", small_folder)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p: p.stat().st_mtime_ns for p in SHIPPED_RUN_DIR.iterdir()} == before
    written = list((tmp_path / "cache" / "default_run").glob("eval_*.json"))
    assert len(written) == 1 and json.loads(written[0].read_text())["n"] == 280
    from fer.runs.compare import evaluations

    assert {written[0].stem[5:], "PublicTest"} <= set(evaluations(SHIPPED_RUN_DIR))  # shipped and new, both readable
    with pytest.raises(PermissionError, match="inside the installed package"):
        record_evaluation(SHIPPED_RUN_DIR, {"split": "val"}, None)


# --- data and images: fuzzing and fixed cases ---------------------------------------------------------------

CSV_FRAGMENTS = st.sampled_from(["0", "3", "6", "7", "-1", "255", "256", "1e3", "nan", " ", ",", '"', '""', "\r\n",
                                 "\n", "\r", "\0", "\ufeff", "Training", "PublicTest", "emotion,pixels,Usage",
                                 "x", "😀", "\x85", "\u2028"])


@FUZZ
@given(rows=st.lists(st.lists(CSV_FRAGMENTS, max_size=12).map("".join), max_size=8),
       pixel_row=st.booleans())
def test_fuzzed_csv_rows_are_read_or_skipped_never_crash(rows, pixel_row, tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "fer2013.csv"
    good = f"3,{' '.join(['7'] * 2304)},Training"
    path.write_text("emotion,pixels,Usage\n" + "\n".join(([good] if pixel_row else []) + rows) + "\n",
                    encoding="utf-8", errors="surrogatepass")
    try:
        data = read_fer_csv(path)
    except DataError:
        return
    assert data.images.shape[1:] == (48, 48) and len(data.labels) == len(data.images)
    assert set(np.unique(data.labels)) <= set(range(7))


@pytest.mark.parametrize("variant", ["bom", "crlf", "quoted", "duplicate_header", "invalid_utf8", "huge_field"])
def test_csv_variants_read_the_same_faces(variant, small_data, tmp_path, write_fer_csv):
    clean = small_data.subset(np.arange(12))
    path = write_fer_csv(clean, tmp_path / "fer2013.csv")
    text = path.read_text()
    lines = text.splitlines()
    if variant == "bom":
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    elif variant == "crlf":
        path.write_bytes(text.replace("\n", "\r\n").encode())
    elif variant == "quoted":
        path.write_text("\n".join([lines[0]] + [",".join(f'"{c}"' for c in line.split(",")) for line in lines[1:]])
                        + "\n")
    elif variant == "duplicate_header":
        path.write_text("\n".join(lines[:6] + [lines[0]] + lines[6:] + [lines[0]]) + "\n")
    elif variant == "invalid_utf8":
        path.write_bytes(text.encode() + b"3,\xff\xfe bad bytes,Training\n")
    elif variant == "huge_field":
        path.write_text(text + '3,"' + "9 " * 200_000 + '",Training\n')
    data = read_fer_csv(path)
    np.testing.assert_array_equal(data.images, clean.images)
    np.testing.assert_array_equal(data.labels, clean.labels)


def test_image_folders_survive_symlink_loops_fifos_dangling_links_and_bombs(small_folder, tmp_path):
    root = tmp_path / "fer2013"
    shutil.copytree(small_folder, root)
    happy = root / "train" / "happy"
    (happy / "loop").symlink_to(happy / "loop")
    (happy / "dir_loop").symlink_to(happy)  # a folder that contains itself
    (happy / "dangling.jpg").symlink_to(tmp_path / "vanished.jpg")
    os.mkfifo(happy / "pipe.jpg")  # reading it would block forever
    bomb = io.BytesIO()
    Image.new("L", (12_000, 6_000)).save(bomb, "PNG")  # 72 MP in a few hundred kB
    (happy / "bomb.png").write_bytes(bomb.getvalue())
    (root / "test" / "sad" / "empty.jpg").write_bytes(b"")
    data = read_image_folders(root)
    assert len(data) == 385  # every real face, nothing else
    assert data.report.n_skipped >= 2  # the bomb and the empty file, counted


GOOD_PNG = (lambda b: (Image.new("RGB", (64, 48), (120, 30, 200)).save(b, "PNG"), b.getvalue())[1])(io.BytesIO())


@FUZZ
@given(data=st.one_of(st.binary(max_size=4096),
                      st.tuples(st.integers(0, len(GOOD_PNG) - 1), st.binary(min_size=1, max_size=16)).map(
                          lambda t: GOOD_PNG[:t[0]] + t[1] + GOOD_PNG[t[0] + len(t[1]):])))
def test_fuzzed_image_bytes_load_or_give_an_image_error(data):
    try:
        rgb = load_image(data, "fuzz")
    except ImageError as e:
        assert str(e).startswith("fuzz:") and "\n" not in str(e)
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3


def test_odd_image_files(tmp_path):
    frames = [Image.new("RGB", (40, 30), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif, tiff = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:])
    frames[0].save(tiff, "TIFF", save_all=True, append_images=frames[1:])
    for payload in (gif.getvalue(), tiff.getvalue()):  # animations and multi-page files: the first frame
        rgb = load_image(payload)
        assert rgb.shape == (30, 40, 3) and rgb[0, 0, 0] > 200 and rgb[0, 0, 1] < 60
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
    with pytest.raises(ImageError, match="not an image"):
        load_image(svg, "drawing.svg")
    one = io.BytesIO()
    Image.new("L", (1, 1), 128).save(one, "PNG")
    assert load_image(one.getvalue()).shape == (1, 1, 3)
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "vanished.jpg")
    with pytest.raises(ImageError, match="over the 1 MB limit"):  # the upload cap, checked by the pages
        load_image(b"\x89PNG" + b"\0" * (1024 * 1024 + 10), "big.png", max_bytes=1024 * 1024)


@pytest.mark.slow
def test_fer_predict_survives_folders_vanished_files_and_one_pixel_images(trained_run, small_folder, tmp_path):
    one = tmp_path / "one.png"
    Image.new("L", (1, 1), 128).save(one)
    face = next((small_folder / "test" / "happy").iterdir())
    result = _fer("predict", face, tmp_path, tmp_path / "vanished.jpg", one, "--whole-image")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "is a folder" in result.stderr and "no such file" in result.stderr
    assert face.name in result.stdout and "one.png" in result.stdout  # the good ones were still predicted


def test_streamlit_caps_uploads_in_its_config():
    import tomllib

    config = tomllib.loads((Path(__file__).resolve().parents[1] / ".streamlit" / "config.toml").read_text())
    assert 1 <= config["server"]["maxUploadSize"] <= 200  # MB; the pages check it again (upload_limit_bytes)
