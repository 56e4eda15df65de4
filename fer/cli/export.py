"""`fer export` (a run's model as ONNX, fp32 or int8) and `fer release` (a run as the shipped model)."""
from __future__ import annotations

import argparse
from pathlib import Path


def _cmd_export(args: argparse.Namespace) -> int:
    from fer.runs.store import SHIPPED_RUN_DIR, resolve_run

    run_dir = SHIPPED_RUN_DIR if args.run == "default" else resolve_run(args.run, args.runs_dir)
    if not (run_dir / f"{args.checkpoint}.pt").is_file():  # checked before PyTorch and ONNX load (many seconds)
        raise ValueError(f"{run_dir.name} has no {args.checkpoint}.pt yet: it is written when the run finishes "
                         "its first epoch")
    from fer.inference.export import OPSET, calibration_faces, export_into_run, export_onnx  # the onnx extra

    if args.onnx is None:
        out = export_into_run(run_dir, args.checkpoint, args.int8, args.data)
    else:
        faces = calibration_faces(run_dir, args.data) if args.int8 else None
        out = export_onnx(run_dir / f"{args.checkpoint}.pt", args.onnx, args.opset or OPSET, int8_faces=faces)
    print(f"{out}: {run_dir.name} ({args.checkpoint}.pt) as ONNX opset {args.opset or OPSET}, dynamic batch, "
          f"{'int8 (calibrated on validation faces)' if args.int8 else 'fp32'}; {out.stat().st_size / 1e6:.1f} MB")
    return 0


def _cmd_release(args: argparse.Namespace) -> int:
    from fer.runs.release import release_run
    from fer.runs.store import SHIPPED_RUN_DIR, resolve_run

    run_dir = resolve_run(args.run, args.runs_dir)
    if args.int8_weights:
        from fer.training.compact import release_compact  # scores the int8 weights: PyTorch and the data

        dest = release_compact(run_dir, args.dest or SHIPPED_RUN_DIR, args.data)
    else:
        dest = release_run(run_dir, args.dest or SHIPPED_RUN_DIR)
    size = sum(f.stat().st_size for f in dest.iterdir() if f.is_file())
    print(f"{dest}: {run_dir.name} released with its card ({len(list(dest.iterdir()))} files, {size / 1e6:.1f} MB)")
    return 0


def add_parsers(sub) -> None:
    """Register `fer export` and `fer release`."""
    p = sub.add_parser("export", help="export a run's model as ONNX (class names, preprocessing and temperature "
                                      "in its metadata; pip install 'fer-studio[onnx]')")
    p.add_argument("run", help="run id (or unique part of one), run folder, or default (the shipped model)")
    p.add_argument("--onnx", type=Path, metavar="OUT.onnx",
                   help="where to write it (default: model.onnx or model.int8.onnx in the run's folder, "
                        "which the fastest-backend choice picks up)")
    p.add_argument("--int8", action="store_true",
                   help="quantise to int8 (static, calibrated on 512 validation faces; about 3x faster on a CPU)")
    p.add_argument("--data", help="FER2013 to take the int8 calibration faces from (default: the run's data)")
    p.add_argument("--opset", type=int, help="ONNX opset (default 18)")
    p.add_argument("--checkpoint", choices=["best", "last"], default="best")
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_export)


    p = sub.add_parser("release", help="package a completed run as the model that ships in the package, with its card",
                       description="Copies the run's best.pt (and its int8 export, when it matches), config, metrics, "
                                   "evaluations and log into the package's shipped-model folder, and writes CARD.md. "
                                   "Refuses runs that have not completed or that exceed 20 MB.")
    p.add_argument("run", help="run id (or unique part of one) or run folder")
    p.add_argument("--dest", type=Path, help="where to write it (default: the package's shipped-model folder)")
    p.add_argument("--int8-weights", action="store_true",
                   help="store the weights as int8 (a quarter of the bytes); the release is re-calibrated and "
                        "scored with them on the run's validation and test splits")
    p.add_argument("--data", help="FER2013 to score the int8 weights on (default: the run's data, FER_DATA or data/)")
    p.add_argument("--runs-dir", type=Path)
    p.set_defaults(func=_cmd_release)
