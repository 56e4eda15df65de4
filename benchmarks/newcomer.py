"""A newcomer's first hour, timed: the README's own commands on a fresh clone.

1. set-up: `make setup` (what `make dashboard` and `make test` do first: a new .venv, everything installed);
2. a first photo prediction: `.venv/bin/fer predict photo.jpg` (scikit-image's astronaut);
3. a first training job from the browser: `fer dashboard`, then in Chromium the Train page, "Start from"
   the quick preset, Launch; timed until the run folder exists in state queued (the worker takes it).

The goals: a first prediction within 5 minutes of the set-up, a first training job within 10.

    python benchmarks/newcomer.py [--repo .] [--data $FER_DATA]
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date
from pathlib import Path

import cv2
from skimage import data as skdata


def timed(command, cwd: Path, env: dict) -> float:
    """Seconds `command` took; it must succeed."""
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_job_from_the_browser(clone: Path, env: dict, runs: Path) -> float:
    """Seconds from starting the dashboard to a queued run launched from the Train form with the quick preset."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    start = time.perf_counter()
    server = subprocess.Popen([str(clone / ".venv/bin/fer"), "dashboard", "--port", str(port), "--no-token"],
                              cwd=clone, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium")
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/train")
            page.get_by_text("Start from").first.wait_for(timeout=300_000)
            page.get_by_role("combobox", name="Start from").click()  # Streamlit's selectbox: open it, then pick the option
            page.get_by_role("option", name="A quick try").click()
            page.wait_for_timeout(1500)
            page.get_by_role("button", name="Launch training").click()
            while not any((json.loads((d / "status.json").read_text()).get("state") in ("queued", "running"))
                          for d in runs.glob("*/") if (d / "status.json").is_file()):
                if time.perf_counter() - start > 1200:
                    raise TimeoutError("no run was queued within 20 minutes")
                time.sleep(0.5)
            browser.close()
        return time.perf_counter() - start
    finally:
        server.terminate()
        server.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--data", default=os.environ.get("FER_DATA", "data"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fer-newcomer-"))
    clone = work / "fer-studio"
    subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
    runs = work / "runs"
    env = {**os.environ, "FER_DATA": str(Path(args.data).resolve()), "FER_RUNS_DIR": str(runs)}
    env.pop("VIRTUAL_ENV", None)
    setup = timed(["make", "setup"], clone, env)
    photo = clone / "photo.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    predict = timed([str(clone / ".venv/bin/fer"), "predict", "photo.jpg"], clone, env)
    job = first_job_from_the_browser(clone, env, runs)
    print(f"fresh clone of {args.repo}, {os.cpu_count()} cores, {date.today()}")
    print("| step | seconds | goal |\n|---|---:|---|")
    print(f"| set-up (`make setup`: a new .venv, everything installed) | {setup:.0f} | – |")
    print(f"| first photo prediction (`fer predict photo.jpg`, cold) | {predict:.1f} | ≤ 300 after set-up |")
    print(f"| first training job queued from the Train form in Chromium | {job:.1f} | ≤ 600 after set-up |")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
