"""CPU latency of the full inference path on 640×480 frames, for the shipped default model (or a run).

Per frame at batch 1: face detection (MediaPipe BlazeFace, whole frame as the webcam does), crop +
preprocessing, and the model, timed separately and together. Then throughput: 32 frames detected
and cropped, their faces classified in one batch of 32, reported as faces per second.
The frame is scikit-image's astronaut photo (a real face) letterboxed to 640×480.

    python benchmarks/predict_latency.py [--run RUN] [--frames 200] [--detector mediapipe|haar]
"""
import argparse
import platform
import statistics
import time
from datetime import date

import cv2
import numpy as np
import torch
from skimage import data as skdata

from fer.inference.classifiers import load_classifier
from fer.inference.faces import DetectorSettings, create_detector, crop_face, to_gray


def frame_640x480() -> np.ndarray:
    """The astronaut photo scaled to 480 rows and centred on a 640×480 gray frame."""
    photo = cv2.resize(skdata.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 100, np.uint8)
    frame[:, 80:560] = photo
    return frame


def ms(samples):
    """(median, p95) in milliseconds."""
    s = sorted(samples)
    return statistics.median(s) * 1e3, s[int(0.95 * (len(s) - 1))] * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run instead of the shipped default model")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--detector", default="mediapipe")
    args = parser.parse_args()

    predictor = load_classifier(args.run)
    frame = frame_640x480()
    detect_s, prep_s, model_s, total_s = [], [], [], []
    with create_detector(args.detector, DetectorSettings(tiles=(1,)), download=False) as detector:
        for i in range(args.frames + 10):
            t0 = time.perf_counter()
            faces = detector.detect(frame)
            t1 = time.perf_counter()
            crops = np.stack([crop_face(to_gray(frame), f) for f in faces])
            t2 = time.perf_counter()
            predictor.predict_faces(crops)
            t3 = time.perf_counter()
            if i >= 10:  # warm-up
                detect_s.append(t1 - t0), prep_s.append(t2 - t1), model_s.append(t3 - t2), total_s.append(t3 - t0)
        assert len(faces) == 1, f"expected one face in the benchmark frame, found {len(faces)}"
        # Throughput: 32 frames → 32 faces → one batch.
        rounds, start = 10, time.perf_counter()
        for _ in range(rounds):
            crops = np.stack([crop_face(to_gray(frame), detector.detect(frame)[0]) for _ in range(32)])
            predictor.predict_faces(crops)
        faces_per_s = rounds * 32 / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(rounds):
            predictor.predict_faces(crops)
        model_faces_per_s = rounds * 32 / (time.perf_counter() - start)

    print(f"model {predictor.name}; detector {args.detector}; {args.frames} frames of 640×480; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {platform.processor() or platform.machine()}; "
          f"{date.today()}")
    print("| stage (batch 1) | median ms | p95 ms |\n|---|---|---|")
    for label, samples in (("face detection", detect_s), ("crop + preprocessing", prep_s), ("model", model_s),
                           ("total per frame", total_s)):
        med, p95 = ms(samples)
        print(f"| {label} | {med:.2f} | {p95:.2f} |")
    print(f"\nbatch 32: {faces_per_s:.0f} faces/s end to end (detection + crop + model), "
          f"{model_faces_per_s:.0f} faces/s model only")


if __name__ == "__main__":
    main()
