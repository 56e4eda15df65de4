"""What several command groups share: the `--ray` option and printing a report table."""
from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def add_ray_option(p: argparse.ArgumentParser) -> None:
    """--ray [ADDRESS]: run on a Ray cluster instead of this machine."""
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run each run as a task on a Ray cluster: ADDRESS of its head (host:6379 or ray://host:10001), "
                        "auto for the cluster this machine joined with `ray start`, nothing for a local Ray instance; "
                        "the runs folder must be on a filesystem every node shares (pip install 'fer-studio[ray]')")


def print_report(report: pd.DataFrame, fmt: str) -> None:
    """A report as a table, CSV or JSON on stdout."""
    if fmt == "csv":
        print(report.to_csv(index=False), end="")
    elif fmt == "json":
        print(report.to_json(orient="records", indent=2))
    elif report.empty:
        print("no completed runs of this suite yet")
    else:
        print(report.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
