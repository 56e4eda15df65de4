"""PyTorch vs ONNX Runtime (fp32 and int8) for one model or several: latency, throughput, whole frames, accuracy.

Same checkpoint, same faces, same process, one backend after the other:
- model latency per face at batch 1 (median and p95 over `--calls`), and faces/s at batch 32;
- the whole 640×480 frame with one real face through `predict_image` (MediaPipe detection on the whole
  frame as the webcam does, crop, preprocessing, model): median and p95 ms;
- PublicTest accuracy of each backend and how often its answer equals PyTorch's (the int8 cost).
The fp32 export is made here; the int8 one is the run's `model.int8.onnx` (shipped for the default model,
or `fer export RUN --int8`), else made here from 512 validation faces. For comparison, a dynamic int8
quantisation of the fp32 export (weights int8, activations quantised on the fly; the product does not use it).
Several `--run`s (`default` = the shipped model; a distilled student, an ensemble run) are measured one
after the other in the same process, so their rows compare.

    python benchmarks/onnx_speed.py --data $FER_DATA [--run RUN ...] [--threads 2] [--calls 500]
"""
import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import torch

from predict_latency import frame_640x480  # the same real-face frame as the latency benchmark

from fer.data import load_fer2013
from fer.inference.export import calibration_faces, export_onnx
from fer.inference.faces import DetectorSettings, create_detector
from fer.inference.onnx import INT8_FILE, OnnxPredictor
from fer.inference.pipeline import predict_image
from fer.inference.predictor import Predictor
from fer.runs.store import SHIPPED_RUN_DIR, resolve_run


def timed(call, n: int) -> list:
    """Seconds per call, after 20 warm-up calls."""
    for _ in range(20):
        call()
    out = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def ms(samples) -> tuple:
    s = sorted(samples)
    return statistics.median(s) * 1e3, s[int(0.95 * (len(s) - 1))] * 1e3


def measure(run_dir: Path, data, detector, threads: int, calls: int, data_path: str) -> list:
    """One table row per backend of one run's model."""
    tmp = Path(tempfile.mkdtemp(prefix="fer-onnx-bench-"))
    fp32 = export_onnx(run_dir / "best.pt", tmp / "model.onnx")
    int8 = run_dir / INT8_FILE
    if not int8.is_file():
        int8 = export_onnx(run_dir / "best.pt", tmp / INT8_FILE, int8_faces=calibration_faces(run_dir, data_path))
    from onnxruntime.quantization import QuantType, quantize_dynamic
    dynamic = tmp / "model.dynamic-int8.onnx"
    quantize_dynamic(str(fp32), str(dynamic), weight_type=QuantType.QInt8)
    backends = {"PyTorch fp32": Predictor.from_checkpoint(run_dir / "best.pt", name=run_dir.name),
                "ONNX Runtime fp32": OnnxPredictor(fp32, threads=threads),
                "ONNX Runtime int8 (static, the product's)": OnnxPredictor(int8, threads=threads),
                "ONNX Runtime int8 (dynamic, for comparison)": OnnxPredictor(dynamic, threads=threads)}
    test = data.split_indices("PublicTest")
    faces, labels = data.images[test], data.labels[test]
    frame = frame_640x480()
    reference = backends["PyTorch fp32"].predict_faces(faces).argmax(1)
    rows = []
    for name, predictor in backends.items():
        one, batch = faces[:1], faces[:32]
        b1 = timed(lambda: predictor.predict_faces(one), calls)
        b32 = timed(lambda: predictor.predict_faces(batch), max(20, calls // 10))
        whole = timed(lambda: predict_image(predictor, frame, detector), calls // 2)
        assert len(predict_image(predictor, frame, detector).faces) == 1
        preds = predictor.predict_faces(faces).argmax(1)
        rows.append((name, *ms(b1), 32 / statistics.median(b32), *ms(whole), (preds == labels).mean(),
                     (preds == reference).mean()))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="append", default=[],
                        help="a run to measure (repeat for several; default = the shipped model)")
    parser.add_argument("--data", help="FER2013 (for PublicTest accuracy and, if needed, int8 calibration)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()

    run_dirs = [SHIPPED_RUN_DIR if r == "default" else resolve_run(r) for r in args.run or ["default"]]
    torch.set_num_threads(args.threads)
    data = load_fer2013(args.data)
    with create_detector("mediapipe", DetectorSettings(tiles=(1,)), download=False) as detector:
        rows = [(run_dir, row) for run_dir in run_dirs
                for row in measure(run_dir, data, detector, args.threads, args.calls, args.data)]
    print(f"{args.threads} threads (torch {torch.__version__}); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; {len(data.split_indices('PublicTest'))} PublicTest faces; {date.today()}")
    print("| model | backend | model ms/face, batch 1 (median / p95) | faces/s, batch 32 | whole 640×480 frame ms "
          "(median / p95) | PublicTest accuracy | same answer as PyTorch |\n|---|---|---|---|---|---|---|")
    for run_dir, (name, b1_med, b1_p95, fps32, w_med, w_p95, acc, agree) in rows:
        model = "default" if run_dir == SHIPPED_RUN_DIR else run_dir.name
        print(f"| {model} | {name} | {b1_med:.2f} / {b1_p95:.2f} | {fps32:.0f} | {w_med:.2f} / {w_p95:.2f} | "
              f"{acc:.2%} | {agree:.2%} |")


if __name__ == "__main__":
    main()
