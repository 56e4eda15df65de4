"""`fer predict`: emotions for every face in photos, from the shipped model, a run or an ensemble."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from fer.cli.catalog import catalog
from fer.cli.models import add_detector_arguments, add_model_arguments, build_classifier, detector_settings
from fer.core.quiet import native_stderr_silenced

if TYPE_CHECKING:  # OpenCV, PyTorch and MediaPipe load when a photo is predicted, never for --help
    import numpy as np


def _output_path(out: Path, image: Path, suffix: str, many: bool) -> Path:
    if many or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{image.stem}_{suffix}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _check_writable(out: Optional[Path], many: bool) -> None:
    """OSError now, before any model loads, when an output cannot be written there."""
    if out is None:
        return
    folder = out if many or out.is_dir() else out.parent
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OSError(f"cannot write into {folder}: {existing} is not a writable folder")


def _write_image(path: Path, rgb: np.ndarray) -> None:
    """Write an image; OSError when OpenCV could not (it only returns False)."""
    import cv2

    try:
        written = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    except cv2.error:  # an extension OpenCV has no writer for
        written = False
    if not written:
        raise OSError(f"cannot write {path} (no such folder, no permission, or an unknown extension)")


def _cam_grid(predictor, result, method: str) -> np.ndarray:
    import cv2
    import numpy as np

    from fer.inference.explain import explain_faces, overlay

    if not predictor.explainable:
        raise ValueError(f"{predictor.name} is not an image model, so it has no Grad-CAM")
    faces = np.stack([f.face for f in result.faces])
    heatmaps, _ = explain_faces(predictor, faces, method)
    tiles = [overlay(face, heat) for face, heat in zip(faces, heatmaps)]
    for tile, face in zip(tiles, result.faces):
        cv2.putText(tile, face.label, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.hstack(tiles)


def cmd_predict(args: argparse.Namespace) -> int:
    """Run the predictor over every image; one bad image never stops the others."""
    many = len(args.images) > 1
    _check_writable(args.annotate, many)  # before any model loads
    _check_writable(args.cam, many)
    with native_stderr_silenced(restore=False):  # MediaPipe's LiteRT log lines; the command ends after this
        return _predict_all(args)


def _predict_all(args: argparse.Namespace) -> int:
    from fer.inference.annotate import annotate
    from fer.inference.faces import create_detector
    from fer.inference.images import ImageError, load_image
    from fer.inference.pipeline import NoFaceFound, predict_image

    many = len(args.images) > 1
    # Grad-CAM needs the PyTorch model; otherwise the fastest backend serves.
    predictor = build_classifier(args.run, args.checkpoint, args.runs_dir, args.tta,
                                 "torch" if args.cam else args.backend)
    settings = detector_settings(args)
    results, failures = [], 0
    with create_detector(args.detector, settings, download=not args.offline) as detector:
        if detector.note:
            print(f"note: {detector.note}", file=sys.stderr)
        for image_path in map(Path, args.images):
            try:
                rgb = load_image(image_path)
                result = predict_image(predictor, rgb, detector, margin=args.margin, align=args.align,
                                       whole_image=args.whole_image)
            except (ImageError, NoFaceFound) as e:
                failures += 1
                message = str(e) if isinstance(e, ImageError) else f"{image_path}: {e}; pass --whole-image for that"
                print(f"error: {message}", file=sys.stderr)
                results.append({"image": str(image_path), "error": message})
                continue
            record = {"image": str(image_path), "model": predictor.name, **result.to_dict()}
            results.append(record)
            if args.annotate:
                path = _output_path(args.annotate, image_path, "annotated", many)
                _write_image(path, annotate(rgb, result))
                record["annotated"] = str(path)
            if args.cam:
                path = _output_path(args.cam, image_path, "cam", many)
                _write_image(path, _cam_grid(predictor, result, args.cam_method))
                record["cam"] = str(path)
            if not args.json:
                print(f"{image_path}: {len(result.faces)} face(s), detector {result.detector}"
                      + (f" ({result.note})" if result.note and result.note != detector.note else ""))
                for i, face in enumerate(result.faces, 1):
                    others = sorted(face.probabilities.items(), key=lambda kv: kv[1], reverse=True)[1:3]
                    print(f"  #{i} box {list(face.box)}: {face.label} {face.confidence:.1%} ("
                          + ", ".join(f"{c} {p:.1%}" for c, p in others) + ")")
    if args.json:
        print(json.dumps(results, indent=2))
    return 1 if failures else 0


def add_parsers(sub) -> None:
    """Register `fer predict`."""
    p = sub.add_parser("predict", help="emotion of every face in images (default: the shipped model)")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, WebP, BMP, TIFF, ...)")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print JSON (boxes, labels, all probabilities)")
    p.add_argument("--annotate", type=Path, metavar="OUT", help="write the image with boxes and labels (a folder for several)")
    p.add_argument("--cam", type=Path, metavar="OUT", help="write Grad-CAM overlays of the faces (a folder for several)")
    p.add_argument("--cam-method", choices=catalog()["cam_methods"], default=catalog()["default_cam_method"],
                   help="eigencam is class-agnostic; the others explain the predicted class")
    add_detector_arguments(p)
    p.add_argument("--whole-image", action="store_true", help="when no face is found, classify the whole image")
    p.set_defaults(func=cmd_predict)
