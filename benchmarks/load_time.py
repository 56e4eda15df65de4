"""Full-dataset load time: cold (decode every file) versus cached (the decoded .npz).

    python benchmarks/load_time.py PATH [--repeats 3]
"""
import argparse
import os
import platform
import tempfile
import time
from datetime import date


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", help="FER2013 image-folder root or fer2013.csv")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["FER_CACHE_DIR"] = cache  # a fresh cache: the first load is really cold
        from fer.data import load_fer2013
        cold, cached = [], []
        for r in range(args.repeats):
            for f in os.listdir(cache):
                os.unlink(os.path.join(cache, f))
            start = time.perf_counter()
            data = load_fer2013(args.path)
            cold.append(time.perf_counter() - start)
            start = time.perf_counter()
            data = load_fer2013(args.path)
            cached.append(time.perf_counter() - start)
    print(f"# {date.today()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
          f"{len(data):,} images from {args.path}")
    print("| load | median s | min s |")
    print("|---|---|---|")
    for name, times in (("cold (decode all files, write cache)", cold), ("cached (.npz)", cached)):
        times = sorted(times)
        print(f"| {name} | {times[len(times) // 2]:.2f} | {times[0]:.2f} |")


if __name__ == "__main__":
    main()
