"""Reported vs ours for the five studies, as Markdown tables, from the runs of their suites in a runs folder.

    FER_DATA=data/fer2013 fer suite run study-b-architecture --epochs 1 --jobs 2   # … one per suite
    python benchmarks/study_tables.py --runs-dir checkpoints > tables.md

A study whose suites have no completed run is listed as not measured. The last column lists each run's
`adapted:` tags: a `--set` on a study suite, or a test split moved to PublicTest for lack of PrivateTest.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from fer.jobs.suites import STUDIES, study_table, suite_report


def _pct(value: float) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"


def _count(value) -> str:
    return "–" if value is None or str(value) == "<NA>" else f"{int(value):,}"


def markdown(key: str, runs_dir: Path) -> str:
    """One study's table: the study's rows and figures (with their split), ours (mean ± std over seeds), the gap."""
    study = STUDIES.get(key)
    table = study_table(key, {name: suite_report(name, runs_dir) for name in study.suites})
    header = ["suite", "variant", "study's model", "reported (split)", "reported train", "ours test (PublicTest)",
              "ours val", "gap (same split)", "ours train–val gap", "runs × epochs", "params: reported / ours",
              "ours departs from the study"]
    lines = [f"Study {key.upper()} ({study.title}):", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    for row in table.to_dict("records"):
        ours = _pct(row["ours acc"])
        if not math.isnan(row["ours ± std"]):
            ours += f" ± {100 * row['ours ± std']:.1f}"
        where = f" ({row['reported on']})" if row["reported on"] else ""
        cells = [f"`{row['suite']}`", row["variant"], row["study's model"], _pct(row["reported acc"]) + where,
                 _pct(row["reported train acc"]), ours, _pct(row["ours val acc"]), _pct(row["gap"]),
                 _pct(row["ours train–val gap"]), f"{row['runs']} × {row['epochs']}",
                 f"{_count(row['reported params'])} / {_count(row['ours params'])}", row["adapted"] or "–"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs-dir", type=Path, required=True)
    parser.add_argument("--study", action="append", choices=STUDIES.names(), help="default: all five")
    args = parser.parse_args()
    for key in args.study or STUDIES.names():
        print(markdown(key, args.runs_dir))


if __name__ == "__main__":
    main()
