"""`fer webcam`: the studies' desktop demo, an OpenCV window on a local camera (or a video file), labelled live."""
from __future__ import annotations

import argparse
import sys
from contextlib import ExitStack
from pathlib import Path

from fer.cli.models import add_detector_arguments, add_model_arguments, build_classifier, detector_settings
from fer.core.quiet import native_stderr_silenced


def cmd_webcam(args: argparse.Namespace) -> int:
    """Open the window; print what it showed when it closes."""
    from fer.inference.desktop import DesktopError, open_capture, run_window, window_support
    from fer.inference.faces import create_detector
    from fer.inference.live import LiveAnalyzer

    reason = window_support()  # before loading anything: no window, no point
    if reason:
        raise DesktopError(reason)
    with native_stderr_silenced():  # OpenCV's own lines about cameras it probed
        capture = open_capture(args.camera, args.source)
    classifier = build_classifier(args.run, args.checkpoint, args.runs_dir, args.tta, args.backend)
    with ExitStack() as stack:
        stack.callback(capture.release)
        stack.enter_context(native_stderr_silenced())  # MediaPipe LiteRT lines
        detector = create_detector(args.detector, detector_settings(args), download=not args.offline)
        analyzer = LiveAnalyzer(classifier, detector, threads=args.threads)
        stack.callback(analyzer.close)  # closes the detector too
        source = args.source.name if args.source else f"camera {args.camera}"
        print(f"{source}: model {classifier.name} ({classifier.backend}), detector {detector.name}"
              + (f" ({detector.note})" if detector.note else "") + "; q or Esc quits", file=sys.stderr)
        try:
            report = run_window(analyzer, capture, from_file=args.source is not None, max_frames=args.frames,
                                loop=args.loop, screenshot=args.screenshot)
        except KeyboardInterrupt:
            print("stopped", file=sys.stderr)
            return 130
    print(f"{report.frames_shown} frames shown in {report.seconds:.1f} s ({report.fps:.1f} FPS); the model "
          f"analysed {report.frames_analysed} and skipped {report.frames_dropped} it had no time for"
          + ("; closed with q" if report.quit_by_key else "")
          + (f"; last frame: {args.screenshot} ({', '.join(report.last_labels) or 'no face'})"
             if args.screenshot else ""))
    return 0


def add_parsers(sub) -> None:
    """Register `fer webcam` on the CLI's subparsers."""
    p = sub.add_parser("webcam", help="a desktop window on your camera (or a video file), every face labelled live")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--camera", type=int, default=0, metavar="N", help="local camera number (default 0)")
    where.add_argument("--source", type=Path, metavar="FILE", help="a video file instead of a camera")
    add_model_arguments(p)
    p.add_argument("--threads", type=int, default=1,
                   help="inference threads (1 is fastest on a busy CPU, e.g. beside a training job)")
    p.add_argument("--frames", type=int, metavar="N", help="close after N frames (default: q, Esc, or the end)")
    p.add_argument("--loop", action="store_true", help="play --source again from the start at its end")
    p.add_argument("--screenshot", type=Path, metavar="OUT.png", help="save the last frame shown, labels and all")
    add_detector_arguments(p)
    p.set_defaults(func=cmd_webcam, tiles="1")  # live: the whole frame only, as the browser page
