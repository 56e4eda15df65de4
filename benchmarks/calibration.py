"""Calibration of a run's probabilities: expected calibration error (15 bins) without and with the temperature
stored in its best.pt, on its validation split and on PublicTest, plus the accuracy (which T never changes).

    python benchmarks/calibration.py --data $FER_DATA [--run RUN]
"""
import argparse
import platform
from datetime import date

from fer.data import RunData
from fer.inference.predictor import Predictor
from fer.metrics.calibration import apply_temperature, expected_calibration_error
from fer.runs.store import SHIPPED_RUN_DIR, read_config, resolve_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run instead of the shipped default model")
    parser.add_argument("--data", help="FER2013 (default: the run's data source)")
    args = parser.parse_args()

    run_dir = resolve_run(args.run) if args.run else SHIPPED_RUN_DIR
    cfg = read_config(run_dir)
    raw_model = Predictor.from_run(run_dir, calibrated=False)
    temperature = Predictor.from_run(run_dir).temperature
    run_data = RunData.from_config(cfg, args.data)
    data = run_data.data
    print(f"model {run_dir.name}; T = {temperature:.3f} (fitted on validation); "
          f"{platform.processor() or platform.machine()}; {date.today()}")
    print("| split | faces | accuracy | ECE without T | ECE with T |\n|---|---|---|---|---|")
    for role in ("val", "test"):
        index, name = run_data.split(role)
        raw = raw_model.predict_faces(data.images[index])
        labels = data.labels[index]
        print(f"| {name} | {len(index):,} | {(raw.argmax(1) == labels).mean():.2%} | "
              f"{expected_calibration_error(raw, labels):.4f} | "
              f"{expected_calibration_error(apply_temperature(raw, temperature), labels):.4f} |")


if __name__ == "__main__":
    main()
