"""`fer video` speed and memory: frames/s through decode → detect → model → CSV + annotated MP4, and whether
memory grows with the video's length.

Clips of 640×480 at 30 fps with one real face (scikit-image's astronaut) drifting across the frame are made
once per length; each is analysed as `fer video --csv --annotate` does (rows streamed to a CSV, the annotated
H.264 video encoded as frames come), with the shipped model on the backend given, MediaPipe on the whole frame.
Peak RSS above the process's level before the analysis is sampled every 15 frames.

    python benchmarks/video_throughput.py [--seconds 10 40] [--every 1 2] [--backend auto]
"""
import argparse
import csv
import os
import platform
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import psutil
from skimage import data as skdata

from fer.inference.classifiers import load_classifier
from fer.inference.faces import DetectorSettings, create_detector
from fer.inference.video import VideoAnalysis, VideoWriter


def make_clip(path: Path, seconds: int, fps: int = 30) -> Path:
    """One real face drifting left and right over a gray 640×480 background."""
    head = cv2.resize(skdata.astronaut()[20:260, 110:340], (200, 200), interpolation=cv2.INTER_AREA)
    writer = VideoWriter(path, 640, 480, fps)
    for i in range(seconds * fps):
        frame = np.full((480, 640, 3), 110, np.uint8)
        x = int(220 + 180 * np.sin(i / 40))
        frame[140:340, x:x + 200] = head
        writer.write(frame, i / fps)
    writer.close()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="fer-video-bench-"))
    classifier = load_classifier(backend=args.backend)
    process = psutil.Process()
    rows = []
    with create_detector("mediapipe", DetectorSettings(), download=False) as detector:
        for seconds in args.seconds:
            clip = make_clip(tmp / f"clip{seconds}.mp4", seconds)
            for every in args.every:
                analysis = VideoAnalysis(clip, classifier, detector, every=every)
                base, peak = process.memory_info().rss, 0

                def sample(read: int, total: int) -> None:
                    nonlocal peak
                    if read % 15 == 0:
                        peak = max(peak, process.memory_info().rss - base)

                start = time.perf_counter()
                with open(tmp / "rows.csv", "w", newline="") as fh:
                    writer = csv.DictWriter(fh, fieldnames=analysis.columns())
                    for row in analysis.rows(annotate_to=tmp / "annotated.mp4", on_frame=sample):
                        writer.writerow(row)
                elapsed = time.perf_counter() - start
                rows.append((seconds, analysis.frames_read, every, analysis.frames_read / elapsed,
                             1e3 * elapsed / analysis.frames_read, peak / 2**20))
    print(f"model default ({getattr(classifier, 'backend', 'torch')}); MediaPipe, whole frame; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; {date.today()}")
    print("| clip | frames | every | frames/s (decode + analyse + CSV + annotated MP4) | ms/frame | "
          "peak RSS growth MB |\n|---|---|---|---|---|---|")
    for seconds, frames, every, fps, ms, mb in rows:
        print(f"| {seconds} s 640×480 30 fps | {frames} | {every} | {fps:.1f} | {ms:.1f} | {mb:.0f} |")


if __name__ == "__main__":
    main()
