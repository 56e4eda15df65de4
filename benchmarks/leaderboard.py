"""How fast the leaderboard is with many runs: `list_runs`, many sessions at once, and the Runs page.

Generates N run folders in a temporary directory with the same files training writes (config.json,
status.json, 30 rows of metrics.jsonl, eval_PublicTest.json) through fer's own writers; the values are
synthetic because only the file volume matters here. Then times reading them: the first listing
(every folder read), a listing after one run changed (the row cache re-reads only that one), SESSIONS
threads listing at once after another change (as that many dashboard sessions in one server do),
rendering the Runs page (AppTest), and SESSIONS real browser sessions (headless Chromium) opening the
Runs page of one `streamlit run` server at the same moment: on a cold server, then after a run changed.
A session has its leaderboard when the page shows the table's "N of N runs" caption. The browsers run
twice, once with a fresh profile each (separate visitors) and once as tabs of one profile, and each case
records how much CPU the server and the whole machine spent on it.

    python benchmarks/leaderboard.py [--runs 5000] [--sessions 20] [--no-browser]
"""
import argparse
import os
import platform
import random
import re
import tempfile
import threading
import time
from datetime import date
from pathlib import Path
from typing import Optional

from fer.config import RunConfig
from fer.core.serving import free_port, wait_until_healthy
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


TIMEOUT_MS = 300_000  # a session that waits this long has failed the 10 s goal by far


async def _browsers_at_once(url: str, sessions: int, one_profile: bool) -> list:
    """Seconds until each of `sessions` Chromium pages, opened together, shows the whole leaderboard.

    Either each page in a fresh profile (separate visitors: each fetches and compiles the frontend) or all
    as tabs of one profile (they share its cache); each tab is still its own Streamlit session."""
    import asyncio
    import shutil

    from playwright.async_api import TimeoutError as PlaywrightTimeout
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium")
        shared = await browser.new_context() if one_profile else None
        pages = [await (shared or await browser.new_context()).new_page() for _ in range(sessions)]

        async def one(number: int, page) -> float:
            start = time.perf_counter()
            await page.goto(url, timeout=TIMEOUT_MS)
            try:
                await page.get_by_text(re.compile(r"^\d+ of \d+ runs")).wait_for(timeout=TIMEOUT_MS)
            except PlaywrightTimeout:  # keep what that session saw, and time the others
                shot = Path(tempfile.gettempdir()) / f"leaderboard-session-{number}.png"
                await page.screenshot(path=str(shot), full_page=True)
                print(f"session {number} showed no leaderboard in {TIMEOUT_MS / 1000:.0f} s: {shot}", flush=True)
                return float("inf")
            return time.perf_counter() - start
        waits = await asyncio.gather(*(one(number, page) for number, page in enumerate(pages)))
        await browser.close()
    return list(waits)


class _Server:
    """`streamlit run SCRIPT` on a free local port, for as long as the `with` block lasts."""

    def __init__(self, script: Path, env: dict) -> None:
        import subprocess
        import sys

        self.port = free_port()
        self.process = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(script),
                                         "--server.headless=true", f"--server.port={self.port}",
                                         "--server.address=127.0.0.1"],  # as .streamlit/config.toml binds, from any folder
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def __enter__(self) -> "_Server":
        wait_until_healthy(f"http://127.0.0.1:{self.port}", timeout_s=120)
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=60)


def _cpu_seconds(pid: Optional[int] = None) -> float:
    """CPU seconds used so far by one process (user + system), or by the whole machine (user + nice + system)."""
    import psutil

    if pid is None:
        machine = psutil.cpu_times()
        return machine.user + machine.nice + machine.system
    process = psutil.Process(pid).cpu_times()
    return process.user + process.system


def _timed_case(server: "_Server", url: str, sessions: int, one_profile: bool) -> tuple:
    """(slowest s, median s, server CPU s, machine CPU s) for one case of browsers opening `url` at once."""
    import asyncio
    import statistics

    server_cpu, machine_cpu = _cpu_seconds(server.process.pid), _cpu_seconds()
    waits = asyncio.run(_browsers_at_once(url, sessions, one_profile))
    return (max(waits), statistics.median(waits), _cpu_seconds(server.process.pid) - server_cpu,
            _cpu_seconds() - machine_cpu)


def browser_sessions(root: Path, sessions: int) -> dict:
    """Each case's timings (see `_timed_case`) for `sessions` browsers, in both kinds of profile.

    The baseline is a one-line Streamlit page showing the same caption: what that many browsers cost on
    this machine before the Runs page does anything. The CPU seconds split the machine's work between the
    server and the browsers, which here share its cores (visitors' browsers would run on their own)."""
    env = {**os.environ, "FER_RUNS_DIRS": str(root), "FER_NO_TOKEN": "1"}
    baseline = root.parent / "one_line_page.py"
    baseline.write_text("import streamlit as st\n\nst.caption('5000 of 5000 runs')\n")
    results = {}
    for one_profile in (False, True):
        with _Server(baseline, env) as server:
            results["baseline", one_profile] = _timed_case(server, f"http://127.0.0.1:{server.port}/", sessions,
                                                           one_profile)
        with _Server(Path(__file__).resolve().parents[1] / "dashboard" / "app.py", env) as server:
            url = f"http://127.0.0.1:{server.port}/runs"
            results["cold", one_profile] = _timed_case(server, url, sessions, one_profile)
            rename_run(sorted(root.iterdir())[2 + one_profile], "changed while open")
            time.sleep(6)  # past the board's freshness window, so the next visitors see the change
            results["changed", one_profile] = _timed_case(server, url, sessions, one_profile)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--no-browser", action="store_true", help="skip the real-browser sessions")
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "runs"
        root.mkdir()
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
        browsers = None if args.no_browser else browser_sessions(root, args.sessions)
    print(f"{args.runs} runs; {platform.processor() or platform.machine()}; {date.today()}")
    print("| step | seconds |\n|---|---|")
    print(f"| list_runs, first (read every run folder) | {read_s:.2f} |")
    print(f"| list_runs after one run changed (row cache) | {changed_s:.2f} |")
    print(f"| {args.sessions} sessions listing at once after a change: slowest | {max(waits):.2f} |")
    print(f"| the same without the row cache and the shared build (baseline): slowest | {max(baseline):.2f} |")
    print(f"| ratio, baseline / now | {max(baseline) / max(waits):.0f}× |")
    print(f"| Runs page, first render in this process | {timings[0]:.2f} |")
    print(f"| Runs page, warm process, leaderboard not cached | {timings[2]:.2f} |")
    print(f"| Runs page, warm process, leaderboard cached | {min(timings[1], timings[3]):.2f} |")
    if browsers:
        print(f"\n| {args.sessions} Chromium sessions open at once | profiles | slowest s | median s "
              "| server CPU s | machine CPU s |\n|---|---|---:|---:|---:|---:|")
        for (case, one_profile), (slowest, median, server_cpu, machine_cpu) in browsers.items():
            what = {"baseline": "a one-line Streamlit page (baseline: the browsers' own cost)",
                    "cold": "the Runs page, cold server", "changed": "the Runs page after a run changed"}[case]
            print(f"| {what} | {'tabs of one' if one_profile else 'one each'} | {slowest:.2f} | {median:.2f} "
                  f"| {server_cpu:.1f} | {machine_cpu:.1f} |")


if __name__ == "__main__":
    main()
