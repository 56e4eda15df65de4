"""Shared fixtures. Tests read real FER2013 through FER_TEST_DATA (set by .ci/run / the Makefile).

Tiers: tests marked `slow` (the browser, real worker queues, suites, long trainings, subprocess
trainings) run in the full suite (`make test`, CI) and are skipped by `make test-fast`. One tiny run,
trained once per session (`trained_run`), serves every module that only needs *a* trained model.
Helpers reach tests as fixtures (`tiny_overrides`, `write_fer_csv`, ...), never by importing this file.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # one thread per test process (set before PyTorch is imported):
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # two processes on two cores, not four threads fighting

import cv2
import numpy as np
import pytest

# Published per-class counts of the FER2013 image-folder release (Training, PublicTest).
KNOWN_COUNTS = {
    "Training": {"angry": 3995, "disgust": 436, "fear": 4097, "happy": 7215, "neutral": 4965, "sad": 4830,
                 "surprise": 3171},
    "PublicTest": {"angry": 467, "disgust": 56, "fear": 496, "happy": 895, "neutral": 607, "sad": 653,
                   "surprise": 415},
}
TINY_MODEL = "model.kwargs={widths: [8, 16, 32], hidden: 32}"
# Registered models that upsample every face to 224×224 take seconds per test on a CPU: the tests
# parametrised over the registry run them in the slow tier (the fast tier keeps every other model).
SLOW_MODELS = ("efficientnet_b0", "convnext_tiny")


def pytest_collection_modifyitems(config, items):
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("name") in SLOW_MODELS:
            item.add_marker(pytest.mark.slow)


def csv_as_image_folders(csv_path: Path, dest: Path) -> Path:
    """Kaggle's fer2013.csv written out in the image-folder release's layout (Training → train/, PublicTest →
    test/, lossless PNG), so every test runs on the same splits whichever form of FER2013 a user has."""
    from fer.core.constants import SPLITS
    from fer.data import read_fer_csv

    data = read_fer_csv(csv_path)
    folders = {"Training": "train", "PublicTest": "test"}  # the release has no PrivateTest
    for i, (image, label, split) in enumerate(zip(data.images, data.labels, data.splits)):
        name = SPLITS[split]
        if name in folders:
            out = dest / folders[name] / data.class_names[label]
            out.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(out / f"{name}_{i}.png"), image)
    (dest / "DONE").write_text(str(csv_path))
    return dest


def _test_data_root() -> Path:
    value = os.environ.get("FER_TEST_DATA")
    if not value:
        raise pytest.UsageError("FER_TEST_DATA is not set: point it at FER2013 image folders (train/, test/) or "
                                "at fer2013.csv; `make test` sets it to data/ by default")
    from fer.data import DataError
    from fer.data.readers import resolve_source

    try:  # image folders, fer2013.csv, or a folder holding either (as FER_DATA is read)
        kind, root = resolve_source(value)
    except DataError as e:
        raise pytest.UsageError(f"FER_TEST_DATA: {e}") from None
    if kind == "csv":  # only the CSV: convert it once per machine (and per version of the file)
        stat = root.stat()
        dest = Path(tempfile.gettempdir()) / f"fer-test-data-{stat.st_size}-{stat.st_mtime_ns}"
        return dest if (dest / "DONE").is_file() else csv_as_image_folders(root, dest)
    if not (root / "train").is_dir():
        raise pytest.UsageError(f"FER_TEST_DATA={root} has no train/ folder (and no fer2013.csv)")
    return root


# The original pixels (from the CSV) and the release's JPEGs differ slightly, so results recorded on one
# are checked on the other only within a point.
DATA_FROM_CSV = bool(os.environ.get("FER_TEST_DATA")) and not any(
    (Path(os.environ["FER_TEST_DATA"]) / sub / "train").is_dir() for sub in ("", "fer2013", "FER2013"))


@pytest.fixture(scope="session", autouse=True)
def isolated_environment(tmp_path_factory):
    """Decoded cache and runs go to temp folders; FER_DATA is never inherited from the user."""
    saved = {k: os.environ.get(k) for k in ("FER_CACHE_DIR", "FER_RUNS_DIR", "FER_DATA")}
    os.environ["FER_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["FER_RUNS_DIR"] = str(tmp_path_factory.mktemp("runs"))
    os.environ.pop("FER_DATA", None)
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def fer_root() -> Path:
    """The real FER2013 image-folder root."""
    return _test_data_root()


@pytest.fixture(scope="session")
def full_data(fer_root):
    """All of the shared FER2013 (Training + PublicTest), loaded once."""
    from fer.data import load_fer2013
    return load_fer2013(fer_root)


def copy_sample(fer_root: Path, dest: Path, per_class: dict, seed: int = 0) -> Path:
    """Copy a seeded sample of real image files, keeping the train/<class>/ layout."""
    rng = np.random.default_rng(seed)
    for split, n in per_class.items():
        for class_dir in sorted((fer_root / split).iterdir()):
            files = sorted(class_dir.iterdir())
            chosen = rng.choice(len(files), size=min(n, len(files)), replace=False)
            out = dest / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for i in sorted(chosen):
                shutil.copy2(files[i], out / files[i].name)
    return dest


@pytest.fixture(scope="session")
def small_folder(fer_root, tmp_path_factory) -> Path:
    """A few hundred real FER2013 images: 40 per class from train/, 15 per class from test/."""
    return copy_sample(fer_root, tmp_path_factory.mktemp("small") / "fer2013", {"train": 40, "test": 15})


def write_fer_csv(data, path: Path, header=("emotion", "pixels", "Usage"), extra_rows=()) -> Path:
    """Write FaceData as Kaggle's fer2013.csv (optionally with extra raw rows appended)."""
    from fer.core.constants import SPLITS
    lines = [",".join(header)]
    for img, label, split in zip(data.images, data.labels, data.splits):
        lines.append(f"{label},{' '.join(map(str, img.reshape(-1)))},{SPLITS[split]}")
    lines.extend(extra_rows)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="session")
def small_data(small_folder):
    """The small sample read through the image-folder reader."""
    from fer.data import read_image_folders
    return read_image_folders(small_folder)


@pytest.fixture(scope="session")
def small_csv(small_data, tmp_path_factory) -> Path:
    """The same small sample as a Kaggle fer2013.csv."""
    return write_fer_csv(small_data, tmp_path_factory.mktemp("csv") / "fer2013.csv")


def tiny_overrides(data_path: Path, runs_dir: Path, epochs: int = 2, *extra: str) -> list:
    """--set overrides for a fast CPU run on the small sample (plus any `key=value` extras)."""
    return [f"data.path={data_path}", f"runs_dir={runs_dir}", f"train.epochs={epochs}", TINY_MODEL,
            "train.batch_size=32", "train.eval_batch_size=128", *extra]


@pytest.fixture(scope="session")
def trained_run(small_folder, tmp_path_factory) -> Path:
    """One finished tiny run (4 epochs, name "artifacts", tags smoke/test), alone in its runs folder.

    Read-only for its users: a test that edits, evaluates into or trains next to a run makes its own.
    """
    from fer.config import load_config
    from fer.training.fit import train

    runs = tmp_path_factory.mktemp("shared_runs")
    return train(load_config(None, tiny_overrides(small_folder, runs, 4, "name=artifacts", "tags=[smoke, test]",
                                                  "optim.lr=0.003")))


@pytest.fixture(scope="session")
def mediapipe_models():
    """MediaPipe model files in the model cache. CI points FER_MODEL_CACHE at a local copy, so nothing is
    downloaded there; a developer machine without that variable downloads them once (checksum-verified)."""
    from fer.inference.faces import ensure_model_file
    offline = bool(os.environ.get("FER_MODEL_CACHE"))
    return [ensure_model_file(name, download=not offline)
            for name in ("blaze_face_short_range.tflite", "face_landmarker.task")]


# --- helpers, as fixtures -----------------------------------------------------------------------------------------

@pytest.fixture(name="tiny_overrides", scope="session")
def tiny_overrides_fixture():
    """tiny_overrides(data, runs, epochs, *extra): --set items for a fast CPU run on the small sample."""
    return tiny_overrides


@pytest.fixture(scope="session")
def tiny_model() -> str:
    """The --set item of the tiny CNN every quick training uses."""
    return TINY_MODEL


@pytest.fixture(scope="session")
def known_counts() -> dict:
    """The published per-class counts of the image-folder release (Training, PublicTest)."""
    return KNOWN_COUNTS


@pytest.fixture(name="write_fer_csv", scope="session")
def write_fer_csv_fixture():
    """write_fer_csv(data, path, header=..., extra_rows=...): FaceData written as Kaggle's fer2013.csv."""
    return write_fer_csv


@pytest.fixture(name="csv_as_image_folders", scope="session")
def csv_as_image_folders_fixture():
    """csv_as_image_folders(csv, dest): the CSV written out in the image-folder release's layout."""
    return csv_as_image_folders


@pytest.fixture(scope="session")
def data_from_csv() -> bool:
    """Whether the test data came from fer2013.csv (its pixels differ slightly from the release's JPEGs)."""
    return DATA_FROM_CSV


DASHBOARD_APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
LOCAL_SETTINGS = "[auth]\nlocal_token = false\n"  # a one-user machine: the visitor is the local operator


@pytest.fixture
def open_page(tmp_path_factory, monkeypatch):
    """open_page(page, timeout, runs_dir=, data_path=, settings=TOML, state={...}) -> AppTest, run.

    The server's settings offer exactly the given runs folder and data source (the sidebar picks among
    them); `settings` replaces the default (no sign-in on a one-user machine) with its own TOML."""
    from streamlit.testing.v1 import AppTest

    def open_(page=None, timeout: int = 120, runs_dir=None, data_path=None, settings: str = LOCAL_SETTINGS,
              state=None):
        path = tmp_path_factory.mktemp("settings") / "fer-studio.toml"
        path.write_text(settings)
        monkeypatch.setenv("FER_SETTINGS", str(path))
        for name, value in (("FER_RUNS_DIRS", runs_dir), ("FER_DATA_SOURCES", data_path)):
            if value is not None:
                monkeypatch.setenv(name, str(value))
        at = AppTest.from_file(DASHBOARD_APP, default_timeout=timeout)
        for key, value in (state or {}).items():  # e.g. what a visitor might forge in its session
            at.session_state[key] = value
        if page:
            at.switch_page(f"views/{page}.py")
        return at.run()
    return open_


@pytest.fixture(scope="session")
def dashboard_server():
    """A factory: `with dashboard_server(env, *streamlit_args[, port=N]) as url:` runs `streamlit run
    dashboard/app.py` (on a free port unless given) with that environment, and yields its URL once the
    server answers its health check."""
    import contextlib
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = Path(__file__).resolve().parents[1]

    @contextlib.contextmanager
    def start(env: dict, *args: str, port: int = 0):
        if not port:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(root / "dashboard" / "app.py"),
                                 "--server.headless=true", f"--server.port={port}", *args],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while time.time() < deadline:
                try:
                    urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                    break
                except OSError:
                    time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=20)

    return start
