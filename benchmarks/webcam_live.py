"""Is the webcam smooth while the model works? Returned FPS and label age of `fer.inference.live.LiveAnalyzer`.

A 640×480 frame with one real face (scikit-image's astronaut) is handed to `LiveAnalyzer.process`
at 30 frames/s from a "video thread", exactly as streamlit-webrtc's callback does, for a few
seconds. Measured: frames returned per second, the time `process` takes, the model's frames per
second, and how old the labels drawn on each returned frame are. Each mode runs idle and with a
real training job (`fer train`, fp32, 2 threads) on the same CPU, the dashboard's intended use:

- `live`: the shipped design (inference on its own thread, newest frame only, 1 intra-op thread);
- `live-2threads`: the same with 2 intra-op threads;
- `inline`: inference inside the callback (what the Webcam page did before), for comparison.

    python benchmarks/webcam_live.py --data $FER_DATA [--seconds 10]
"""
import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import torch
from skimage import data as skdata

from fer.inference.annotate import annotate
from fer.inference.classifiers import load_classifier
from fer.inference.faces import create_detector
from fer.inference.live import LiveAnalyzer
from fer.runs.store import read_status

CAMERA_FPS = 30.0


def frame_640x480() -> np.ndarray:
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80:560] = cv2.resize(skdata.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    return frame


def camera(seconds: float, handle) -> dict:
    """Call `handle(frame)` at 30 frames/s (or as fast as it returns); timings and label ages."""
    frame = frame_640x480()
    period = 1.0 / CAMERA_FPS
    calls, ages, returned = [], [], []
    start = next_at = time.monotonic()
    while time.monotonic() - start < seconds:
        t0 = time.monotonic()
        age = handle(frame)
        t1 = time.monotonic()
        calls.append(t1 - t0)
        returned.append(t1)
        if age is not None:
            ages.append(age)
        next_at = max(next_at + period, t1)  # a late frame is not made up for, as with a real camera
        time.sleep(max(0.0, next_at - time.monotonic()))
    span = returned[-1] - returned[0]
    return {"fps": (len(returned) - 1) / span if span > 0 else 0.0,
            "call_ms": statistics.median(calls) * 1e3,
            "age_ms_median": statistics.median(ages) * 1e3 if ages else float("nan"),
            "age_ms_p95": sorted(ages)[int(0.95 * (len(ages) - 1))] * 1e3 if ages else float("nan")}


def run_mode(mode: str, seconds: float, model) -> dict:
    with create_detector("mediapipe", download=False) as detector:
        if mode == "inline":
            analyzer = LiveAnalyzer(model, detector)
            torch.set_num_threads(os.cpu_count() or 1)

            def handle(frame):
                arrived = time.monotonic()
                annotate(frame, analyzer.analyse(frame))
                return time.monotonic() - arrived  # labels describe this very frame

            result = camera(seconds, handle)
            result["model_fps"] = result["fps"]
            return result
        analyzer = LiveAnalyzer(model, detector, threads=2 if mode == "live-2threads" else 1)

        def handle(frame):
            analyzer.process(frame)
            return analyzer.label_age_s()

        camera(1.0, handle)  # warm-up: the inference thread starts and the first labels arrive
        result = camera(seconds, handle)
        result["model_fps"] = analyzer.inference_fps()
        analyzer.close()
        return result


def start_training(data: str, runs: Path) -> subprocess.Popen:
    """A real fp32 training job on the full Training set; returns once it is past its first batches."""
    proc = subprocess.Popen([sys.executable, "-m", "fer", "train", "--quiet", "--set", f"data.path={data}",
                             "--set", f"runs_dir={runs}", "--set", "train.amp=off", "--set", "train.epochs=50",
                             "--set", "name=bench-load"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        found = list(runs.glob("*bench-load*"))
        if found and (read_status(found[0]).get("batch") or 0) > 5:
            return proc
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the training job did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FER2013 for the background training job")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--run", help="a run instead of the shipped default model")
    args = parser.parse_args()
    model = load_classifier(args.run)
    rows = []
    for load in ("idle", "training"):
        with tempfile.TemporaryDirectory() as tmp:
            job = start_training(args.data, Path(tmp)) if load == "training" else None
            try:
                for mode in ("live", "live-2threads", "inline"):
                    rows.append((load, mode, run_mode(mode, args.seconds, model)))
            finally:
                if job is not None:
                    job.terminate()
                    job.wait(timeout=60)
    print(f"model {model.name}; one face in a 640×480 frame offered at {CAMERA_FPS:.0f} frames/s; torch "
          f"{torch.__version__}; {os.cpu_count()} cores, {platform.processor() or platform.machine()}; {date.today()}")
    print("| CPU | mode | frames returned/s | process() median ms | model frames/s | label age median ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    for load, mode, r in rows:
        print(f"| {load} | {mode} | {r['fps']:.1f} | {r['call_ms']:.1f} | {r['model_fps']:.1f} | "
              f"{r['age_ms_median']:.0f} | {r['age_ms_p95']:.0f} |")


if __name__ == "__main__":
    main()
