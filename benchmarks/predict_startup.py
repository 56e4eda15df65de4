"""A first photo prediction from a fresh process: `fer predict photo.jpg` against the `fer` package's one-liner.

Both read the same real photo (scikit-image's astronaut) and print the emotions of its face. Each
command runs REPEATS times as a fresh process, alternating with the other so both see the same
machine load; the table gives the median and best wall time and the peak resident memory of the
process (its own `ru_maxrss`, read with `os.wait4`).

    python benchmarks/predict_startup.py --peer-python /path/to/peer-venv/bin/python [--repeats 5]

The peer is `pip install fer` in its own virtual environment (it brings TensorFlow); without
`--peer-python` only fer-studio is measured. The detector's model file must be in the model cache
already (the first `fer predict` downloads it), as it is after any first use.
"""
import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Dict, List, Tuple

# `fer` 25.x keeps the class in fer.fer (older releases exported it from the package).
PEER_ONE_LINER = "import sys, cv2; from fer.fer import FER; print(FER().detect_emotions(cv2.imread(sys.argv[1])))"


def measured(argv: List[str], env: Dict[str, str], cwd: Path) -> Tuple[float, float]:
    """(wall seconds, peak resident MiB) of one fresh process, which must succeed."""
    with tempfile.TemporaryFile() as errors:  # a file, not a pipe: TensorFlow's chatter cannot fill it and stall
        start = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errors, env=env, cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            errors.seek(0)
            raise SystemExit(f"{' '.join(argv)} failed: {errors.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def write_photo(folder: Path) -> Path:
    """scikit-image's astronaut (a real 512×512 portrait) as a JPEG."""
    import cv2
    from skimage import data

    path = folder / "photo.jpg"
    cv2.imwrite(str(path), cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
    return path


def fer_studio_command() -> List[str]:
    """The installed `fer` console script beside this interpreter (what a user types), else `python -m fer`."""
    script = Path(sys.executable).with_name("fer")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "fer"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--peer-python", help="the interpreter of a virtual environment with `pip install fer`")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fer-predict-startup-"))
    photo = write_photo(folder)
    env = {**os.environ, "FER_RUNS_DIR": str(folder / "runs"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    commands = {"fer predict photo.jpg (fer-studio)": fer_studio_command() + ["predict", str(photo)]}
    if args.peer_python:
        commands["fer package one-liner (FER().detect_emotions)"] = [args.peer_python, "-c", PEER_ONE_LINER,
                                                                     str(photo)]
    results: Dict[str, List[Tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeats):
        for name, argv in commands.items():
            results[name].append(measured(argv, env, cwd=folder))  # not here: `-c` would import this `fer`
    shutil.rmtree(folder, ignore_errors=True)
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{date.today()}, {args.repeats} alternating repeats")
    print("| command | median s | best s | peak memory MiB (median) |\n|---|---:|---:|---:|")
    for name, values in results.items():
        walls, memory = [w for w, _ in values], [m for _, m in values]
        print(f"| {name} | {statistics.median(walls):.2f} | {min(walls):.2f} | {statistics.median(memory):.0f} |")


if __name__ == "__main__":
    main()
