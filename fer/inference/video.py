"""Emotions through a video file: the photo pipeline on every Nth frame, faces tracked, streamed to disk.

    analysis = VideoAnalysis("clip.mp4", Predictor.default(), detector, every=2, smoothing=0.6)
    for row in analysis.rows(annotate_to="annotated.mp4"):   # one dict per face per analysed frame
        ...
    analysis.tracker.summary()                                 # per face: frames, dominant emotion, shares

Frames are decoded with PyAV (FFmpeg), which gives each frame its own timestamp, so variable-frame-rate
phone clips get true times. Each analysed frame goes through `predict_image`, the path photos and the
webcam take (detect → crop → the shared preprocessing → model), and `FaceTracker` keeps face ids stable.
Nothing is kept per frame: rows are yielded as they come and the annotated video is encoded as it goes,
so memory does not grow with the video's length.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import numpy as np
import pandas as pd

from fer.core.errors import UserError
from fer.inference.annotate import annotate
from fer.inference.face_tracks import FaceTracker
from fer.inference.images import MAX_PIXELS
from fer.inference.pipeline import Classifier, ImagePrediction, NoFaceFound, predict_image

ANALYSIS_SIDE = 1920  # frames larger than this are analysed (and annotated) scaled down: faces stay ≥ 48 px
MILLISECONDS = Fraction(1, 1000)
VIDEO_SUFFIXES = ("mp4", "mov", "m4v", "avi", "mkv", "webm", "mpg", "mpeg", "wmv", "flv", "3gp", "ogv", "gif")


class VideoError(UserError):
    """The file cannot be analysed as a video (missing, not a video, no frames, too large)."""


@dataclass
class VideoInfo:
    """What the container says about its first video stream, and the size frames are analysed at."""

    path: str
    width: int
    height: int
    fps: float  # average; 0 when the container does not say
    frames: int  # declared frame count; 0 when unknown
    duration_s: float
    codec: str
    analysed_width: int
    analysed_height: int

    @property
    def scale(self) -> float:
        """Analysed size / original size (1.0 unless the video is larger than ANALYSIS_SIDE)."""
        return self.analysed_width / self.width


def _av():
    import av  # PyAV ships with streamlit-webrtc (aiortc); imported here so `fer --help` stays light
    return av


def _open(path: Path):
    av = _av()
    if not path.exists():
        raise VideoError(f"{path}: no such file")
    if not path.is_file():
        raise VideoError(f"{path}: not a file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        if isinstance(e, av.error.InvalidDataError) and _mp4_without_index(path):
            raise VideoError(f"{path}: an MP4 cut off before its index (the moov atom, which most cameras write at "
                             "the end): no frame can be located, so nothing is analysed. A file cut off after its "
                             "index (e.g. written with ffmpeg -movflags +faststart) is analysed up to the cut") from None
        raise VideoError(f"{path}: not a video FFmpeg can read, or a damaged one ({e.__class__.__name__})") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    return container


def _mp4_without_index(path: Path) -> bool:
    """Whether the file starts as an MP4/MOV (an ftyp box) but holds no moov box: cut before its index."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[4:8] != b"ftyp":
            return False
        offset = 0
        while True:  # walk the top-level boxes by their sizes; only headers are read
            fh.seek(offset)
            header = fh.read(8)
            if len(header) < 8:
                return True
            size, kind = int.from_bytes(header[:4], "big"), header[4:8]
            if kind == b"moov":
                return False
            if size == 1:
                size = int.from_bytes(fh.read(8), "big")
            if size < 8:
                return True
            offset += size


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)  # H.264 (yuv420p) needs even sides


def probe_video(path: str | Path) -> VideoInfo:
    """Open the file, check it is a video we can analyse, and describe it (no frame is decoded)."""
    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width <= 0 or height <= 0:
            raise VideoError(f"{path}: the video stream has no frame size")
        if width * height > MAX_PIXELS:
            raise VideoError(f"{path}: {width}×{height} frames are over the {MAX_PIXELS // 1_000_000} MP limit")
        scale = min(1.0, ANALYSIS_SIDE / max(width, height))
        duration = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
                    else (container.duration or 0) / 1e6)
        return VideoInfo(str(path), width, height, float(stream.average_rate or 0), int(stream.frames or 0),
                         float(duration), stream.codec_context.name, _even(width * scale), _even(height * scale))
    finally:
        container.close()


def read_frames(info: VideoInfo, warnings: Optional[List[str]] = None) -> Iterator[tuple]:
    """(index, time in seconds, RGB frame at the analysed size) for every frame that decodes.

    Packets are decoded one by one, so a damaged packet costs its frame, not the rest of the video, and a
    cut-off file yields every frame before the cut; both end up in `warnings`.
    """
    av = _av()
    container = _open(Path(info.path))
    index, damaged, note = -1, 0, ""
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"  # FFmpeg's frame threads: decoding is most of the cost on big frames
        packets = container.demux(stream)
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError as e:  # the container itself is cut or damaged here
                note = f"reading stopped at a damaged part of the file ({e.__class__.__name__})"
                break
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                damaged += 1
                continue
            for frame in frames:
                index += 1
                time_s = float(frame.time) if frame.time is not None else index / (info.fps or 30.0)
                yield index, time_s, frame.to_ndarray(format="rgb24", width=info.analysed_width,
                                                      height=info.analysed_height)
    finally:
        container.close()
    if index < 0:
        raise VideoError(f"{info.path}: no frame could be decoded (the video has no frames, or they are damaged)")
    if warnings is None:
        return
    if damaged:
        warnings.append(f"{damaged} damaged packet(s) were skipped")
    if note or (info.frames and index + 1 < 0.98 * info.frames):
        # FFmpeg often meets a cut-off file as a plain end of stream: compare with what the header declared.
        warnings.append(f"the video ends early: {index + 1} of {info.frames or '?'} frames decoded"
                        + (f"; {note}" if note else "") + "; the file may be truncated")


class VideoWriter:
    """An H.264 MP4 (plays in browsers) written frame by frame with the source's timestamps."""

    def __init__(self, path: str | Path, width: int, height: int, fps: float) -> None:
        av = _av()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.container = av.open(str(path), "w", format="mp4", options={"movflags": "faststart"})
        self.stream = self.container.add_stream("libx264", rate=Fraction(round(fps or 30.0)))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        # Millisecond timestamps (stream and encoder) keep variable frame rates true.
        self.stream.time_base = self.stream.codec_context.time_base = MILLISECONDS
        self.stream.options = {"preset": "veryfast", "crf": "23"}
        self._last_pts = -1

    def write(self, rgb: np.ndarray, time_s: float) -> None:
        """Encode one RGB frame shown at `time_s`."""
        frame = _av().VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        self._last_pts = max(self._last_pts + 1, int(round(time_s * 1000)))
        frame.pts, frame.time_base = self._last_pts, MILLISECONDS  # the muxer may change the stream's own
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


class VideoAnalysis:
    """One pass over a video: per analysed frame and face, a row; per face track, a summary."""

    def __init__(self, path: str | Path, classifier: Classifier, detector, every: int = 1, smoothing: float = 0.0,
                 margin: float = 0.15, align: bool = False, max_missed: int = 15,
                 max_frames: Optional[int] = None) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.info = probe_video(path)
        # A cap on the frames decoded (a server shares its CPU): a longer clip is refused when its header
        # says so, and stopped at the cap when the header under-reports.
        self.max_frames = max_frames
        if max_frames and self.info.frames > max_frames:
            raise VideoError(f"{path}: {self.info.frames:,} frames ({self.info.duration_s:.0f} s), more than the "
                             f"{max_frames:,} this server analyses per clip; cut it shorter")
        self.classifier, self.detector = classifier, detector
        self.every, self.margin, self.align = every, margin, align
        # A track may go unseen for about half a second of analysed frames before a new id is given.
        self.tracker = FaceTracker(list(classifier.class_names), smoothing=smoothing, max_missed=max_missed)
        self.warnings: List[str] = []
        self.frames_read = 0
        self.frames_analysed = 0

    @property
    def class_names(self) -> List[str]:
        return list(self.classifier.class_names)

    def columns(self) -> List[str]:
        """The columns of every row (and of the CSV), in order."""
        smoothed = self.tracker.smoothing > 0
        return ["frame", "time_s", "track", "x", "y", "w", "h", "label", "confidence",
                *[f"p_{c}" for c in self.class_names], *([f"raw_{c}" for c in self.class_names] if smoothed else [])]

    def rows(self, annotate_to: str | Path | None = None,
             on_frame: Optional[Callable[[int, int], None]] = None) -> Iterator[Dict[str, object]]:
        """Yield one row per face per analysed frame (boxes in the original video's pixels)."""
        writer: Optional[VideoWriter] = None  # opened at the first decoded frame: no empty file for a bad video
        shown: Optional[ImagePrediction] = None  # the latest result, drawn on frames in between
        shown_ids: List[int] = []
        scale = self.info.scale
        try:
            for index, time_s, rgb in read_frames(self.info, self.warnings):
                if self.max_frames and self.frames_read >= self.max_frames:
                    self.warnings.append(f"stopped after {self.max_frames:,} frames, the most this server "
                                         "analyses per clip")
                    break
                self.frames_read += 1
                if index % self.every == 0:
                    self.frames_analysed += 1
                    shown, shown_ids, rows = self._analyse(index, time_s, rgb, scale)
                    yield from rows
                if annotate_to and writer is None:
                    writer = VideoWriter(annotate_to, self.info.analysed_width, self.info.analysed_height,
                                         self.info.fps)
                if writer is not None:
                    writer.write(annotate(rgb, shown, numbers=shown_ids) if shown and shown.faces else rgb,
                                 time_s)
                if on_frame is not None:
                    on_frame(self.frames_read, self.info.frames)
        finally:
            if writer is not None:
                writer.close()

    def _analyse(self, index: int, time_s: float, rgb: np.ndarray, scale: float):
        try:
            prediction = predict_image(self.classifier, rgb, self.detector, margin=self.margin, align=self.align)
        except NoFaceFound:
            prediction = ImagePrediction([], rgb.shape[1], rgb.shape[0], self.detector.name)
        raw = np.array([[f.probabilities[c] for c in self.class_names] for f in prediction.faces])
        tracked = self.tracker.update(index, time_s, [f.box for f in prediction.faces], raw)
        rows = []
        for face, raw_p, (track_id, probs) in zip(prediction.faces, raw, tracked):
            top = int(probs.argmax())
            # What is drawn follows the tracker (smoothed when asked), as the rows do.
            face.probabilities = {c: float(p) for c, p in zip(self.class_names, probs)}
            face.label, face.confidence = self.class_names[top], float(probs[top])
            x, y, w, h = (int(round(v / scale)) for v in face.box)
            row = {"frame": index, "time_s": round(time_s, 4), "track": track_id, "x": x, "y": y, "w": w, "h": h,
                   "label": face.label, "confidence": round(face.confidence, 6),
                   **{f"p_{c}": round(float(p), 6) for c, p in zip(self.class_names, probs)}}
            if self.tracker.smoothing > 0:
                row.update({f"raw_{c}": round(float(p), 6) for c, p in zip(self.class_names, raw_p)})
            rows.append(row)
        return prediction, [track_id for track_id, _ in tracked], rows


@dataclass
class VideoResult:
    """A whole analysis in memory (for a page: the rows of one clip, not a stream)."""

    info: VideoInfo
    rows: pd.DataFrame
    tracks: pd.DataFrame
    frames_read: int
    frames_analysed: int
    warnings: List[str] = field(default_factory=list)

    def timeline(self) -> pd.DataFrame:
        """Long form for charts: time_s, track, emotion, probability."""
        probs = [c for c in self.rows.columns if c.startswith("p_")]
        long = self.rows.melt(id_vars=["time_s", "track"], value_vars=probs, var_name="emotion",
                              value_name="probability")
        long["emotion"] = long["emotion"].str[2:]
        return long


def analyse_video(path: str | Path, classifier: Classifier, detector, every: int = 1, smoothing: float = 0.0,
                  annotate_to: str | Path | None = None,
                  on_frame: Optional[Callable[[int, int], None]] = None,
                  max_frames: Optional[int] = None) -> VideoResult:
    """Analyse a whole video (at most `max_frames`) and keep its rows (`VideoAnalysis.rows` streams a long one)."""
    analysis = VideoAnalysis(path, classifier, detector, every=every, smoothing=smoothing, max_frames=max_frames)
    rows = pd.DataFrame(list(analysis.rows(annotate_to=annotate_to, on_frame=on_frame)), columns=analysis.columns())
    return VideoResult(analysis.info, rows, analysis.tracker.summary(), analysis.frames_read,
                       analysis.frames_analysed, analysis.warnings)
