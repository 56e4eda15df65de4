"""What `fer predict` and `fer video` share: the model choice (run, ensemble, backend) and the detector."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, List

from fer.cli.catalog import catalog

if TYPE_CHECKING:
    from fer.inference.faces import DetectorSettings


def build_classifier(runs: List[str], checkpoint: str | None, runs_dir: Path | None, tta: str,
                     backend: str = "torch"):
    """The shipped default model, one run (or checkpoint file), or an ensemble of several runs, on `backend`."""
    from fer.inference.classifiers import checkpoint_predictor, load_ensemble

    if checkpoint:
        return checkpoint_predictor(Path(checkpoint), backend, tta=tta)
    return load_ensemble(runs or ["default"], runs_dir, tta, backend=backend)


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The model choice shared by `fer predict` and `fer video`."""
    p.add_argument("--run", action="append", default=[], metavar="RUN",
                   help="a run to use instead of the shipped model; repeat for an ensemble")
    p.add_argument("--checkpoint", help="a checkpoint file (.pt) instead of a run")
    p.add_argument("--runs-dir", type=Path)
    p.add_argument("--backend", choices=catalog()["backends"], default="auto",
                   help="auto: the fastest available (ONNX Runtime, int8 when the run has an int8 export, "
                        "when the onnx extra is installed; else PyTorch)")
    p.add_argument("--tta", choices=catalog()["tta_modes"], default=catalog()["default_tta"],
                   help="test-time augmentation: flip (default) averages each face with its mirror image, "
                        "tencrop over ten 44x44 crops; none is the fastest")


def _margin(text: str) -> float:
    """--margin: a fraction of the face box, 0 to 1 (more would crop mostly background, or overflow)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{value:g} is outside 0 to 1")
    return value


def add_detector_arguments(p: argparse.ArgumentParser) -> None:
    """The face-detection settings shared by `fer predict` and `fer video`."""
    p.add_argument("--detector", choices=["auto", *catalog()["detectors"]], default="auto",
                   help="auto: MediaPipe, or OpenCV Haar when MediaPipe's model is unavailable; none: no detection")
    p.add_argument("--min-confidence", type=float, default=0.5)
    p.add_argument("--min-face-size", type=int, default=20, help="pixels (shorter side of the face box)")
    p.add_argument("--max-faces", type=int, default=50)
    p.add_argument("--tiles", default="1,2,3", help="also search n×n overlapping tiles for each n (small faces)")
    p.add_argument("--margin", type=_margin, default=0.15, help="crop margin per side, as a fraction of the face box (0 to 1)")
    p.add_argument("--align", action="store_true", help="level the eye line before cropping")
    p.add_argument("--offline", action="store_true", help="never download model files")


def detector_settings(args: argparse.Namespace) -> DetectorSettings:
    """The detector settings from parsed arguments."""
    from fer.inference.faces import DetectorSettings

    return DetectorSettings(min_confidence=args.min_confidence, min_face_size=args.min_face_size,
                            max_faces=args.max_faces, tiles=tuple(int(t) for t in args.tiles.split(",")))
