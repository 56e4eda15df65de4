"""A 200 MB fer2013.csv: time and peak memory to parse it, with hostile rows mixed in.

    python benchmarks/large_csv.py $FER_DATA [--mb 200]

The CSV is written from real faces (repeated to reach the size) in Kaggle's layout, with a BOM, CRLF
line ends, quoted pixel fields and one bad row in every 1,000 (garbage, a duplicated header, a short
row). Each measurement runs `read_fer_csv` in a fresh process: the time without tracing, then the peak of
memory allocated during the parse (tracemalloc: Python and NumPy) in a separate traced run.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

MEASURE = r"""
import json, resource, sys, time, tracemalloc
from fer.data.readers import read_fer_csv
if sys.argv[2] == "memory":  # tracemalloc sees Python and NumPy allocations, and slows the parse
    tracemalloc.start()
start = time.perf_counter()
data = read_fer_csv(sys.argv[1])
seconds = time.perf_counter() - start
traced = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
print(json.dumps({"seconds": seconds, "rows": len(data), "skipped": data.report.n_skipped,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "traced_peak_mb": traced / 2**20, "faces_mb": data.images.nbytes / 2**20}))
"""


def write_csv(source: str, path: Path, megabytes: int) -> int:
    """Write a CSV of about `megabytes` from the real faces at `source`; returns its row count."""
    from fer.core.constants import SPLITS
    from fer.data import load_fer2013

    data = load_fer2013(source)
    rows, size, i = 0, 0, 0
    with open(path, "wb") as fh:
        fh.write(b"\xef\xbb\xbfemotion,pixels,Usage\r\n")
        while size < megabytes * 1_000_000:
            k = i % len(data)
            pixels = " ".join(map(str, data.images[k].reshape(-1)))
            line = f'{data.labels[k]},"{pixels}",{SPLITS[data.splits[k]]}\r\n'
            if i % 1000 == 999:
                line = ("emotion,pixels,Usage\r\n", "3,12 13 x,Training\r\n", "garbage\x00\xff\r\n")[i // 1000 % 3]
            else:
                rows += 1
            encoded = line.encode("utf-8", errors="surrogateescape")
            fh.write(encoded)
            size += len(encoded)
            i += 1
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="FER2013 (image folders or CSV) to take the faces from")
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fer2013.csv"
        rows = write_csv(args.source, path, args.mb)
        def measure(mode: str) -> dict:
            out = subprocess.run([sys.executable, "-c", MEASURE, str(path), mode], capture_output=True, text=True,
                                 check=True).stdout
            return json.loads(out)

        timed = min((measure("time") for _ in range(args.repeats)), key=lambda r: r["seconds"])
        memory = measure("memory")
        size = path.stat().st_size
    assert timed["rows"] == rows, (timed, rows)
    print(f"# {date.today()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
          f"{size / 1e6:.0f} MB, {rows:,} faces + {timed['skipped']:,} bad rows")
    print(f"| CSV | parse s (best of {args.repeats}) | faces/s | peak allocated during the parse MB "
          "| of which the decoded faces MB | process peak RSS MB |")
    print("|---|---|---|---|---|---|")
    print(f"| {size / 1e6:.0f} MB, {rows:,} faces | {timed['seconds']:.1f} | {rows / timed['seconds']:,.0f} | "
          f"{memory['traced_peak_mb']:.0f} | {memory['faces_mb']:.0f} | {timed['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
