"""`fer predict`: emotions for every face in photos, from the shipped model, a run or an ensemble."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List

import cv2
import numpy as np

from fer.annotate import annotate
from fer.classifiers import load_ensemble
from fer.explain import CAM_METHODS, DEFAULT_CAM_METHOD, explain_faces, overlay
from fer.faces import FACE_DETECTORS, DetectorSettings, create_detector
from fer.images import ImageError, load_image
from fer.pipeline import NoFaceFound, predict_image
from fer.predictor import TTA_MODES, Predictor
from fer.quiet import native_stderr_silenced
from fer.runs import SHIPPED_RUN_DIR, resolve_run


def build_classifier(runs: List[str], checkpoint: str | None, runs_dir: Path | None, tta: str):
    """The shipped default model, one run (or checkpoint file), or an ensemble of several runs."""
    if checkpoint:
        return Predictor.from_checkpoint(checkpoint, tta=tta)
    return load_ensemble(runs or ["default"], runs_dir, tta)


def _output_path(out: Path, image: Path, suffix: str, many: bool) -> Path:
    if many or out.is_dir():
        out.mkdir(parents=True, exist_ok=True)
        return out / f"{image.stem}_{suffix}.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _cam_grid(predictor, result, method: str) -> np.ndarray:
    if getattr(predictor, "model", None) is None:
        raise ValueError(f"{predictor.name} is not an image model, so it has no Grad-CAM")
    faces = np.stack([f.face for f in result.faces])
    heatmaps, _ = explain_faces(predictor, faces, method)
    tiles = [overlay(face, heat) for face, heat in zip(faces, heatmaps)]
    for tile, face in zip(tiles, result.faces):
        cv2.putText(tile, face.label, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return np.hstack(tiles)


def cmd_predict(args: argparse.Namespace) -> int:
    """Run the predictor over every image; one bad image never stops the others."""
    with native_stderr_silenced(restore=False):  # MediaPipe's LiteRT log lines; the command ends after this
        return _predict_all(args)


def _predict_all(args: argparse.Namespace) -> int:
    predictor = build_classifier(args.run, args.checkpoint, args.runs_dir, args.tta)
    settings = DetectorSettings(min_confidence=args.min_confidence, min_face_size=args.min_face_size,
                                max_faces=args.max_faces, tiles=tuple(int(t) for t in args.tiles.split(",")))
    many = len(args.images) > 1
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
                cv2.imwrite(str(path), cv2.cvtColor(annotate(rgb, result), cv2.COLOR_RGB2BGR))
                record["annotated"] = str(path)
            if args.cam:
                path = _output_path(args.cam, image_path, "cam", many)
                cv2.imwrite(str(path), cv2.cvtColor(_cam_grid(predictor, result, args.cam_method), cv2.COLOR_RGB2BGR))
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


def _cmd_export(args: argparse.Namespace) -> int:
    from fer.onnx_backend import OPSET, export_onnx  # the onnx extra, only when asked for

    run_dir = SHIPPED_RUN_DIR if args.run == "default" else resolve_run(args.run, args.runs_dir)
    out = export_onnx(run_dir / f"{args.checkpoint}.pt", args.onnx, args.opset or OPSET)
    print(f"{out}: {run_dir.name} ({args.checkpoint}.pt) as ONNX opset {args.opset or OPSET}, dynamic batch; "
          f"{out.stat().st_size / 1e6:.1f} MB")
    return 0


def add_predict_parser(sub) -> None:
    """Register `fer predict` and `fer export` on the CLI's subparsers."""
    p = sub.add_parser("export", help="export a run's model as ONNX (class names, preprocessing and temperature "
                                      "in its metadata; pip install 'fer-studio[onnx]')")
    p.add_argument("run", help="run id (or unique part of one), run folder, or default (the shipped model)")
    p.add_argument("--onnx", type=Path, required=True, metavar="OUT.onnx")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser("predict", help="emotion of every face in images (default: the shipped model)")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, WebP, BMP, TIFF, ...)")
    p.add_argument("--run", action="append", default=[], metavar="RUN",
                   help="a run to use instead of the shipped model; repeat for an ensemble")
    p.add_argument("--checkpoint", help="a checkpoint file (.pt) instead of a run")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--json", action="store_true", help="print JSON (boxes, labels, all probabilities)")
    p.add_argument("--annotate", type=Path, metavar="OUT", help="write the image with boxes and labels (a folder for several)")
    p.add_argument("--cam", type=Path, metavar="OUT", help="write Grad-CAM overlays of the faces (a folder for several)")
    p.add_argument("--cam-method", choices=CAM_METHODS.names(), default=DEFAULT_CAM_METHOD,
                   help="eigencam is class-agnostic; the others explain the predicted class")
    p.add_argument("--detector", choices=["auto", *FACE_DETECTORS.names()], default="auto",
                   help="auto: MediaPipe, or OpenCV Haar when MediaPipe's model is unavailable; none: no detection")
    p.add_argument("--whole-image", action="store_true", help="when no face is found, classify the whole image")
    p.add_argument("--min-confidence", type=float, default=0.5)
    p.add_argument("--min-face-size", type=int, default=20, help="pixels (shorter side of the face box)")
    p.add_argument("--max-faces", type=int, default=50)
    p.add_argument("--tiles", default="1,2,3", help="also search n×n overlapping tiles for each n (small faces)")
    p.add_argument("--margin", type=float, default=0.15, help="crop margin per side, as a fraction of the face box")
    p.add_argument("--align", action="store_true", help="level the eye line before cropping")
    p.add_argument("--tta", choices=TTA_MODES, default="none", help="test-time augmentation")
    p.add_argument("--offline", action="store_true", help="never download model files")
    p.set_defaults(func=cmd_predict)
