"""Inference on real faces: image loading edge cases, detection, the shared preprocessing path,
the Predictor (TTA, ensembles), Grad-CAM and `fer predict`."""
import io
import json
import os
import shutil
import subprocess
import sys

import cv2
import matplotlib.cbook
import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from fer.cli.catalog import catalog
from fer.data import RunData, load_fer2013
from fer.data.loaders import eval_loader
from fer.data.preprocess import Preprocessing, to_model_input
from fer.inference.averaging import DEFAULT_TTA, TTA_MODES, calibrated_softmax
from fer.inference.classifiers import load_classifier
from fer.inference.explain import CAM_METHODS, attention_views, explain_faces, overlay
from fer.inference.faces import DetectorSettings, PHOTO_TILES, create_detector, crop_face, ensure_model_file
from fer.inference.faces.detectors import HaarDetector
from fer.inference.faces.model_files import ModelFileUnavailable
from fer.inference.images import ImageError, load_image
from fer.inference.pipeline import NoFaceFound, predict_image
from fer.inference.predictor import Ensemble, Predictor
from fer.metrics.calibration import apply_temperature
from fer.models import MODELS, create_model
from fer.runs.checkpoint import load_checkpoint
from fer.runs.store import read_config
from fer.training.evaluate import evaluate_run, score
from fer.training.loops import predict


pytestmark = pytest.mark.usefixtures("mediapipe_models")


@pytest.fixture(scope="module")
def detector():
    with create_detector("mediapipe", download=False) as d:
        yield d


@pytest.fixture(scope="module")
def predictor(trained_run):
    return Predictor.from_run(trained_run)


def _astronaut_head(size: int) -> np.ndarray:
    """The astronaut's head and shoulders from scikit-image's real photo, resized to size×size."""
    return cv2.resize(skdata.astronaut()[20:260, 110:340], (size, size), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def group_photo():
    """A 640×480 'group photo': the same real face at four sizes on a gray background."""
    canvas = np.full((480, 640, 3), 128, np.uint8)
    for x, y, size in [(10, 10, 260), (300, 20, 200), (470, 260, 150), (60, 300, 170)]:
        canvas[y:y + size, x:x + size] = _astronaut_head(size)
    return canvas


# --- image loading -------------------------------------------------------------------------------------------

def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_load_image_modes_become_rgb():
    astronaut = Image.fromarray(skdata.astronaut())
    gray16 = Image.fromarray((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16))
    assert gray16.mode.startswith("I")
    cases = {
        "rgb.jpg": _encode(astronaut, "JPEG"),
        "cmyk.jpg": _encode(astronaut.convert("CMYK"), "JPEG"),
        "rgba.png": _encode(astronaut.convert("RGBA"), "PNG"),
        "palette.png": _encode(astronaut.convert("P"), "PNG"),
        "gray16.png": _encode(gray16, "PNG"),
        "gray.webp": _encode(astronaut.convert("L"), "WEBP"),
    }
    for name, payload in cases.items():
        rgb = load_image(payload, name)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.c_contiguous, name
    sixteen = load_image(cases["gray16.png"])
    assert sixteen.max() > 200 and sixteen.min() == 0  # scaled from 16 bits, not clipped to white
    transparent = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert (load_image(_encode(transparent, "PNG")) == 255).all()  # composited on white


def test_exif_rotated_jpeg_is_turned_upright():
    astronaut = Image.fromarray(skdata.astronaut()[:, :400])  # 512 high, 400 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    rgb = load_image(_encode(astronaut, "JPEG", exif=exif.tobytes()))
    assert rgb.shape[:2] == (400, 512)


@pytest.mark.parametrize("payload,message", [
    (b"", "empty"),
    (b"this is not an image at all", "not an image"),
    (_encode(Image.fromarray(skdata.astronaut()), "JPEG")[:3000], "damaged or truncated"),
])
def test_bad_files_give_clear_errors(payload, message):
    with pytest.raises(ImageError, match=message):
        load_image(payload, "upload")


def test_decompression_bomb_is_refused_before_decoding():
    bomb = _encode(Image.new("1", (10_000, 6_000)), "PNG")  # 60 MP in a few kB
    assert len(bomb) < 100_000
    with pytest.raises(ImageError, match="MP limit"):
        load_image(bomb)


# --- detection and cropping ----------------------------------------------------------------------------------

def test_mediapipe_finds_the_astronaut_with_eyes(detector):
    faces = detector.detect(skdata.astronaut())
    assert len(faces) == 1 and faces[0].score > 0.8 and faces[0].eyes is not None
    x, y, w, h = faces[0].box
    assert 150 < x < 220 and 50 < y < 120 and 70 < w < 130  # the face, not the helmet or the badge
    (rx, ry), (lx, ly) = faces[0].eyes
    assert rx < lx and x < rx < x + w


def test_every_face_largest_first_with_limits(detector, group_photo):
    assert len(detector.detect(group_photo)) < 4  # BlazeFace alone misses the small ones...
    with create_detector("mediapipe", DetectorSettings(tiles=PHOTO_TILES), download=False) as tiled:
        faces = tiled.detect(group_photo)  # ...the tiles find all four, once each
    assert len(faces) == 4
    assert [f.area for f in faces] == sorted((f.area for f in faces), reverse=True)
    few = create_detector("mediapipe", DetectorSettings(max_faces=2, tiles=PHOTO_TILES), download=False)
    big = create_detector("mediapipe", DetectorSettings(min_face_size=80, tiles=PHOTO_TILES), download=False)
    try:
        assert [f.box for f in few.detect(group_photo)] == [f.box for f in faces[:2]]
        assert [f.box for f in big.detect(group_photo)] == [f.box for f in faces if min(f.box[2:]) >= 80]
    finally:
        few.close()
        big.close()


def _hopper_head(size: int) -> np.ndarray:
    """Grace Hopper's head from the real portrait matplotlib ships, resized to size×size."""
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    hopper = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return cv2.resize(hopper[90:400, 110:420], (size, size), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("photo", ["chelsea", "coffee", "rocket"])
def test_tiles_find_no_phantom_faces(photo):
    # A cat, a coffee cup and a rocket: BlazeFace's tile passes call parts of them faces at 0.5-0.6.
    with create_detector("mediapipe", DetectorSettings(tiles=PHOTO_TILES), download=False) as tiled:
        assert tiled.detect(getattr(skdata, photo)()) == []


def test_tiles_find_every_face_of_a_portrait_grid():
    # 18 real faces of two people, 100 px each: the whole-frame pass alone finds only a few.
    rows = [np.hstack([(_astronaut_head if (r + c) % 2 else _hopper_head)(100) for c in range(6)]) for r in range(3)]
    grid = np.ascontiguousarray(np.vstack(rows))
    with create_detector("mediapipe", DetectorSettings(tiles=PHOTO_TILES), download=False) as tiled, \
            create_detector("mediapipe", download=False) as whole:
        assert len(tiled.detect(grid)) == 18 and len(whole.detect(grid)) < 18


def test_faces_can_be_numbered_in_reading_order(predictor):
    # Two rows of real faces of different sizes: largest first is not how a reader counts them.
    sizes = [80, 120, 100]
    rows = []
    for r in range(2):
        tiles = [np.pad(_hopper_head(s) if (r + c) % 2 else _astronaut_head(s), ((0, 130 - s), (5, 5), (0, 0)),
                        constant_values=128) for c, s in enumerate(sizes if r == 0 else sizes[::-1])]
        rows.append(np.hstack(tiles))
    photo = np.ascontiguousarray(np.vstack(rows))
    with create_detector("mediapipe", DetectorSettings(tiles=PHOTO_TILES), download=False) as tiled:
        result = predict_image(predictor, photo, tiled)
    assert len(result.faces) == 6
    ordered = result.in_reading_order().faces
    assert [f.box[1] < 130 for f in ordered] == [True] * 3 + [False] * 3  # the top row first
    assert all(a.box[0] < b.box[0] for a, b in zip(ordered[:2], ordered[1:3]))  # each row left to right
    assert all(a.box[0] < b.box[0] for a, b in zip(ordered[3:5], ordered[4:]))
    assert sorted(f.box for f in ordered) == sorted(f.box for f in result.faces)


def test_without_the_landmarker_tile_finds_need_more_confidence(tmp_path, monkeypatch):
    shutil.copy(ensure_model_file("blaze_face_short_range.tflite", download=False), tmp_path)
    monkeypatch.setenv("FER_MODEL_CACHE", str(tmp_path))  # BlazeFace only: nothing to verify faces with
    with create_detector("mediapipe", DetectorSettings(tiles=PHOTO_TILES), download=False) as tiled:
        assert tiled.detect(skdata.chelsea()) == [] and tiled.detect(skdata.coffee()) == []
        assert len(tiled.detect(skdata.astronaut())) == 1
        assert "verification is off" in tiled.note


def test_detectors_left_open_are_closed_before_the_interpreter_tears_down():
    # As a Streamlit cache leaves them: never closed. Without the exit hook, their __del__ runs during
    # teardown (tracebacks, and now and then a C++ abort after all work was done).
    script = ("import numpy as np; from skimage import data\n"
              "from fer.inference.faces import DetectorSettings, PHOTO_TILES, create_detector\n"
              "from fer.inference.blendshapes import FeatureExtractor\n"
              "held = [create_detector('mediapipe', DetectorSettings(tiles=PHOTO_TILES), download=False),\n"
              "        FeatureExtractor(download=False)]\n"
              "print(len(held[0].detect(data.astronaut())), held[1](np.zeros((1, 48, 48), np.uint8)).shape)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.split() == ["1", "(1,", "1008)"], done.stderr[-2000:]
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_dozens_of_faces_do_not_break_anything(predictor):
    tile = _astronaut_head(110)
    grid = np.vstack([np.hstack([tile] * 8)] * 5)  # 40 faces in an 880×550 image
    with create_detector("mediapipe", DetectorSettings(tiles=(1, 2, 3, 4)), download=False) as tiled:
        result = predict_image(predictor, np.ascontiguousarray(grid), tiled)
    assert 30 <= len(result.faces) <= 50
    assert all(abs(sum(f.probabilities.values()) - 1) < 1e-4 for f in result.faces)


def test_offline_without_model_files_falls_back_to_haar_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_MODEL_CACHE", str(tmp_path))
    (tmp_path / "blaze_face_short_range.tflite").write_bytes(b"corrupt")  # wrong checksum counts as missing
    with pytest.raises(ModelFileUnavailable, match="wrong checksum"):
        ensure_model_file("blaze_face_short_range.tflite", download=False)
    with create_detector("auto", download=False) as fallback:
        assert isinstance(fallback, HaarDetector) and "Haar" in fallback.note
        assert len(fallback.detect(skdata.astronaut())) == 1


def test_alignment_levels_a_tilted_face(detector):
    rgb = skdata.astronaut()
    tilted = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((225, 130), -25, 1.0), (512, 512))
    face = detector.detect(tilted)[0]
    (rx, ry), (lx, ly) = face.eyes
    assert abs(ly - ry) > 10  # the eye line is visibly tilted
    gray = cv2.cvtColor(tilted, cv2.COLOR_RGB2GRAY)
    plain, aligned = crop_face(gray, face, align=False), crop_face(gray, face, align=True)
    upright = crop_face(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), detector.detect(rgb)[0])
    # The aligned crop resembles the upright face more than the tilted crop does.
    assert np.abs(aligned.astype(int) - upright).mean() < np.abs(plain.astype(int) - upright).mean()


# --- one preprocessing path ----------------------------------------------------------------------------------

def test_photo_path_matches_evaluation_exactly(predictor, small_folder):
    data = load_fer2013(small_folder)
    index = np.arange(0, len(data.labels), 37)[:8]
    loader = eval_loader(data.images[index], data.labels[index], batch_size=8)
    eval_batch = to_model_input(next(iter(loader))[0], predictor.spec)
    # Batch size 1 on both sides: float GEMMs are not bitwise batch-size invariant.
    single = eval_loader(data.images[index], data.labels[index], batch_size=1)
    eval_probs, _ = predict(predictor.model, single, torch.device("cpu"), predictor.spec)
    whole = create_detector("none")
    for i, k in enumerate(index):
        rgb = load_image(small_folder / data.sources[k])
        result = predict_image(predictor, rgb, whole)
        photo_tensor = to_model_input(torch.from_numpy(result.faces[0].face)[None, None], predictor.spec)
        assert torch.equal(photo_tensor[0], eval_batch[i])
        # The evaluation's probabilities with the run's fitted temperature dividing the logits.
        photo = np.array(list(result.faces[0].probabilities.values()), np.float32)
        calibrated = apply_temperature(np.asarray(eval_probs[i:i + 1], np.float32), predictor.temperature)[0]
        assert predictor.temperature != 1.0 and np.allclose(photo, calibrated, atol=1e-6)
        with torch.no_grad():
            logits = predictor.model(eval_batch[i:i + 1]).numpy()
        assert np.array_equal(photo, calibrated_softmax(logits, predictor.temperature)[0])


# --- predictor -----------------------------------------------------------------------------------------------

def test_predictor_rebuilds_from_checkpoint_and_predicts_every_face(predictor, group_photo, trained_run):
    assert predictor.class_names == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert Predictor.from_checkpoint(trained_run / "best.pt").name == "artifacts"  # the run's config name
    with create_detector("mediapipe", DetectorSettings(tiles=PHOTO_TILES), download=False) as detector:
        result = predict_image(predictor, group_photo, detector)
    assert len(result.faces) == 4 and result.detector == "mediapipe"
    for face in result.faces:
        assert face.face.shape == (48, 48) and face.label == max(face.probabilities, key=face.probabilities.get)
    json.dumps(result.to_dict())


def test_no_face_is_an_explicit_choice(predictor, detector):
    blank = np.full((240, 320, 3), 90, np.uint8)
    with pytest.raises(NoFaceFound, match="whole image"):
        predict_image(predictor, blank, detector)
    result = predict_image(predictor, blank, detector, whole_image=True)
    assert len(result.faces) == 1 and result.faces[0].box == (0, 0, 320, 240) and "whole image" in result.note


def test_tta_averages_logits_and_ensembles_average_probabilities(trained_run, small_data):
    faces = small_data.images[:6]
    plain = Predictor.from_run(trained_run, calibrated=False)
    flip_raw = Predictor.from_run(trained_run, tta="flip", calibrated=False)
    # TTA averages the views' logits (so one temperature can calibrate the averaged predictor).
    mirrored = plain.logits_of_faces(faces[:, :, ::-1].copy())
    assert np.allclose(flip_raw.logits_of_faces(faces), (plain.logits_of_faces(faces) + mirrored) / 2, atol=1e-5)
    flip = flip_raw.predict_faces(faces)
    assert np.allclose(flip, calibrated_softmax(flip_raw.logits_of_faces(faces)), atol=1e-6)
    # Each mode has its own temperature, fitted on that mode's averaged logits on validation.
    record = load_checkpoint(trained_run / "best.pt")["calibration"]
    assert set(record["temperatures"]) == set(TTA_MODES)
    for mode in TTA_MODES:
        calibrated = Predictor.from_run(trained_run, tta=mode)
        assert calibrated.temperature == pytest.approx(record["temperatures"][mode])
        raw = Predictor.from_run(trained_run, tta=mode, calibrated=False).logits_of_faces(faces)
        assert np.allclose(calibrated.predict_faces(faces), calibrated_softmax(raw, calibrated.temperature), atol=1e-6)
    tencrop = Predictor.from_run(trained_run, tta="tencrop").predict_faces(faces)
    assert tencrop.shape == (6, 7) and np.allclose(tencrop.sum(1), 1, atol=1e-5)
    ensemble = Ensemble([plain, flip_raw])
    assert np.allclose(ensemble.predict_faces(faces), (plain.predict_faces(faces) + flip) / 2, atol=1e-6)


def test_the_product_predicts_with_flip_by_default_and_evaluation_scores_the_model_itself(trained_run, tmp_path):
    assert DEFAULT_TTA == "flip" and catalog()["default_tta"] == DEFAULT_TTA
    assert load_classifier(trained_run, backend="torch").tta == "flip"
    assert load_classifier().tta == "flip"  # the shipped model, on the fastest engine
    # `fer eval` scores the model itself (no TTA), as the training's own evaluation and the studies do.
    run_data = RunData.from_config(read_config(trained_run))
    index, name = run_data.split("val")
    expected = score(Predictor.from_run(trained_run), run_data.data, index, name).metrics
    got = evaluate_run(shutil.copytree(trained_run, tmp_path / trained_run.name), "val")  # records into the copy
    assert got["accuracy"] == expected["accuracy"] and got["ece"] == pytest.approx(expected["ece"], abs=1e-6)


# --- Grad-CAM and attention ----------------------------------------------------------------------------------

def _hook_count(model):
    return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(getattr(m, "_forward_pre_hooks", {}))
               for m in model.modules())


@pytest.mark.parametrize("method", CAM_METHODS.names())
def test_cam_methods_on_a_trained_model(method, predictor, small_data):
    faces = small_data.images[:3]
    maps, classes = explain_faces(predictor, faces, method)
    assert maps.shape == (3, 48, 48) and maps.min() >= 0 and maps.max() <= 1 and maps.max() > 0.5
    assert classes == predictor.predict_faces(faces).argmax(1).tolist()
    _, chosen = explain_faces(predictor, faces, method, target="fear")
    assert chosen == [2, 2, 2]
    assert _hook_count(predictor.model) == 0
    assert overlay(faces[0], maps[0]).shape == (192, 192, 3)


@pytest.mark.parametrize("name", MODELS.names())
def test_gradcam_works_for_every_registered_model(name, small_data):
    model = create_model(name).eval()
    p = Predictor(model, ["a", "b", "c", "d", "e", "f", "g"], Preprocessing())
    maps, _ = explain_faces(p, small_data.images[:2], "gradcam")
    assert maps.shape == (2, 48, 48) and np.isfinite(maps).all()
    assert _hook_count(model) == 0


def test_hooks_are_released_when_the_model_fails(small_data):
    model = create_model("plain_cnn").eval()
    p = Predictor(model, list("abcdefg"), Preprocessing())
    with pytest.raises(IndexError):  # fails inside the CAM call, after the hooks are attached
        explain_faces(p, small_data.images[:2], "gradcam", target=99)
    assert _hook_count(model) == 0
    with pytest.raises(ValueError):
        explain_faces(p, small_data.images[:2], "gradcam", target="not-a-class")
    with pytest.raises(AttributeError):
        explain_faces(p, small_data.images[:2], "gradcam", layer="features.99")
    assert _hook_count(model) == 0


def test_attention_views_of_cbam_and_deep_emotion(small_data):
    faces = small_data.images[:2]
    cbam = attention_views(Predictor(create_model("cbam_cnn").eval(), list("abcdefg"), Preprocessing()), faces)
    assert len(cbam) == 4 and all(v.shape == (2, 48, 48) for v in cbam.values())
    warped = attention_views(Predictor(create_model("deep_emotion").eval(), list("abcdefg"), Preprocessing()), faces)
    view = warped["spatial transformer output"]
    assert view.shape == (2, 48, 48)
    assert np.abs(view * 255 - faces).mean() < 2.0  # identity transform at initialisation: the face itself


# --- the CLI -------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_fer_predict_cli(trained_run, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    Image.fromarray(skdata.astronaut()).save(photo)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.png"
    text.write_text("hello")
    env = {**os.environ}
    cmd = [sys.executable, "-m", "fer", "predict", str(photo), str(empty), str(text), "--run", str(trained_run),
           "--json", "--annotate", str(tmp_path / "out"), "--cam", str(tmp_path / "cams"), "--offline"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 1  # two of three inputs are bad
    assert "Traceback" not in done.stderr and "empty (0 bytes)" in done.stderr and "not an image" in done.stderr
    records = json.loads(done.stdout)
    assert records[0]["faces"][0]["label"] in records[0]["faces"][0]["probabilities"]
    assert len(records[0]["faces"]) == 1 and records[1]["error"] and records[2]["error"]
    assert cv2.imread(records[0]["annotated"]).shape == (512, 512, 3)
    assert cv2.imread(records[0]["cam"]).shape == (192, 192, 3)
    single = subprocess.run([sys.executable, "-m", "fer", "predict", str(photo), "--run", str(trained_run),
                             "--tta", "flip", "--offline"], capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0 and "1 face(s), detector mediapipe" in single.stdout and "#1 box" in single.stdout
    # MediaPipe's LiteRT log lines (INFO: ..., W0000 ...) stay off the terminal; our own messages do not.
    assert single.stderr.strip() == "" and "INFO:" not in done.stderr and "W0000" not in done.stderr
