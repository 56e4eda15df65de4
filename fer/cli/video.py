"""`fer video`: emotions of every face through a video file, tracked, as CSV / JSON lines / annotated MP4."""
from __future__ import annotations

import argparse
import csv
import json
import sys
from contextlib import ExitStack
from pathlib import Path

from fer.cli.models import add_detector_arguments, add_model_arguments, build_classifier, detector_settings
from fer.core.quiet import native_stderr_silenced


def cmd_video(args: argparse.Namespace) -> int:
    """Analyse one video; rows stream to the CSV (and stdout with --json) as frames are decoded."""
    from tqdm import tqdm

    from fer.inference.faces import create_detector
    from fer.inference.video import VideoAnalysis

    classifier = build_classifier(args.run, args.checkpoint, args.runs_dir, args.tta, args.backend)
    with ExitStack() as stack:
        stack.enter_context(native_stderr_silenced())  # MediaPipe LiteRT lines (the detector closes inside)
        detector = stack.enter_context(create_detector(args.detector, detector_settings(args),
                                                       download=not args.offline))
        analysis = VideoAnalysis(args.video, classifier, detector, every=args.every, smoothing=args.smooth,
                                 margin=args.margin, align=args.align)
        info = analysis.info
        print(f"{info.path}: {info.width}×{info.height}, {info.fps:.2f} fps, {info.frames or '?'} frames, "
              f"{info.duration_s:.1f} s; model {classifier.name} ({classifier.backend}), "
              f"detector {detector.name}" + (f" ({detector.note})" if detector.note else ""), file=sys.stderr)
        if info.scale < 1:
            print(f"note: frames are analysed at {info.analysed_width}×{info.analysed_height}; boxes are given "
                  "in the original's pixels", file=sys.stderr)
        writer = None
        if args.csv:
            args.csv.parent.mkdir(parents=True, exist_ok=True)
            handle = stack.enter_context(open(args.csv, "w", newline=""))
            writer = csv.DictWriter(handle, fieldnames=analysis.columns())
            writer.writeheader()
        bar = stack.enter_context(tqdm(total=info.frames or None, unit="frame", disable=args.quiet,
                                       file=sys.stderr, dynamic_ncols=True))
        faces = 0
        for row in analysis.rows(annotate_to=args.annotate, on_frame=lambda read, total: bar.update(1)):
            faces += 1
            if writer is not None:
                writer.writerow(row)
            if args.json:
                print(json.dumps(row), flush=False)
    summary = analysis.tracker.summary()
    for warning in analysis.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    report = {"video": info.path, "frames": analysis.frames_read, "analysed_frames": analysis.frames_analysed,
              "face_rows": faces, "tracks": summary.to_dict(orient="records"),
              "csv": str(args.csv) if args.csv else None, "annotated": str(args.annotate) if args.annotate else None,
              "warnings": analysis.warnings}
    if args.json:
        print(json.dumps({"summary": report}))
    else:
        print(f"{analysis.frames_read} frames ({analysis.frames_analysed} analysed), {faces} face rows, "
              f"{len(summary)} face track(s)")
        for track in summary.itertuples():
            shares = sorted(((c, getattr(track, f"share_{c}")) for c in analysis.class_names),
                            key=lambda kv: kv[1], reverse=True)[:3]
            print(f"  face #{track.track}: {track.frames} frames, {track.first_s:.1f}–{track.last_s:.1f} s, mostly "
                  f"{track.dominant} (" + ", ".join(f"{c} {s:.0%}" for c, s in shares) + ")")
        for label, path in (("CSV", args.csv), ("annotated video", args.annotate)):
            if path:
                print(f"{label}: {path}")
    return 0


def add_parsers(sub) -> None:
    """Register `fer video` on the CLI's subparsers."""
    p = sub.add_parser("video", help="emotions of every face through a video file (tracked faces, CSV, "
                                     "annotated MP4)")
    p.add_argument("video", type=Path, help="a video file (MP4, MOV, AVI, MKV, WebM, ...)")
    add_model_arguments(p)
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every Nth frame (default: all)")
    p.add_argument("--smooth", type=float, default=0.0, metavar="ALPHA",
                   help="EMA smoothing of each face's probabilities over time: 0 off (default), 0.8 heavy")
    p.add_argument("--csv", type=Path, metavar="OUT.csv",
                   help="per analysed frame and face: time, box, track id, label and every class probability")
    p.add_argument("--annotate", type=Path, metavar="OUT.mp4", help="write the video with boxes, track ids, labels")
    p.add_argument("--json", action="store_true", help="print each row as a JSON line, then a summary line")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_detector_arguments(p)
    p.set_defaults(func=cmd_video)
