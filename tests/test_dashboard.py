"""Every dashboard page through Streamlit's AppTest, on real data and real runs."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fer.config import load_config
from fer.runs.store import list_runs, read_status, resolve_run
from fer.training.fit import train
from fer.training.validate import check_config

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def runs_with_one_run(trained_run):
    return trained_run.parent  # the session's shared run, alone in its folder


def test_overview_shows_data_and_leaderboard(open_page, small_folder, runs_with_one_run):
    at = open_page(data_path=small_folder, runs_dir=runs_with_one_run)
    assert not at.exception
    assert [m.value for m in at.metric][0] == "385"
    (board,) = (d.value for d in at.dataframe)  # the counts are the Data page's: the Overview points there
    assert [m.value for m in at.metric][1] == "Training, PublicTest"
    assert any("quick" in m.value for m in at.markdown)  # a first step, not a copy of the Data page
    mine = board[board["source"] == "local"]  # beside the shipped model, as on the Runs page
    assert len(mine) == 1 and mine.iloc[0]["status"] == "completed" and mine.iloc[0]["name"] == "artifacts"
    assert list(board[board["source"] == "built-in"]["name"]) == ["default"]
    assert "CPU" in " ".join(c.value for c in at.sidebar.caption)


def test_overview_without_data_explains_how_to_get_it(open_page, tmp_path):
    at = open_page(timeout=60, data_path=tmp_path / "nothing", runs_dir=tmp_path)
    assert not at.exception
    assert "No FER2013 data found" in at.warning[0].value
    assert any("Kaggle" in m.value for m in at.markdown)
    assert "No runs of your own yet" in at.info[0].value and "ships with fer-studio" in at.info[0].value
    assert list(at.dataframe[0].value["name"]) == ["default"]  # the Overview and the Runs page agree


def _jpeg(array) -> bytes:
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "JPEG")
    return buf.getvalue()


@pytest.mark.usefixtures("mediapipe_models")
def test_predict_page_labels_every_uploaded_face(open_page, tmp_path):
    from skimage import data as skdata

    at = open_page("predict", timeout=180, runs_dir=tmp_path)  # no runs: the shipped model is the only choice
    assert not at.exception
    assert at.multiselect(key="predict_models").value == ["default"]
    at.file_uploader(key="predict_uploads").upload("astronaut.jpg", _jpeg(skdata.astronaut()), "image/jpeg").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["emotion"]) == ["happy"] and table["confidence"].iloc[0] > 0.5
    assert "(onnx" in at.image[0].proto.imgs[0].caption or "(torch" in at.image[0].proto.imgs[0].caption
    at.toggle(key="predict_cam").set_value(True).run()
    assert not at.exception and len(at.image) >= 2  # the annotated photo and the face's Grad-CAM
    # The bars and the CAM caption come from one model: the PyTorch one that Grad-CAM needs.
    assert "(torch)" in at.image[0].proto.imgs[0].caption
    label = at.dataframe[0].value["emotion"].iloc[0]
    assert label in at.image[1].proto.imgs[0].caption


@pytest.mark.usefixtures("mediapipe_models")
def test_predict_page_reports_bad_uploads_and_faceless_images(open_page, tmp_path, runs_with_one_run):
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
    # The way out is named as it appears on this page, not as the CLI flag.
    assert any("classify the whole image" in e and "--whole-image" not in e for e in errors)
    at.toggle(key="predict_whole").set_value(True).run()
    assert not at.exception and any("whole image" in i.value for i in at.info)


@pytest.fixture(scope="module")
def two_runs(small_folder, tmp_path_factory, tiny_overrides):
    runs = tmp_path_factory.mktemp("compare_runs")
    train(load_config(None, tiny_overrides(small_folder, runs, 2, "name=slow", "optim.lr=0.001", "tags=[suite:depth, variant:depth1, seed:0]")))
    train(load_config(None, tiny_overrides(small_folder, runs, 2, "name=fast", "optim.lr=0.01")))
    return runs


def test_runs_page_compares_filters_and_edits(open_page, two_runs):
    at = open_page("runs", runs_dir=two_runs)
    assert not at.exception
    board = at.dataframe[0].value
    assert {"slow", "fast"} <= set(board["name"])  # (+ the shipped model, source "built-in", when present)
    assert list(board.columns[:3]) == ["name", "test_acc", "test_macro_f1"]  # accuracy first
    assert any("different test sets" in w.value for w in at.warning)  # 105 test faces here, 3,589 for default
    assert board.isna().any().any()  # the shipped model has no train_seconds, say …
    assert at.dataframe[0].proto.HasField("placeholder") and at.dataframe[0].proto.placeholder == ""  # … shown blank
    compare = at.multiselect(key="runs_compare")
    local = [name for name in board["name"] if name != "default"]
    compare.set_value(local).run()  # runs are chosen by name
    diff = at.dataframe[1].value
    assert "optim.lr" in diff.index and "name" in diff.index and set(diff.columns) == {"slow", "fast"}
    at.text_input(key="runs_filter_tag").set_value("suite:depth").run()
    assert list(at.dataframe[0].value["name"]) == ["slow"]
    assert at.selectbox(key="runs_suite").value == "depth"
    assert at.selectbox(key="runs_edit_target").options == ["slow"]  # the pickers follow the filters
    at.text_input(key="runs_filter_tag").set_value("fas").run()  # names match too
    assert list(at.dataframe[0].value["name"]) == ["fast"]
    at.selectbox(key="runs_edit_target").set_value("fast").run()
    fast_id = next(r for r in board["run_id"] if "fast" in r)
    at.text_input(key=f"runs_edit_name_{fast_id}").set_value("renamed")
    at.button(key="runs_edit_save").click().run()
    assert not at.exception
    assert "renamed" in set(list_runs(two_runs)["name"])
    assert resolve_run("renamed", two_runs).name == fast_id  # findable by its new name


def test_confusion_page_shows_matrices_scores_and_mistakes(open_page, two_runs, small_folder):
    at = open_page("confusion", runs_dir=two_runs, data_path=small_folder)
    assert not at.exception
    runs = at.selectbox(key="confusion_run").options  # what people see: the runs' names
    assert runs[0] == "default" and "slow" in runs  # the shipped model leads the leaderboard
    at.selectbox(key="confusion_run").set_value("slow").run()
    assert at.selectbox(key="confusion_split").value == "PublicTest"
    per_class = at.dataframe[0].value
    assert list(per_class.index) == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    at.selectbox(key="confusion_run_b").set_value(next(r for r in runs if r not in ("default", "slow"))).run()
    assert not at.exception
    mistakes = at.dataframe[-1].value
    assert len(mistakes) > 0 and (mistakes["true"] != mistakes["pred"]).all()
    assert len(at.image) == 1  # the gallery of mistaken faces


def test_data_page_shows_distribution_samples_pixels_and_leakage(open_page, small_folder):
    at = open_page("data", data_path=small_folder)
    assert not at.exception
    assert at.metric[0].value == "385"
    counts = at.dataframe[0].value
    assert counts.loc["Training", "total"] == 280
    assert len(at.image) >= 7 + 1  # a sample row per class, and the mean faces
    at.toggle(key="data_share").set_value(True).run()
    assert not at.exception


def test_data_page_without_data_explains_how_to_get_it(open_page, tmp_path):
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


def test_gradcam_page_overlays_test_faces_and_attention(open_page, cbam_run, small_folder):
    at = open_page("gradcam", timeout=180, runs_dir=cbam_run, data_path=small_folder)
    assert not at.exception
    at.selectbox(key="cam_model").set_value("cbam").run()  # models are chosen by name
    at.selectbox(key="cam_method").set_value("gradcam++")
    at.selectbox(key="cam_target").set_value("fear")
    at.selectbox(key="cam_class").set_value("sad").run()
    assert not at.exception
    assert len(at.image) == 1 + 3  # the CAM grid, then CBAM maps of its three blocks
    assert any("CBAM block 1" in c.value for c in at.caption)
    at.text_input(key="cam_layer").set_value("features.9").run()
    assert not at.exception and "no layer" in at.error[0].value


def test_gradcam_page_defaults_to_a_class_sensitive_method(open_page, cbam_run, small_folder):
    at = open_page("gradcam", timeout=180, runs_dir=cbam_run, data_path=small_folder)
    assert at.selectbox(key="cam_method").value == "gradcam" and not at.selectbox(key="cam_target").disabled
    assert all("Grad-CAM of" in c for c in at.image[0].captions)  # it says which class it explains
    at.selectbox(key="cam_method").set_value("eigencam").run()
    assert not at.exception and at.selectbox(key="cam_target").disabled  # EigenCAM ignores the class
    captions = at.image[0].captions
    assert captions and all("class-agnostic" in c and " of " not in c.split("·")[-1] for c in captions)


@pytest.mark.slow
def test_train_page_launches_a_real_background_job_and_sees_it_complete(open_page, small_folder, tmp_path):
    import time

    from fer.jobs.worker import worker_pid
    from fer.runs.store import read_status

    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception
    assert "No runs yet" in at.info[0].value
    at.text_input(key="train_field_name").set_value("2024")  # text fields take text as text...
    at.selectbox(key="train_field_train.amp").set_value("off")  # ...and "off" is not a boolean
    at.number_input(key="train_field_train.epochs").set_value(2)
    at.number_input(key="train_field_train.batch_size").set_value(32)
    at.text_input(key="train_field_model.kwargs").set_value("{widths: [8, 16, 32], hidden: 32}")
    at.number_input(key="train_field_data.limit").set_value(70)
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception
    assert "Queued" in at.toast[0].value
    runs = list_runs(tmp_path)
    assert list(runs["name"]) == ["2024"] and list(runs["config.train.amp"]) == ["off"]
    run_dir = runs["path"].iloc[0]
    deadline = time.time() + 240
    while read_status(run_dir).get("state") != "completed" and time.time() < deadline:
        time.sleep(1)
    assert read_status(run_dir)["state"] == "completed"  # trained by the detached worker process
    at.run()
    assert not at.exception
    assert any("completed" in t.value for t in at.text)  # the job card says so, as plain text
    deadline = time.time() + 30
    while worker_pid(tmp_path) and time.time() < deadline:  # the worker leaves once the queue is empty
        time.sleep(0.5)
    assert worker_pid(tmp_path) is None


def test_one_launch_from_the_train_page_checks_its_config_once(open_page, small_folder, tmp_path, monkeypatch):
    from fer.jobs.queue import cancel, queued_runs, set_paused
    from fer.training import validate

    checks = []
    real = validate._check_model  # every check_config call builds the model once, on the meta device
    monkeypatch.setattr(validate, "_check_model", lambda cfg: checks.append(cfg.name) or real(cfg))
    set_paused(tmp_path, True)  # queued, not trained: this test is about the launch
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    at.text_input(key="train_field_name").set_value("checked-once")
    at.text_input(key="train_field_model.kwargs").set_value("{widths: [8, 16, 32], hidden: 32}")
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception and "Queued" in at.toast[0].value
    assert checks == ["checked-once"]  # the page's check is the only one: submit takes the checked config
    (run,) = queued_runs(tmp_path)
    assert cancel(run) == "cancelled (it was queued)"


def test_the_train_form_holds_every_setting_once_in_words():
    import sys

    sys.path.insert(0, str(Path(APP).parent))
    try:
        import forms
    finally:
        sys.path.remove(str(Path(APP).parent))
    placed = [key for _, shown, more in forms.grouped_fields() for key in shown + more]
    assert sorted(placed) == sorted(forms.form_fields()) and len(placed) == len(set(placed))
    assert all(spec.label != spec.key and spec.doc for spec in forms.form_fields().values())


def test_train_page_starts_from_a_preset_and_estimates_the_time(open_page, small_folder, tmp_path):
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception
    assert at.selectbox(key="train_field_model.name").label == "Model"  # words, not config keys
    assert at.number_input(key="train_field_data.limit").label.startswith("Images per split")  # in plain view
    at.selectbox(key="train_preset").set_value("quick").run()
    assert at.number_input(key="train_field_data.limit").value == 5000
    assert at.number_input(key="train_field_train.epochs").value == 5
    assert at.text_input(key="train_field_name").value == "quick"
    at.button(key="FormSubmitter:train_form-Estimate the time").click().run()
    assert not at.exception
    (info,) = [i.value for i in at.info if "would take" in i.value]
    # The small test source: 280 Training faces (28 for validation), 105 PublicTest, 5 epochs.
    assert "252 training and 28 validation faces per epoch, 105 test faces" in info and "images/s" in info
    assert list_runs(tmp_path).empty  # estimating launches nothing


def test_train_page_rejects_a_bad_setting(open_page, small_folder, tmp_path):
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    at.number_input(key="train_field_train.epochs").set_value(0)
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception and "Not launched" in at.error[0].value
    assert list_runs(tmp_path).empty



@pytest.mark.parametrize("field, value, message", [
    ("model.kwargs", "{widths: [8, 16", "model.kwargs: not valid YAML"),  # a typo: one message, no traceback
    ("optim.lr", -0.1, "optim.lr must be more than 0"),
    ("data.val_source", "PublicTest", "a test split is never used for model selection"),
])
def test_train_page_refuses_bad_settings_at_once(open_page, field, value, message, small_folder, tmp_path):
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    widget = {"model.kwargs": at.text_input, "optim.lr": at.number_input,
              "data.val_source": at.selectbox}[field](key=f"train_field_{field}")
    widget.set_value(value)
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception and "Not launched" in at.error[0].value and message in at.error[0].value
    assert list_runs(tmp_path).empty and at.subheader  # nothing queued, and the Jobs panel is still there


def test_train_page_asks_before_a_huge_model(open_page, small_folder, tmp_path):
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    at.text_input(key="train_field_model.kwargs").set_value("{depth: 99}")  # 114 M parameters
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception and "M parameters" in at.warning[0].value
    assert any("Not launched yet" in i.value for i in at.info) and list_runs(tmp_path).empty


def test_a_failed_run_offers_edit_and_relaunch_instead_of_resume(open_page, small_folder, tmp_path, tiny_overrides):
    from fer.runs.writer import write_status
    from fer.training.fit import create_run

    run = create_run(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=broken", "optim.lr=0.5"))))
    write_status(run, "failed", error="RuntimeError: DefaultCPUAllocator: not enough memory")  # before epoch 1
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    labels = [b.label for b in at.button]
    assert "Edit and relaunch" in labels and "Resume" not in labels  # nothing to resume from
    at.button(key=f"relaunch_{run.name}").click().run()
    assert not at.exception
    assert at.text_input(key="train_field_name").value == "broken"  # the form holds the run's settings
    assert at.number_input(key="train_field_optim.lr").value == 0.5
    assert "widths" in at.text_input(key="train_field_model.kwargs").value
    assert any("holds the settings of" in i.value for i in at.info)


def test_gradcam_page_says_when_face_detection_falls_back_offline(open_page, tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODEL_CACHE", str(tmp_path / "empty"))  # no MediaPipe model and no internet
    at = open_page("gradcam", timeout=180, runs_dir=tmp_path)
    at.radio(key="cam_source").set_value("Upload a photo").run()
    at.file_uploader(key="cam_upload").upload("astronaut.jpg", _jpeg(__import__("skimage").data.astronaut()),
                                              "image/jpeg").run()
    assert not at.exception
    assert any("Haar" in w.value for w in at.warning) and len(at.image) >= 1  # said, and it still works


def test_train_page_shows_the_machine_and_steers_the_queue(open_page, small_folder, tmp_path, tiny_overrides):
    from fer.jobs.queue import cancel, queued_runs, set_paused, settings
    from fer.training.fit import create_run

    set_paused(tmp_path, True)  # nothing starts: the queue's order is what is shown
    first, second = (create_run(check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, f"name={n}"))), tmp_path)
                     for n in ("first", "second"))
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception
    assert any("CPU:" in c.value and "cores" in c.value for c in at.caption)
    assert any("queued (the queue is paused)" in t.value for t in at.text)  # job cards: plain text
    at.button(key=f"up_{second.name}").click().run()
    assert queued_runs(tmp_path) == [second, first]  # moved up
    at.number_input(key="train_slots").set_value(2).run()
    at.toggle(key="train_paused").set_value(False).run()
    at.toggle(key="train_auto").set_value(True).run()
    assert settings(tmp_path) == {"paused": False, "slots": 2, "auto_resume": True}
    for run in (first, second):  # leave nothing queued behind
        cancel(run)


def test_a_run_started_in_a_terminal_says_so_and_stop_says_what_it_does(open_page, small_folder, tmp_path,
                                                                         tiny_overrides):
    from fer.jobs.queue import set_paused
    from fer.training.fit import create_run

    set_paused(tmp_path, True)  # the worker leaves it alone: the card is what is checked
    cfg = check_config(load_config(None, tiny_overrides(small_folder, tmp_path, 1, "name=from-shell")))
    shell, queued = create_run(cfg, tmp_path, launched_from="terminal"), create_run(cfg, tmp_path)
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception
    notes = [c.value for c in at.caption if "not from the dashboard" in c.value]
    assert len(notes) == 1 and "in a terminal (fer train)" in notes[0]  # only the shell's run
    assert at.button(key=f"cancel_{shell.name}").label == "Stop"
    assert at.button(key=f"cancel_{queued.name}").label == "Cancel"
    at.button(key=f"cancel_{shell.name}").click().run()
    assert any("the command that started it in a terminal (fer train) ends" in i.value for i in at.info)
    assert read_status(shell)["state"] == "cancelled"
    at.button(key=f"cancel_{queued.name}").click().run()


def _launch_queued(at: AppTest, epochs_key: str, epochs: int, button_key: str, runs: Path):
    """Set the epochs, press the launch button, and return the one run it queued (paused queue) and its config."""
    from fer.jobs.queue import queued_runs
    from fer.runs.store import read_config

    at.number_input(key=epochs_key).set_value(epochs)
    at.button(key=button_key).click().run()
    assert not at.exception and not at.error
    [run] = queued_runs(runs)
    return run, read_config(run)


def test_studies_page_puts_each_study_beside_our_runs_and_queues_its_recipe(open_page, small_folder, tmp_path):
    from fer.jobs.queue import cancel, set_paused

    set_paused(tmp_path, True)  # queued, not trained: the queued config is what is checked
    at = open_page("studies", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["variant"]) == ["adamw", "sgd", "kacifann", "momentum-kaci"]
    assert table.loc[0, "reported acc"] == pytest.approx(0.688) and (table["runs"] == 0).all()
    at.selectbox(key="studies_study").set_value("Study D: Kaggle basic → complex CNN").run()
    table = at.dataframe[0].value
    assert table.set_index("variant").loc["complex", "reported acc"] == pytest.approx(0.61)
    assert table.set_index("variant").loc["complex-final", "reported acc"] == pytest.approx(0.6275, abs=1e-4)
    assert any("Training + PublicTest" in m.value for m in at.markdown)
    run, cfg = _launch_queued(at, "studies_recipe_epochs_d", 3,
                              "FormSubmitter:studies_recipe_form-Queue the best-model recipe", tmp_path)
    assert cfg.name == "study-d-complex-final" and cfg.train.epochs == 3 and cfg.model.kwargs["hidden"] == [512, 256]
    assert "adapted:train.epochs=3" in cfg.tags  # shorter than the study's: a departure, listed
    # The image folders have no PrivateTest: the run tests on PublicTest, which leaves the training pool.
    assert cfg.data.test_split == "PublicTest" and cfg.data.train_splits == ["Training"]
    assert "adapted:test_split=PublicTest" in cfg.tags
    cancel(run)


def test_studies_page_draws_mean_and_std_learning_curves_over_seeds(open_page, small_folder, tmp_path,
                                                                     tiny_overrides):
    from fer.jobs.suites import suite_configs, suite_curves
    from fer.training.fit import train

    extra = ["model.name=plain_cnn", *tiny_overrides(small_folder, tmp_path, 2, "data.limit=80")]
    for cfg in suite_configs("study-c-schedulers", repeats=2, overrides=extra, variants=["cosine"]):
        train(cfg)
    at = open_page("studies", runs_dir=tmp_path, data_path=small_folder)
    at.selectbox(key="studies_study").set_value("Study C: Deep-Emotion and schedulers").run()
    assert not at.exception and at.selectbox(key="studies_curves_suite").value == "study-c-schedulers"
    assert any("up to 2 here" in c.value for c in at.caption)
    curves = suite_curves("study-c-schedulers", tmp_path)
    assert set(curves["epoch"]) == {1, 2} and (curves["runs"] == 2).all() and (curves["std"] >= 0).all()
    at.selectbox(key="studies_curves_metric").set_value("train_acc").run()
    assert not at.exception


def test_sweeps_page_shows_a_study_and_launches_its_best_trial(open_page, small_folder, tmp_path, tiny_overrides):
    optuna = pytest.importorskip("optuna")
    from fer.jobs.queue import cancel, set_paused
    from fer.jobs.sweeps import SweepSettings, open_study

    set_paused(tmp_path, True)  # the launched full run stays queued: its config is what is checked
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr: {low: 1.0e-4, high: 0.1, log: true}\nmodel.kwargs.hidden: [16, 64]\n")
    study = open_study(SweepSettings("lr", trials=4), None, space, tiny_overrides(small_folder, tmp_path, 2),
                       tmp_path)
    dists = {"optim.lr": optuna.distributions.FloatDistribution(1e-4, 0.1, log=True),
             "model.kwargs.hidden": optuna.distributions.CategoricalDistribution((16, 64))}
    # Trials as `fer sweep` records them (tests/test_sweeps.py trains real ones): values per epoch, the run.
    for i, (lr, hidden, curve, state) in enumerate([(0.01, 16, [0.2, 0.3], "COMPLETE"), (0.001, 64, [0.25, 0.35],
                                                    "COMPLETE"), (0.0002, 16, [0.1], "PRUNED"), (0.05, 64, [0.2, 0.28],
                                                                                                  "COMPLETE")]):
        study.add_trial(optuna.trial.create_trial(
            params={"optim.lr": lr, "model.kwargs.hidden": hidden}, distributions=dists,
            value=max(curve) if state == "COMPLETE" else curve[-1], state=optuna.trial.TrialState[state],
            intermediate_values=dict(enumerate(curve, 1)), user_attrs={"run": f"run-{i}"}))
    at = open_page("sweeps", runs_dir=tmp_path, data_path=small_folder)
    assert not at.exception and not at.error
    assert [m.value for m in at.metric] == ["4", "3", "1", "35.0%"]
    assert list(at.dataframe[0].value["state"]) == ["complete", "complete", "pruned", "complete"]
    assert any("run-1" in m.value for m in at.markdown)
    run, cfg = _launch_queued(at, "sweeps_best_epochs", 12, "sweeps_launch_best", tmp_path)
    assert cfg.name == "lr-best" and cfg.train.epochs == 12 and cfg.optim.lr == 0.001
    assert cfg.model.kwargs["hidden"] == 64 and "from-sweep:lr" in cfg.tags
    cancel(run)


def test_sweeps_page_without_sweeps_says_how_to_start_one(open_page, tmp_path):
    at = open_page("sweeps", runs_dir=tmp_path)
    assert not at.exception and "fer sweep --config" in at.info[0].value


def test_train_page_sends_runs_to_a_ray_cluster_when_asked(open_page, small_folder, tmp_path):
    pytest.importorskip("ray")
    from fer.jobs.queue import cancel, describe_job, queued_runs, set_paused
    from fer.runs.store import read_status

    set_paused(tmp_path, True)  # queued, not dispatched: the target is what is checked
    at = open_page("train", runs_dir=tmp_path, data_path=small_folder,
                   settings='ray_targets = ["ray:auto"]\n[auth]\nlocal_token = false\n')  # the server offers it
    at.selectbox(key="train_target").set_value("ray:auto").run()
    assert any("the Ray cluster this machine belongs to" in c.value for c in at.caption)
    at.text_input(key="train_field_name").set_value("on-ray")
    at.button(key="FormSubmitter:train_form-Launch training").click().run()
    assert not at.exception and not at.error
    [run] = queued_runs(tmp_path)
    status = read_status(run)
    assert status["target"] == "ray:auto" and describe_job(status, paused=True) == "queued (the queue is paused)"
    cancel(run)


PAGES_WITHOUT_A_MODEL = """
import sys
from streamlit.testing.v1 import AppTest
for page in sys.argv[2:]:
    at = AppTest.from_file(sys.argv[1], default_timeout=120)
    if page != "home":
        at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, (page, at.exception)
print(sorted(m for m in ("torch", "torchvision", "mediapipe", "pytorch_grad_cam", "onnxruntime") if m in sys.modules))
"""


def test_pages_that_need_no_model_start_without_pytorch(small_folder, runs_with_one_run, tmp_path):
    import os
    import subprocess
    import sys

    settings = tmp_path / "fer-studio.toml"
    settings.write_text("[auth]\nlocal_token = false\n")
    env = {**os.environ, "FER_SETTINGS": str(settings), "FER_DATA_SOURCES": str(small_folder),
           "FER_RUNS_DIRS": str(runs_with_one_run)}  # a real run: its curves, confusion matrix and gallery
    done = subprocess.run([sys.executable, "-c", PAGES_WITHOUT_A_MODEL, APP, "home", "data", "runs", "confusion"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"  # seconds (minutes under load) saved on every first page
