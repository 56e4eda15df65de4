"""Video files: tracked faces, the photo path per frame, true timestamps, streaming, and bad input."""
from __future__ import annotations

import csv
from dataclasses import replace
import json
import tracemalloc

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fer.cli.main import main
from fer.inference.face_tracks import FaceTracker
from fer.inference.faces import create_detector
from fer.inference.pipeline import predict_image
from fer.inference.predictor import Predictor
from fer.inference.video import VideoAnalysis, VideoError, VideoWriter, probe_video, read_frames


def _head(size: int, flip: bool = False) -> np.ndarray:
    """The astronaut's real face (scikit-image's photo), size×size, optionally mirrored."""
    head = cv2.resize(skdata.astronaut()[20:260, 110:340], (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(head[:, ::-1]) if flip else head


def _two_faces(i: int, small: bool = False) -> np.ndarray:
    """Frame i (640×480, or 320×240): one face drifting right in the top half, a mirrored one drifting left
    in the bottom half."""
    canvas = np.full((480, 640, 3), 128, np.uint8)
    x1, x2 = 20 + 6 * i, 640 - 200 - 6 * i
    canvas[40:220, x1:x1 + 180] = _head(180)
    canvas[260:440, x2:x2 + 180] = _head(180, flip=True)
    return cv2.resize(canvas, (320, 240), interpolation=cv2.INTER_AREA) if small else canvas


def _write_clip(path, frames, times) -> str:
    writer = VideoWriter(path, frames[0].shape[1], frames[0].shape[0], 15)
    for frame, t in zip(frames, times):
        writer.write(frame, t)
    writer.close()
    return str(path)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """24 frames at 15 fps of two real faces moving past each other."""
    return _write_clip(tmp_path_factory.mktemp("video") / "two_faces.mp4", [_two_faces(i) for i in range(24)],
                       [i / 15 for i in range(24)])


@pytest.fixture(scope="module")
def detector(mediapipe_models):
    with create_detector("mediapipe", download=False) as d:
        yield d


def test_each_face_keeps_its_track_and_rows_equal_the_photo_path(clip, detector):
    predictor = Predictor.default()
    analysis = VideoAnalysis(clip, predictor, detector)
    rows = list(analysis.rows())
    assert analysis.frames_read == analysis.frames_analysed == 24 and not analysis.warnings
    by_track = {}
    for row in rows:
        by_track.setdefault(row["track"], []).append(row)
    assert len(by_track) == 2, f"faces changed ids: {sorted(by_track)}"
    top, bottom = sorted(by_track.values(), key=lambda r: r[0]["y"])
    assert all(r["y"] + r["h"] / 2 < 240 for r in top) and all(r["y"] + r["h"] / 2 > 240 for r in bottom)
    # Drifting right (top) and left (bottom) by 6 px a frame, give or take the detector's jitter.
    assert np.polyfit([r["frame"] for r in top], [r["x"] for r in top], 1)[0] == pytest.approx(6, abs=1.5)
    assert np.polyfit([r["frame"] for r in bottom], [r["x"] for r in bottom], 1)[0] == pytest.approx(-6, abs=1.5)
    assert len(top) >= 16 and len(bottom) >= 16  # MediaPipe misses a face in a few frames
    for row in rows:
        assert sum(row[f"p_{c}"] for c in predictor.class_names) == pytest.approx(1.0, abs=1e-4)
    # The same frame through the photo pipeline gives the same boxes and probabilities.
    frames = {i: rgb for i, _, rgb in read_frames(analysis.info)}
    for index in (0, 11, 23):
        photo = predict_image(predictor, frames[index], detector)
        video = sorted((r for r in rows if r["frame"] == index), key=lambda r: (r["x"], r["y"]))
        faces = sorted(photo.faces, key=lambda f: (f.box[0], f.box[1]))
        assert [(r["x"], r["y"], r["w"], r["h"]) for r in video] == [tuple(f.box) for f in faces]
        for r, f in zip(video, faces):
            assert [r[f"p_{c}"] for c in predictor.class_names] == pytest.approx(
                [f.probabilities[c] for c in predictor.class_names], abs=2e-6)


def test_fer_video_writes_csv_annotated_mp4_and_json(clip, tmp_path, capsys, mediapipe_models):
    out_csv, out_mp4 = tmp_path / "faces.csv", tmp_path / "annotated.mp4"
    code = main(["video", clip, "--every", "2", "--smooth", "0.6", "--csv", str(out_csv), "--annotate", str(out_mp4),
                 "--json", "--quiet", "--offline", "--backend", "torch"])
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    with open(out_csv, newline="") as f:
        table = list(csv.DictReader(f))
    classes = Predictor.default().class_names
    assert list(table[0]) == ["frame", "time_s", "track", "x", "y", "w", "h", "label", "confidence",
                              *[f"p_{c}" for c in classes], *[f"raw_{c}" for c in classes]]
    assert len(table) == len(rows) == summary["face_rows"] >= 20
    assert {int(r["frame"]) for r in table} <= set(range(0, 24, 2))
    assert summary["frames"] == 24 and summary["analysed_frames"] == 12 and len(summary["tracks"]) == 2
    for track in summary["tracks"]:
        assert sum(track[f"share_{c}"] for c in classes) == pytest.approx(1.0)
    # EMA: each track's smoothed probabilities follow 0.6·previous + 0.4·raw.
    first = [r for r in rows if r["track"] == 1]
    for prev, cur in zip(first, first[1:]):
        for c in classes:
            assert cur[f"p_{c}"] == pytest.approx(0.6 * prev[f"p_{c}"] + 0.4 * cur[f"raw_{c}"], abs=2e-5)
    info = probe_video(out_mp4)
    assert (info.codec, info.width, info.height) == ("h264", 640, 480)
    assert sum(1 for _ in read_frames(info)) == 24


def test_tracker_assigns_by_overlap_retires_and_smooths():
    tracker = FaceTracker(["a", "b"], max_missed=2, smoothing=0.5)
    p = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert [t for t, _ in tracker.update(0, 0.0, [(0, 0, 10, 10), (20, 0, 10, 10)], p)] == [1, 2]
    # Listed in the other order and moved a little: the ids follow the boxes, not the list order.
    ids = tracker.update(1, 0.1, [(21, 0, 10, 10), (1, 0, 10, 10)], p[::-1])
    assert [t for t, _ in ids] == [2, 1]
    assert tracker.update(2, 0.2, [(1, 0, 10, 10)], np.array([[0.0, 1.0]]))[0][1] == pytest.approx([0.5, 0.5])
    tracker.update(6, 0.6, [], np.zeros((0, 2)))  # track 2 unseen for 5 frames: retired
    assert tracker.update(7, 0.7, [(20, 0, 10, 10)], p[:1])[0][0] == 3
    summary = tracker.summary()
    assert list(summary["track"]) == [1, 2, 3] and list(summary["frames"]) == [3, 2, 1]


def test_variable_frame_rate_keeps_true_times(tmp_path):
    times = [0.0, 0.05, 0.3, 0.32, 0.9, 1.0, 1.75]
    path = _write_clip(tmp_path / "vfr.mp4", [_two_faces(i, small=True) for i in range(len(times))], times)
    got = [t for _, t, _ in read_frames(probe_video(path))]
    assert got == pytest.approx(times, abs=1e-3)
    rows = list(VideoAnalysis(path, Predictor.default(), create_detector("none")).rows())
    assert [r["time_s"] for r in rows] == pytest.approx(times, abs=1e-3)


def test_large_frames_are_analysed_scaled_with_boxes_in_original_pixels(tmp_path, monkeypatch, detector):
    frame = cv2.resize(_two_faces(0), (3200, 2400), interpolation=cv2.INTER_LINEAR)
    path = _write_clip(tmp_path / "large.mp4", [frame, frame], [0.0, 0.1])
    analysis = VideoAnalysis(path, Predictor.default(), detector)
    assert (analysis.info.analysed_width, analysis.info.analysed_height) == (1920, 1440)
    rows = list(analysis.rows())
    assert rows
    for row in rows:  # each box is around one of the two faces' centres in the 3200×2400 original
        centre = np.array([row["x"] + row["w"] / 2, row["y"] + row["h"] / 2])
        assert min(np.abs(centre - np.array(c)).max() for c in [(550, 650), (2650, 1750)]) < 200, row
    monkeypatch.setattr("fer.inference.video.MAX_PIXELS", 5_000_000)
    with pytest.raises(VideoError, match="MP limit"):
        probe_video(path)


def test_bad_videos_give_clear_errors(tmp_path, clip, capsys):
    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(VideoError, match="not a video"):
        probe_video(text)
    with pytest.raises(VideoError, match="not a file"):
        probe_video(tmp_path)
    with pytest.raises(VideoError, match="no such file"):
        probe_video(tmp_path / "missing.mp4")
    import av
    empty = tmp_path / "empty.mkv"  # a header and a video stream, but no frames
    container = av.open(str(empty), "w")
    stream = container.add_stream("libx264", rate=10)
    stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
    container.start_encoding()
    container.close()
    with pytest.raises(VideoError):
        list(read_frames(probe_video(empty)))
    # A file cut short: the frames before the cut are analysed and the result says the file ends early.
    data = open(clip, "rb").read()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 9 // 10])  # the first keyframe is most of this small file: keep it
    analysis = VideoAnalysis(cut, Predictor.default(), create_detector("none"))
    rows = list(analysis.rows())
    assert 0 < len(rows) < 24 and "ends early" in analysis.warnings[0]
    half = tmp_path / "half.mp4"
    half.write_bytes(data[:len(data) // 2])  # the first keyframe is cut: nothing decodes
    with pytest.raises(VideoError, match="no frame could be decoded"):
        list(VideoAnalysis(half, Predictor.default(), create_detector("none")).rows(annotate_to=tmp_path / "x.mp4"))
    assert not (tmp_path / "x.mp4").exists()  # no empty output file is left behind
    assert main(["video", str(text), "--quiet"]) == 2
    assert "not a video" in capsys.readouterr().err
    assert main(["video", clip, "--every", "0", "--quiet"]) == 2


@pytest.mark.slow
def test_long_videos_stream_in_constant_memory(tmp_path):
    """Python-side peak memory is the same for a 60- and a 240-frame video: nothing piles up per frame."""
    frames = [_two_faces(i % 40, small=True) for i in range(240)]
    peaks = []
    for n in (60, 240):
        path = _write_clip(tmp_path / f"long{n}.mp4", frames[:n], [i / 15 for i in range(n)])
        analysis = VideoAnalysis(path, Predictor.default(), create_detector("none"), smoothing=0.5)
        tracemalloc.start()
        count = sum(1 for _ in analysis.rows(annotate_to=tmp_path / f"out{n}.mp4"))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert count == n
    assert peaks[1] < peaks[0] * 1.25 + 1_000_000, f"peak {peaks[0] / 1e6:.1f} MB → {peaks[1] / 1e6:.1f} MB"


@pytest.mark.usefixtures("mediapipe_models")
def test_video_page_tracks_faces_and_offers_the_csv(open_page, clip, tmp_path):
    at = open_page("video", timeout=180, runs_dir=tmp_path)  # no runs: the shipped model
    assert not at.exception and "Upload a clip" in at.info[0].value
    at.number_input(key="video_every").set_value(2)
    at.file_uploader(key="video_upload").upload("two_faces.mp4", open(clip, "rb").read(), "video/mp4").run()
    assert not at.exception, at.exception
    assert [m.value for m in at.metric] == ["2"]
    tracks, rows = (d.value for d in at.dataframe)
    assert list(tracks["track"]) == [1, 2] and rows["frame"].max() <= 22 and set(rows["frame"] % 2) == {0}
    assert "24 frames, 12 analysed" in at.caption[0].value
    assert at.selectbox(key="video_face").options == ["#1 (12 frames)", "#2 (12 frames)"]  # the longest first
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    at.file_uploader(key="video_upload").upload("notes.mp4", bad.read_bytes(), "video/mp4").run()
    assert not at.exception and "notes.mp4: not a video" in at.error[0].value


@pytest.fixture(scope="module")
def small_face_clip(tmp_path_factory):
    """12 frames of the astronaut's face at 70 px drifting over a real photo: too small for the whole frame alone."""
    background = cv2.resize(skdata.coffee(), (640, 480))
    frames = []
    for i in range(12):
        frame = background.copy()
        frame[300:440, 60 + 12 * i:200 + 12 * i] = _head(140)  # the face is about half of the head crop
        frames.append(frame)
    return _write_clip(tmp_path_factory.mktemp("video") / "small_face.mp4", frames, [i / 15 for i in range(12)])


@pytest.mark.usefixtures("mediapipe_models")
def test_the_video_page_and_fer_video_find_the_same_faces(open_page, small_face_clip, tmp_path):
    out = tmp_path / "cli.csv"
    assert main(["video", small_face_clip, "--csv", str(out), "--quiet", "--offline"]) == 0
    with open(out) as handle:
        cli = [(int(r["frame"]), int(r["track"]), int(r["x"]), int(r["y"]), r["label"]) for r in csv.DictReader(handle)]
    at = open_page("video", timeout=180, runs_dir=tmp_path)
    at.file_uploader(key="video_upload").upload("small_face.mp4", open(small_face_clip, "rb").read(), "video/mp4").run()
    assert not at.exception, at.exception
    rows = at.dataframe[1].value
    page = [(int(r.frame), int(r.track), int(r.x), int(r.y), r.label) for r in rows.itertuples()]
    assert page == cli and len({r[0] for r in cli}) >= 10  # the same rows, and the face in (nearly) every frame
    with create_detector("mediapipe", download=False) as whole_frame_only:  # what the page searched before
        found = sum(bool(whole_frame_only.detect(rgb)) for _, _, rgb in read_frames(probe_video(small_face_clip)))
    assert found < len({r[0] for r in cli})


def _boxes(data: bytes) -> dict:
    """An MP4's top-level boxes: kind -> bytes (box header included)."""
    boxes, offset = {}, 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset:offset + 4], "big")
        boxes[data[offset + 4:offset + 8].decode("latin-1")] = data[offset:offset + size]
        offset += size
    return boxes


def test_an_mp4_cut_before_its_index_says_why_nothing_can_be_analysed(tmp_path, clip):
    """Cameras write the index (moov) last: a recording cut short has frames but no way to find them."""
    boxes = _boxes(open(clip, "rb").read())
    assert {"ftyp", "moov", "mdat"} <= set(boxes)
    camera_cut = tmp_path / "camera-cut.mp4"  # ftyp, then mdat cut in the middle, and no moov
    camera_cut.write_bytes(boxes["ftyp"] + boxes["mdat"][: len(boxes["mdat"]) // 2])
    with pytest.raises(VideoError, match="cut off before its index .* nothing is analysed"):
        probe_video(camera_cut)


def test_a_clip_longer_than_the_servers_cap_is_refused_or_stopped(tmp_path, clip):
    with pytest.raises(VideoError, match="24 frames .* more than the 10 this server analyses per clip"):
        VideoAnalysis(clip, Predictor.default(), create_detector("none"), max_frames=10)
    analysis = VideoAnalysis(clip, Predictor.default(), create_detector("none"), max_frames=24)
    analysis.info = replace(analysis.info, frames=0)  # a header that does not say how long it is
    analysis.max_frames = 12
    rows = list(analysis.rows())
    assert analysis.frames_read == 12 and "stopped after 12 frames" in analysis.warnings[-1] and rows is not None
