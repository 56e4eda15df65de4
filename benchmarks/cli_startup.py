"""How fast the `fer` command answers: `--help` of every command group, `fer suite list`, `fer runs`.

Each command runs REPEATS times as a fresh process, interleaved with the baseline `python -c pass`
(the interpreter's own start-up, measured side by side in the same run because the machine is
shared); the table gives the median wall time and its ratio to the baseline.

    python benchmarks/cli_startup.py [--repeats 7]
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

COMMANDS = [["--help"], ["train", "--help"], ["suite", "list"], ["sweep", "--help"], ["export", "--help"],
            ["predict", "--help"], ["video", "--help"], ["data", "stats", "--help"], ["runs"]]


def timed(argv: list, env: dict) -> float:
    """Seconds one fresh process takes, start to exit."""
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    runs_dir = tempfile.mkdtemp(prefix="fer-cli-startup-")  # `fer runs` on an empty runs folder
    env = {**os.environ, "FER_RUNS_DIR": runs_dir}
    baseline = [sys.executable, "-c", "pass"]
    times = {"python -c pass": []}
    for _ in range(args.repeats):
        times["python -c pass"].append(timed(baseline, env))
        for command in COMMANDS:
            times.setdefault("fer " + " ".join(command), []).append(timed([sys.executable, "-m", "fer", *command], env))
    base = statistics.median(times["python -c pass"])
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{date.today()}, median of {args.repeats}")
    print("| command | median s | × python -c pass |\n|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| `{name}` | {median:.2f} | {median / base:.1f} |")


if __name__ == "__main__":
    main()
