"""Which test-time augmentation the product uses by default: accuracy and calibration against cost.

For one model (the shipped one unless `--run`), each TTA mode (none, flip, tencrop) as the product runs it:
views averaged as logits, the mode's own temperature (fitted on validation at the end of training):
- accuracy on the run's validation split (the choice is made here, never on a test split) and on PublicTest;
- the expected calibration error on both (15 bins), which per-mode temperatures keep low;
- model ms per face at batch 1 (median over `--calls`) on ONNX Runtime int8 (the product's engine for
  the shipped model) and PyTorch fp32, and int8 faces/s at batch 32.

    python benchmarks/tta_choice.py --data $FER_DATA [--run RUN] [--threads 2] [--calls 200]
"""
import argparse
import os
import platform
import statistics
import time
from datetime import date

import torch

from fer.data import RunData
from fer.inference.averaging import DEFAULT_TTA, TTA_MODES
from fer.inference.onnx import INT8_FILE, OnnxPredictor
from fer.inference.predictor import Predictor
from fer.metrics.calibration import expected_calibration_error
from fer.runs.store import SHIPPED_RUN_DIR, read_config, resolve_run


def median_seconds(call, n: int) -> float:
    """Median seconds per call, after 10 warm-up calls."""
    for _ in range(10):
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def scores(predictor, faces, labels) -> tuple:
    """(accuracy, expected calibration error) of `predictor` on the faces."""
    probs = predictor.predict_faces(faces)
    return float((probs.argmax(1) == labels).mean()), expected_calibration_error(probs, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run instead of the shipped default model (needs model.int8.onnx)")
    parser.add_argument("--data", help="FER2013 (image folders or fer2013.csv)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()

    run_dir = resolve_run(args.run) if args.run else SHIPPED_RUN_DIR
    torch.set_num_threads(args.threads)
    run_data = RunData.from_config(read_config(run_dir), args.data)
    data = run_data.data
    val, test = run_data.splits.val, data.split_indices("PublicTest")
    rows = []
    for tta in TTA_MODES:
        int8 = OnnxPredictor(run_dir / INT8_FILE, tta=tta, threads=args.threads)
        fp32 = Predictor.from_checkpoint(run_dir / "best.pt", tta=tta)
        val_acc, val_ece = scores(int8, data.images[val], data.labels[val])
        test_acc, test_ece = scores(int8, data.images[test], data.labels[test])
        one, batch = data.images[test[:1]], data.images[test[:32]]
        int8_b1 = median_seconds(lambda: int8.predict_faces(one), args.calls) * 1e3
        torch_b1 = median_seconds(lambda: fp32.predict_faces(one), args.calls) * 1e3
        int8_b32 = 32 / median_seconds(lambda: int8.predict_faces(batch), max(20, args.calls // 10))
        rows.append((tta, int8.temperature, val_acc, val_ece, test_acc, test_ece, int8_b1, torch_b1, int8_b32))
    print(f"model {run_dir.name}; int8 ONNX Runtime and PyTorch fp32, {args.threads} threads (torch "
          f"{torch.__version__}); {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{len(val)} validation and {len(test)} PublicTest faces; {date.today()}")
    print("| TTA | temperature | validation accuracy | validation ECE | PublicTest accuracy | PublicTest ECE | "
          "int8 ms/face, batch 1 | PyTorch ms/face, batch 1 | int8 faces/s, batch 32 |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for tta, temp, val_acc, val_ece, test_acc, test_ece, int8_b1, torch_b1, int8_b32 in rows:
        mark = " (default)" if tta == DEFAULT_TTA else ""
        print(f"| {tta}{mark} | {temp:.3f} | {val_acc:.2%} | {val_ece:.4f} | {test_acc:.2%} | {test_ece:.4f} | "
              f"{int8_b1:.2f} | {torch_b1:.2f} | {int8_b32:,.0f} |")
    best = max(rows, key=lambda r: r[2])
    print(f"highest validation accuracy: {best[0]} ({best[2]:.2%})")


if __name__ == "__main__":
    main()
