"""How fast the leaderboard is with many runs: `list_runs`, many sessions at once, and the Runs page.

Generates N run folders in a temporary directory with the same files training writes (config.json,
status.json, 30 rows of metrics.jsonl, eval_PublicTest.json) through fer's own writers; the values are
synthetic because only the file volume matters here. Then times reading them: the first listing
(every folder read), a listing after one run changed (the row cache re-reads only that one), SESSIONS
threads listing at once after another change (as that many dashboard sessions in one server do), and
rendering the Runs page (AppTest).

    python benchmarks/leaderboard.py [--runs 5000] [--sessions 20]
"""
import argparse
import os
import platform
import random
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from fer.config import RunConfig
from fer.models import MODELS
from fer.runs.identity import RUN_FORMAT
from fer.runs.store import list_runs
from fer.runs.writer import append_metrics, rename_run, write_json, write_status, write_text


def make_runs(root: Path, n: int) -> None:
    """N completed run folders with varied models and learning rates."""
    rng = random.Random(0)
    for i in range(n):
        cfg = RunConfig(name=f"bench-{i}", tags=["suite:bench", f"seed:{i % 3}"])
        cfg.model.name = rng.choice(MODELS.names())
        cfg.optim.lr = 10 ** rng.uniform(-4, -2)
        run = root / f"20261123-000000-bench-{i:04d}"
        run.mkdir()
        write_text(run / "config.json", cfg.to_json())
        for epoch in range(1, 31):
            append_metrics(run, {"epoch": epoch, "train_loss": 1.5 - epoch / 40, "train_acc": 0.4 + epoch / 100,
                                 "val_loss": 1.4 - epoch / 50, "val_acc": 0.4 + epoch / 120, "seconds": 60.0})
        write_json(run / "eval_PublicTest.json", {"split": "PublicTest", "accuracy": rng.uniform(0.5, 0.7),
                                                  "macro_f1": rng.uniform(0.4, 0.6)})
        write_status(run, "completed", format=RUN_FORMAT, run_id=run.name, epoch=30, epochs=30)


def _uncached_board(root: Path):
    """The baseline: every run folder read again, no row cache, no shared build (as before both)."""
    import pandas as pd

    from fer.runs.store import _summary_or_problem, is_run_folder

    return pd.DataFrame([_summary_or_problem(p) for p in sorted(root.glob("*")) if is_run_folder(p)])


def _sessions_at_once(root: Path, sessions: int, board=list_runs) -> list:
    """Seconds each of `sessions` threads waits for its board when all ask at the same moment."""
    go, waits = threading.Barrier(sessions), []

    def one() -> None:
        go.wait()
        start = time.perf_counter()
        board(root)
        waits.append(time.perf_counter() - start)
    threads = [threading.Thread(target=one) for _ in range(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_runs(root, args.runs)
        start = time.perf_counter()
        board = list_runs(root)
        read_s = time.perf_counter() - start
        assert len(board) == args.runs
        runs = sorted(root.iterdir())
        rename_run(runs[0], "changed")
        start = time.perf_counter()
        assert list_runs(root).loc[lambda b: b["run_id"] == runs[0].name, "name"].item() == "changed"
        changed_s = time.perf_counter() - start
        rename_run(runs[1], "changed too")
        waits = _sessions_at_once(root, args.sessions)
        baseline = _sessions_at_once(root, args.sessions, _uncached_board)
        os.environ["FER_RUNS_DIRS"] = str(root)
        os.environ["FER_NO_TOKEN"] = "1"  # one user on this machine: no start token
        app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
        import streamlit as st

        timings = []
        for i in range(4):
            if i == 2:
                st.cache_data.clear()  # a new view of changed runs: warm server, nothing cached
            at = AppTest.from_file(app, default_timeout=300)
            at.switch_page("views/runs.py")
            start = time.perf_counter()
            at.run()
            timings.append(time.perf_counter() - start)
            assert not at.exception
    print(f"{args.runs} runs; {platform.processor() or platform.machine()}; {date.today()}")
    print("| step | seconds |\n|---|---|")
    print(f"| list_runs, first (read every run folder) | {read_s:.2f} |")
    print(f"| list_runs after one run changed (row cache) | {changed_s:.2f} |")
    print(f"| {args.sessions} sessions listing at once after a change: slowest | {max(waits):.2f} |")
    print(f"| the same without the row cache and the shared build (baseline): slowest | {max(baseline):.2f} |")
    print(f"| ratio, baseline / now | {max(baseline) / max(waits):.0f}× |")
    print(f"| Runs page, first render in a fresh process (imports torch etc.) | {timings[0]:.2f} |")
    print(f"| Runs page, warm process, leaderboard not cached | {timings[2]:.2f} |")
    print(f"| Runs page, warm process, leaderboard cached | {min(timings[1], timings[3]):.2f} |")


if __name__ == "__main__":
    main()
