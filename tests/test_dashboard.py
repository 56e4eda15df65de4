"""Every dashboard page through Streamlit's AppTest, on real data and real runs."""
from pathlib import Path
from typing import Optional

import pytest
from streamlit.testing.v1 import AppTest

from conftest import tiny_overrides
from fer.config import load_config
from fer.runs import list_runs
from fer.train import train

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


def open_page(page: Optional[str] = None, timeout: int = 120, **state) -> AppTest:
    """The app with `state` in the session (data_path, runs_dir), switched to views/<page>.py and run."""
    at = AppTest.from_file(APP, default_timeout=timeout)
    for key, value in state.items():
        at.session_state[key] = str(value)
    if page:
        at.switch_page(f"views/{page}.py")
    return at.run()


@pytest.fixture(scope="module")
def runs_with_one_run(trained_run):
    return trained_run.parent  # the session's shared run, alone in its folder


def test_overview_shows_data_and_leaderboard(small_folder, runs_with_one_run):
    at = open_page(data_path=small_folder, runs_dir=runs_with_one_run)
    assert not at.exception
    assert [m.value for m in at.metric][0] == "385"
    counts, board = (d.value for d in at.dataframe)  # AppTest does not expose dataframe keys
    assert counts.loc["Training", "total"] == 280 and counts.loc["PublicTest", "total"] == 105
    assert len(board) == 1 and board.iloc[0]["status"] == "completed" and board.iloc[0]["name"] == "artifacts"
    assert "CPU" in " ".join(c.value for c in at.sidebar.caption)


def test_overview_without_data_explains_how_to_get_it(tmp_path):
    at = open_page(timeout=60, data_path=tmp_path / "nothing", runs_dir=tmp_path)
    assert not at.exception
    assert "No FER2013 data found" in at.warning[0].value
    assert any("Kaggle" in m.value for m in at.markdown)
    assert "No runs yet" in at.info[0].value


def _jpeg(array) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.usefixtures("mediapipe_models")
def test_predict_page_labels_every_uploaded_face(tmp_path):
    from skimage import data as skdata

    at = open_page("predict", timeout=180, runs_dir=tmp_path)  # no runs: the shipped model is the only choice
    assert not at.exception
    assert at.multiselect(key="predict_models").value == ["default"]
    at.file_uploader(key="predict_uploads").upload("astronaut.jpg", _jpeg(skdata.astronaut()), "image/jpeg").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["emotion"]) == ["happy"] and table["confidence"].iloc[0] > 0.5
    at.toggle(key="predict_cam").set_value(True).run()
    assert not at.exception and len(at.image) >= 2  # the annotated photo and the face's Grad-CAM


@pytest.mark.usefixtures("mediapipe_models")
def test_predict_page_reports_bad_uploads_and_faceless_images(tmp_path, runs_with_one_run):
    import numpy as np

    at = open_page("predict", timeout=180, runs_dir=runs_with_one_run)
    choices = at.multiselect(key="predict_models").options
    assert choices[0] == "default" and len(choices) == 2  # the shipped model, then the trained run
    uploader = at.file_uploader(key="predict_uploads")
    uploader.upload("notes.png", b"not an image", "image/png")
    uploader.upload("wall.jpg", _jpeg(np.full((200, 300, 3), 120, np.uint8)), "image/jpeg").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("not an image" in e for e in errors) and any("no face found" in e for e in errors)
    at.toggle(key="predict_whole").set_value(True).run()
    assert not at.exception and any("whole image" in i.value for i in at.info)


@pytest.fixture(scope="module")
def two_runs(small_folder, tmp_path_factory):
    runs = tmp_path_factory.mktemp("compare_runs")
    train(load_config(None, tiny_overrides(small_folder, runs, 2, "name=slow", "optim.lr=0.001", "tags=[suite:depth, variant:depth1, seed:0]")))
    train(load_config(None, tiny_overrides(small_folder, runs, 2, "name=fast", "optim.lr=0.01")))
    return runs


def test_runs_page_compares_filters_and_edits(two_runs):
    at = open_page("runs", runs_dir=two_runs)
    assert not at.exception
    board = at.dataframe[0].value
    assert {"slow", "fast"} <= set(board["name"])  # (+ the shipped model, source "built-in", when present)
    compare = at.multiselect(key="runs_compare")
    local = [r for r in board["run_id"] if r != "default"]
    compare.set_value(local).run()
    diff = at.dataframe[1].value
    assert "optim.lr" in diff.index and "name" in diff.index
    at.text_input(key="runs_filter_tag").set_value("suite:depth").run()
    assert list(at.dataframe[0].value["name"]) == ["slow"]
    assert at.selectbox(key="runs_suite").value == "depth"
    target = next(r for r in local if "fast" in r)
    at.selectbox(key="runs_edit_target").set_value(target).run()
    at.text_input(key=f"runs_edit_name_{target}").set_value("renamed")
    at.button(key="runs_edit_save").click().run()
    assert not at.exception
    assert "renamed" in set(list_runs(two_runs)["name"])


def test_confusion_page_shows_matrices_scores_and_mistakes(two_runs, small_folder):
    at = open_page("confusion", runs_dir=two_runs, data_path=small_folder)
    assert not at.exception
    runs = at.selectbox(key="confusion_run").options
    assert runs[0] == "default"  # the shipped model leads the leaderboard
    at.selectbox(key="confusion_run").set_value(next(r for r in runs if "slow" in r)).run()
    assert at.selectbox(key="confusion_split").value == "PublicTest"
    per_class = at.dataframe[0].value
    assert list(per_class.index) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    at.selectbox(key="confusion_run_b").set_value(next(r for r in runs if "fast" in r)).run()
    assert not at.exception
    mistakes = at.dataframe[-1].value
    assert len(mistakes) > 0 and (mistakes["true"] != mistakes["pred"]).all()
    assert len(at.image) == 1  # the gallery of mistaken faces


def test_data_page_shows_distribution_samples_pixels_and_leakage(small_folder):
    at = open_page("data", data_path=small_folder)
    assert not at.exception
    assert at.metric[0].value == "385"
    counts = at.dataframe[0].value
    assert counts.loc["Training", "total"] == 280
    assert len(at.image) >= 7 + 1  # a sample row per class, and the mean faces
    at.toggle(key="data_share").set_value(True).run()
    assert not at.exception


def test_data_page_without_data_explains_how_to_get_it(tmp_path):
    at = open_page("data", timeout=60, data_path=tmp_path / "missing")
    assert not at.exception and "No FER2013 data found" in at.warning[0].value
    assert any("Kaggle" in m.value for m in at.markdown)


@pytest.fixture(scope="module")
def cbam_run(small_folder, tmp_path_factory):
    runs = tmp_path_factory.mktemp("cam_runs")
    train(load_config(None, [f"data.path={small_folder}", f"runs_dir={runs}", "train.epochs=1", "name=cbam",
                             "model.name=cbam_cnn", "model.kwargs={widths: [8, 16, 32], hidden: 32}",
                             "train.batch_size=32"]))
    return runs


def test_gradcam_page_overlays_test_faces_and_attention(cbam_run, small_folder):
    at = open_page("gradcam", timeout=180, runs_dir=cbam_run, data_path=small_folder)
    assert not at.exception
    run_id = next(o for o in at.selectbox(key="cam_model").options if "cbam" in o)
    at.selectbox(key="cam_model").set_value(run_id).run()
    at.selectbox(key="cam_method").set_value("gradcam++")
    at.selectbox(key="cam_target").set_value("fear")
    at.selectbox(key="cam_class").set_value("sad").run()
    assert not at.exception
    assert len(at.image) == 1 + 3  # the CAM grid, then CBAM maps of its three blocks
    assert any("CBAM block 1" in c.value for c in at.caption)
    at.text_input(key="cam_layer").set_value("features.9").run()
    assert not at.exception and "no layer" in at.error[0].value


@pytest.mark.slow
def test_train_page_launches_a_real_background_job_and_sees_it_complete(small_folder, tmp_path):
    import time

    from fer.jobs import worker_pid
    from fer.runs import read_status

    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception
    assert "No runs yet" in at.info[0].value
    at.text_input(key="train_field_name").set_value("from-dashboard")
    at.number_input(key="train_field_train.epochs").set_value(2)
    at.number_input(key="train_field_train.batch_size").set_value(32)
    at.text_input(key="train_field_model.kwargs").set_value("{widths: [8, 16, 32], hidden: 32}")
    at.number_input(key="train_field_data.limit").set_value(70)
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception
    assert "Queued" in at.success[0].value
    runs = list_runs(tmp_path)
    assert list(runs["name"]) == ["from-dashboard"]
    run_dir = runs["path"].iloc[0]
    deadline = time.time() + 240
    while read_status(run_dir).get("state") != "completed" and time.time() < deadline:
        time.sleep(1)
    assert read_status(run_dir)["state"] == "completed"  # trained by the detached worker process
    at.run()
    assert not at.exception
    assert any("completed" in m.value for m in at.markdown)
    deadline = time.time() + 30
    while worker_pid(tmp_path) and time.time() < deadline:  # the worker leaves once the queue is empty
        time.sleep(0.5)
    assert worker_pid(tmp_path) is None


def test_train_page_rejects_a_bad_setting(small_folder, tmp_path):
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    at.number_input(key="train_field_train.epochs").set_value(0)
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception and "Not launched" in at.error[0].value
    assert list_runs(tmp_path).empty

