"""Which face-detector setting finds real faces in video frames, without phantoms, at what speed.

No real video ships here, so the clips are built from real photos: scikit-image's astronaut (her head
and shoulders) and FER2013 test faces, composited at several sizes over real backgrounds (scikit-image's
coffee, cat and rocket photos), drifting across a 640×480 frame; one person, and three people at once.
Each setting (the whole frame only, or also 2×2 / 3×3 tiles) runs over every frame of every clip:

- recall: the share of true faces found (a detection overlapping the pasted face's box, IoU ≥ 0.3);
- phantoms per 100 frames: detections matching no true face;
- frames/s: detection alone, on this machine's CPU (MediaPipe, one process).

    python benchmarks/detector_settings.py --data $FER_DATA [--frames 60]
"""
import argparse
import os
import platform
import time
from datetime import date

import cv2
import numpy as np
from skimage import data as skdata

from fer.data import load_fer2013
from fer.inference.faces import DetectorSettings, create_detector

W, H = 640, 480
ASTRONAUT_FACE = (177, 75, 101, 101)  # x, y, w, h of her face in skimage's 512×512 astronaut (MediaPipe's box)
SETTINGS = {"whole frame": (1,), "whole + 2×2 tiles": (1, 2), "whole + 2×2 + 3×3 tiles": (1, 2, 3)}


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def astronaut_sprite(face_px: int):
    """Her head and shoulders scaled so the face is `face_px` wide; the face's box inside the sprite."""
    x, y, w, h = ASTRONAUT_FACE
    x0, y0, x1, y1 = max(0, x - w), max(0, y - h // 2), min(512, x + 2 * w), min(512, y + 2 * h)
    crop = skdata.astronaut()[y0:y1, x0:x1]
    scale = face_px / w
    sprite = cv2.resize(crop, (int(crop.shape[1] * scale), int(crop.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return sprite, (int((x - x0) * scale), int((y - y0) * scale), face_px, int(h * scale))


def fer_sprite(face: np.ndarray, face_px: int):
    """A FER2013 face (48×48 gray, the face fills most of it) upscaled to `face_px`; its face box."""
    big = cv2.resize(face, (face_px, face_px), interpolation=cv2.INTER_CUBIC)
    margin = face_px // 10
    return np.repeat(big[..., None], 3, axis=2), (margin, margin, face_px - 2 * margin, face_px - 2 * margin)


def backgrounds():
    """Real photos without faces, as 640×480 frames."""
    return {name: cv2.resize(image if image.ndim == 3 else np.repeat(image[..., None], 3, 2), (W, H))
            for name, image in (("coffee", skdata.coffee()), ("cat", skdata.chelsea()), ("rocket", skdata.rocket()))}


def clip(background: np.ndarray, sprites, frames: int, seed: int):
    """Frames with each sprite drifting along its own line; the true face boxes per frame."""
    rng = np.random.default_rng(seed)
    paths = []
    for sprite, _ in sprites:
        sh, sw = sprite.shape[:2]
        start = rng.uniform([0, 0], [max(1, W - sw), max(1, H - sh)])
        end = rng.uniform([0, 0], [max(1, W - sw), max(1, H - sh)])
        paths.append((start, end))
    for i in range(frames):
        frame, truth = background.copy(), []
        t = i / max(1, frames - 1)
        for (sprite, (fx, fy, fw, fh)), (start, end) in zip(sprites, paths):
            x, y = (start + (end - start) * t).astype(int)
            sh, sw = sprite.shape[:2]
            frame[y:y + sh, x:x + sw] = sprite[:H - y, :W - x]
            truth.append((x + fx, y + fy, fw, fh))
        yield np.ascontiguousarray(frame), truth


def scenes(fer_faces: np.ndarray):
    """(name, sprites) of every scene: one person at four sizes, and three people at once."""
    out = [(f"astronaut, face {px} px", [astronaut_sprite(px)]) for px in (40, 60, 90, 140)]
    out += [(f"FER2013 face, {px} px", [fer_sprite(fer_faces[i], px)]) for i, px in enumerate((64, 96, 160))]
    out.append(("three people (60, 96, 120 px)", [astronaut_sprite(60), fer_sprite(fer_faces[3], 96),
                                                  fer_sprite(fer_faces[4], 120)]))
    return out


def score(detector, frames) -> dict:
    found = total = phantoms = n = 0
    seconds = 0.0
    for frame, truth in frames:
        start = time.perf_counter()
        faces = detector.detect(frame)
        seconds += time.perf_counter() - start
        n += 1
        total += len(truth)
        matched = set()
        for face in faces:
            hits = [j for j, box in enumerate(truth) if _iou(face.box, box) >= 0.3]
            if hits:
                matched.update(hits)
            else:
                phantoms += 1
        found += len(matched)
    return {"found": found, "total": total, "phantoms": phantoms, "frames": n, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FER_DATA", "data"))
    parser.add_argument("--frames", type=int, default=60)
    args = parser.parse_args()
    data = load_fer2013(args.data)
    fer_faces = data.images[data.splits == 1][:8]  # PublicTest faces
    totals = {name: {"found": 0, "total": 0, "phantoms": 0, "frames": 0, "seconds": 0.0} for name in SETTINGS}
    rows = []
    for s, (scene, sprites) in enumerate(scenes(fer_faces)):
        for b, (bg_name, bg) in enumerate(backgrounds().items()):
            for name, tiles in SETTINGS.items():
                with create_detector("mediapipe", DetectorSettings(tiles=tiles)) as detector:
                    result = score(detector, clip(bg, sprites, args.frames, seed=10 * s + b))
                for key in totals[name]:
                    totals[name][key] += result[key]
                rows.append((scene, bg_name, name, result))
    print(f"{platform.machine()}, {os.cpu_count()} cores, {date.today()}, {args.frames} frames per clip")
    print("\n| scene | setting | recall | phantoms per 100 frames |\n|---|---|---|---|")
    by_scene: dict = {}
    for scene, _, name, r in rows:
        agg = by_scene.setdefault((scene, name), {"found": 0, "total": 0, "phantoms": 0, "frames": 0})
        for key in agg:
            agg[key] += r[key]
    for (scene, name), r in by_scene.items():
        print(f"| {scene} | {name} | {r['found'] / r['total']:.1%} | {100 * r['phantoms'] / r['frames']:.1f} |")
    print("\n| setting | recall | phantoms per 100 frames | frames/s |\n|---|---|---|---|")
    for name, r in totals.items():
        print(f"| {name} | {r['found'] / r['total']:.1%} | {100 * r['phantoms'] / r['frames']:.1f} | "
              f"{r['frames'] / r['seconds']:.1f} |")


if __name__ == "__main__":
    main()
