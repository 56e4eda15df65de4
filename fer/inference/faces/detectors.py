"""Face detectors behind one interface, in a registry: MediaPipe BlazeFace, OpenCV Haar, whole image.

`create_detector("auto")` uses MediaPipe when its model file is available (cached or downloadable)
and otherwise falls back to OpenCV's bundled Haar cascade, recording why in `detector.note` so the
UI and CLI can tell the user. Detectors take RGB uint8 images and return faces largest first.
One detector may serve several threads (dashboard sessions, the webcam's video thread): `detect`
holds the detector's own lock, because MediaPipe's task objects are not re-entrant.

No phantom faces: BlazeFace on small tiles calls cups, cats and helmets faces at 0.5-0.6 confidence,
while real faces score 0.7-0.98. So every face found in a tile, and every whole-frame face below
`VERIFY_BELOW`, must also be found by MediaPipe's FaceLandmarker on a crop around it; when that model
is unavailable, tile finds need `TILE_MIN_CONFIDENCE` instead (and `note` says so).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np

from fer.core.registry import Registry
from fer.inference.faces.model_files import ModelFileUnavailable, closed_at_exit, ensure_model_file


@dataclass
class Face:
    box: Tuple[int, int, int, int]  # x, y, width, height in image pixels
    score: float = 1.0
    # (right eye, left eye) as seen in the image, in pixels, when the detector gives them.
    eyes: Optional[Tuple[Tuple[float, float], Tuple[float, float]]] = None
    tiles: int = 1  # found in the n×n tile pass (1 = the whole frame)

    @property
    def area(self) -> int:
        return self.box[2] * self.box[3]


@dataclass
class DetectorSettings:
    min_confidence: float = 0.5
    min_face_size: int = 20  # pixels, the shorter box side
    max_faces: int = 50
    # Also search overlapping n×n tiles for each n here (1 = the whole image only). BlazeFace short-range
    # sees the image at 128×128, so small faces in a group photo need tiles; a webcam needs only 1.
    tiles: Tuple[int, ...] = (1,)
    verify: bool = True  # check tile finds and unsure faces with the FaceLandmarker (see the module doc)


# Photos and video files (the CLI and the pages alike): the whole frame plus 2×2 and 3×3 tiles, ~14 detector
# calls. Measured on clips of real faces over real backgrounds (benchmarks/detector_settings.py): the whole
# frame alone finds no face under ~90 px in a 640×480 frame (22% recall over the clips) against 77% with
# tiles, at 225 vs 24 detections/s. The webcam, which must keep up live, searches the whole frame only.
PHOTO_TILES = (1, 2, 3)
# A tile find that fills much of its tile (its shorter side over TILE_LARGE of the tile's) is a face a
# coarser pass could see; found only in a tile and unsure, it was a phantom in the measurements (a cat's
# head, a cup's rim: 0.50-0.64), while small real faces found in tiles score from 0.58 up.
TILE_LARGE, TILE_LARGE_MIN_SCORE = 0.5, 0.65
VERIFY_BELOW = 0.8  # whole-frame faces at least this confident are not checked again
TILE_MIN_CONFIDENCE = 0.75  # what a tile find needs when the FaceLandmarker cannot check it


def _overlap(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> float:
    """Intersection over the smaller box: 1 when one box lies inside the other."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / max(1, min(a[2] * a[3], b[2] * b[3]))


def merge_faces(faces: List["Face"], threshold: float = 0.5) -> List["Face"]:
    """Suppress duplicates (from overlapping tiles), keeping the most confident face."""
    kept: List[Face] = []
    for face in sorted(faces, key=lambda f: f.score, reverse=True):
        if all(_overlap(face.box, k.box) < threshold for k in kept):
            kept.append(face)
    return kept


MIN_IMAGE_SIDE = 8  # pixels: smaller images (and tiles) hold no detectable face


def _large_unsure_tile_find(face: "Face", shape: Tuple[int, ...]) -> bool:
    if face.tiles <= 1:
        return False
    tile_side = 1.5 * min(shape[0], shape[1]) / face.tiles
    return min(face.box[2], face.box[3]) > TILE_LARGE * tile_side and face.score < TILE_LARGE_MIN_SCORE


class FaceDetector:
    """Base class: `detect(rgb)` → faces largest first, filtered by the settings."""

    name = "base"

    def __init__(self, settings: Optional[DetectorSettings] = None) -> None:
        self.settings = settings or DetectorSettings()
        self.note = ""  # a message for the user (e.g. why a fallback is in use)
        self._lock = threading.Lock()

    def _detect(self, rgb: np.ndarray) -> List[Face]:
        raise NotImplementedError

    def _detect_tiled(self, rgb: np.ndarray) -> List[Face]:
        height, width = rgb.shape[:2]
        faces: List[Face] = []
        if min(height, width) < MIN_IMAGE_SIDE:  # no face fits, and MediaPipe rejects such inputs
            return faces
        for n in self.settings.tiles:
            if n > 1 and min(height, width) * 1.5 / n < MIN_IMAGE_SIDE:
                continue
            if n <= 1:
                faces += self._detect(rgb)
                continue
            # n×n tiles, each 1.5× the grid step so a face on a border is whole in some tile.
            th, tw = int(1.5 * height / n), int(1.5 * width / n)
            for ty in np.linspace(0, height - th, n).astype(int):
                for tx in np.linspace(0, width - tw, n).astype(int):
                    for f in self._detect(np.ascontiguousarray(rgb[ty:ty + th, tx:tx + tw])):
                        x, y, w, h = f.box
                        eyes = tuple((ex + tx, ey + ty) for ex, ey in f.eyes) if f.eyes else None
                        faces.append(Face((int(x + tx), int(y + ty), w, h), f.score, eyes, tiles=n))
        return merge_faces(faces) if len(self.settings.tiles) > 1 or max(self.settings.tiles) > 1 else faces

    def detect(self, rgb: np.ndarray) -> List[Face]:
        """Faces in an RGB uint8 image (H×W×3), largest first (thread-safe)."""
        s = self.settings
        rgb = np.ascontiguousarray(rgb)
        with self._lock:
            found = self._detect_tiled(rgb)
            faces = [f for f in found if f.score >= s.min_confidence and min(f.box[2], f.box[3]) >= s.min_face_size
                     and not _large_unsure_tile_find(f, rgb.shape)]
            if s.verify:
                faces = self._verified(rgb, faces)
        return sorted(faces, key=lambda f: f.area, reverse=True)[: s.max_faces]

    def _verified(self, rgb: np.ndarray, faces: List[Face]) -> List[Face]:
        """The faces a second look confirms (detectors without one keep them all)."""
        return faces

    def close(self) -> None:
        """Release native resources."""

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


FACE_DETECTORS: Registry[Callable[[DetectorSettings], FaceDetector]] = Registry("face detector")


def _clip_box(x: float, y: float, w: float, h: float, width: int, height: int) -> Tuple[int, int, int, int]:
    x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
    x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


@FACE_DETECTORS.register("mediapipe", title="MediaPipe BlazeFace (short range)")
class MediaPipeDetector(FaceDetector):
    """BlazeFace through the MediaPipe Tasks API; model file from the verified cache."""

    name = "mediapipe"

    def __init__(self, settings: Optional[DetectorSettings] = None, download: bool = True) -> None:
        super().__init__(settings)
        from mediapipe.tasks.python import BaseOptions, vision

        path = ensure_model_file("blaze_face_short_range.tflite", download=download)
        # The task's own threshold is set low; ours is applied in `detect`, so settings can change live.
        options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(path)),
                                             min_detection_confidence=0.2)
        self._detector = vision.FaceDetector.create_from_options(options)
        self._download = download
        self._verifier = None  # the FaceLandmarker, created the first time a face needs checking
        self._verifier_missing = ""
        closed_at_exit(self)  # a cached detector is closed before the interpreter's teardown

    def _detect(self, rgb: np.ndarray) -> List[Face]:
        import mediapipe as mp

        height, width = rgb.shape[:2]
        result = self._detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=rgb))
        faces = []
        for det in result.detections:
            b = det.bounding_box
            score = det.categories[0].score if det.categories else 1.0
            eyes = None
            if len(det.keypoints) >= 2:  # keypoint 0 is the subject's right eye, 1 the left
                eyes = tuple((k.x * width, k.y * height) for k in det.keypoints[:2])
            faces.append(Face(_clip_box(b.origin_x, b.origin_y, b.width, b.height, width, height), score, eyes))
        return faces

    def _landmarker(self):
        if self._verifier is None and not self._verifier_missing:
            from mediapipe.tasks.python import BaseOptions, vision

            try:
                path = ensure_model_file("face_landmarker.task", download=self._download)
            except ModelFileUnavailable as e:
                self._verifier_missing = str(e)
                self.note = (self.note + " " if self.note else "") + \
                    f"Face verification is off ({e}); faces found in tiles need confidence {TILE_MIN_CONFIDENCE}."
                return None
            self._verifier = vision.FaceLandmarker.create_from_options(vision.FaceLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=str(path)), num_faces=1,
                min_face_detection_confidence=0.5, min_face_presence_confidence=0.5))
        return self._verifier

    def _confirmed(self, landmarker, rgb: np.ndarray, face: Face) -> bool:
        import mediapipe as mp

        x, y, w, h = face.box
        half = max(w, h) * 0.8  # the face with context around it, as the landmarker expects
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(max(0, cx - half)), int(max(0, cy - half))
        x1, y1 = int(min(rgb.shape[1], cx + half)), int(min(rgb.shape[0], cy + half))
        crop = np.ascontiguousarray(cv2.resize(rgb[y0:y1, x0:x1], (256, 256), interpolation=cv2.INTER_LINEAR))
        return bool(landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=crop)).face_landmarks)

    def _verified(self, rgb: np.ndarray, faces: List[Face]) -> List[Face]:
        def unsure(face: Face) -> bool:
            return face.tiles > 1 or face.score < VERIFY_BELOW

        if not any(unsure(f) for f in faces):
            return faces
        landmarker = self._landmarker()
        if landmarker is None:
            return [f for f in faces if f.tiles == 1 or f.score >= TILE_MIN_CONFIDENCE]
        return [f for f in faces if not unsure(f) or self._confirmed(landmarker, rgb, f)]

    def close(self) -> None:
        with self._lock:  # never while another thread is inside detect()
            if getattr(self, "_detector", None) is not None:
                self._detector.close()
                self._detector = None
            if getattr(self, "_verifier", None) is not None:
                self._verifier.close()
                self._verifier = None


@FACE_DETECTORS.register("haar", title="OpenCV Haar cascade (offline fallback)")
class HaarDetector(FaceDetector):
    """OpenCV's bundled frontal-face Haar cascade: no download, slower and less accurate."""

    name = "haar"

    def __init__(self, settings: Optional[DetectorSettings] = None) -> None:
        super().__init__(settings)
        self._cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
        if self._cascade.empty():
            raise RuntimeError("OpenCV's Haar cascade file could not be loaded")

    def _detect(self, rgb: np.ndarray) -> List[Face]:
        gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
        size = max(10, self.settings.min_face_size)
        boxes = self._cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(size, size))
        return [Face(tuple(int(v) for v in b)) for b in boxes]


@FACE_DETECTORS.register("none", title="No detection: the whole image is one face")
class WholeImageDetector(FaceDetector):
    """Treat the whole image as one face (pre-cropped faces such as FER2013)."""

    name = "none"

    def detect(self, rgb: np.ndarray) -> List[Face]:
        return [Face((0, 0, rgb.shape[1], rgb.shape[0]))]


def create_detector(name: str = "auto", settings: Optional[DetectorSettings] = None,
                    download: bool = True) -> FaceDetector:
    """The detector `name`; "auto" is MediaPipe, or Haar (with `note` saying why) when MediaPipe is unavailable."""
    if name != "auto":
        cls = FACE_DETECTORS.get(name)
        return cls(settings, download=download) if cls is MediaPipeDetector else cls(settings)
    try:
        return MediaPipeDetector(settings, download=download)
    except (ModelFileUnavailable, ImportError, RuntimeError) as e:
        detector = HaarDetector(settings)
        detector.note = f"MediaPipe face detection is unavailable ({e}); using OpenCV's Haar cascade instead."
        return detector
