"""`fer data stats`: counts, imbalance, pixel statistics and the duplicate / leakage report."""
from __future__ import annotations

import argparse
import json


def _cmd_data_stats(args: argparse.Namespace) -> int:
    import pandas as pd

    from fer.data import load_fer2013
    from fer.data.stats import summarize

    data = load_fer2013(args.path, use_cache=not args.no_cache)
    summary = summarize(data)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    counts = pd.DataFrame(summary["counts"]).T
    print(f"{summary['origin']}: {summary['n_images']} images ({data.report.summary()})\n")
    print(counts.to_string())
    print("\nimbalance ratio (largest / smallest class): "
          + ", ".join(f"{s} {r:.1f}" for s, r in summary["imbalance_ratio"].items()))
    px = summary["pixels"]
    print(f"pixels ({px['split']}): mean {px['mean']:.1f} std {px['std']:.1f} "
          f"(0-1 scale: {px['mean_01']:.4f} / {px['std_01']:.4f})")
    leak = summary["leakage"]
    print(f"exact duplicates: {leak['duplicate_images']} images in {leak['duplicate_groups']} groups; "
          f"{leak['cross_split_groups']} groups cross splits {leak['cross_split_pairs']}; "
          f"{leak['conflicting_label_groups']} groups disagree on the label")
    return 0


def add_parsers(sub) -> None:
    """Register `fer data` and its subcommands."""
    p = sub.add_parser("data", help="dataset tools")
    data_sub = p.add_subparsers(dest="data_command", required=True)
    p = data_sub.add_parser("stats", help="counts, imbalance, pixel statistics and duplicate/leakage report")
    p.add_argument("path", nargs="?", help="fer2013.csv or image-folder root (default: FER_DATA or data/)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--no-cache", action="store_true", help="decode the source again, ignoring the cache")
    p.set_defaults(func=_cmd_data_stats)
