"""How fast the leaderboard is with many runs: `list_runs` and the dashboard's Runs page (AppTest).

Generates N run folders in a temporary directory with the same files training writes (config.json,
status.json, 30 rows of metrics.jsonl, eval_PublicTest.json) through fer's own writers; the values are
synthetic because only the file volume matters here. Then times reading them and rendering the page.

    python benchmarks/leaderboard.py [--runs 1000]
"""
import argparse
import platform
import random
import tempfile
import time
from datetime import date
from pathlib import Path

from fer.config import RunConfig
from fer.models import MODELS
from fer.runs.store import list_runs
from fer.runs.writer import append_metrics, write_json, write_status, write_text


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
        write_status(run, "completed", epoch=30, epochs=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_runs(root, args.runs)
        start = time.perf_counter()
        board = list_runs(root)
        read_s = time.perf_counter() - start
        assert len(board) == args.runs
        app = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
        import streamlit as st

        timings = []
        for i in range(4):
            if i == 2:
                st.cache_data.clear()  # a new view of changed runs: warm server, nothing cached
            at = AppTest.from_file(app, default_timeout=120)
            at.session_state["runs_dir"] = str(root)
            at.switch_page("views/runs.py")
            start = time.perf_counter()
            at.run()
            timings.append(time.perf_counter() - start)
            assert not at.exception
    print(f"{args.runs} runs; {platform.processor() or platform.machine()}; {date.today()}")
    print("| step | seconds |\n|---|---|")
    print(f"| list_runs (read every run folder) | {read_s:.2f} |")
    print(f"| Runs page, first render in a fresh process (imports torch etc.) | {timings[0]:.2f} |")
    print(f"| Runs page, warm process, leaderboard not cached | {timings[2]:.2f} |")
    print(f"| Runs page, warm process, leaderboard cached | {min(timings[1], timings[3]):.2f} |")


if __name__ == "__main__":
    main()
