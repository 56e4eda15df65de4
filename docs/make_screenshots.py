"""The README's and the docs' screenshots, from real FER2013: every dashboard page in headless Chromium.

    python docs/make_screenshots.py --data $FER_DATA [--runs-dir DIR]

It trains two short real runs and a three-trial sweep on the data (about ten minutes on a 2-core CPU;
with `--runs-dir`, runs already there are kept and not trained again), starts the dashboard on them and
opens every page as a visitor would: a photo and a video of scikit-image's astronaut on Predict and
Video, the same face as the webcam through Chromium's fake camera. The pictures go to
docs/screenshots/<page>.png. Nothing comes from a test fixture.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from skimage import data as skdata

from fer.core.serving import free_port, wait_until_healthy

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "docs" / "screenshots"
TOKEN = "screenshots-start-token-0123456789"
# page -> (url path, its title)
PAGES = {"overview": ("", "fer-studio"), "data": ("data", "Data"), "train": ("train", "Train"),
         "runs": ("runs", "Runs"), "studies": ("studies", "Studies"), "confusion": ("confusion", "Confusion"),
         "gradcam": ("gradcam", "Grad-CAM"), "sweeps": ("sweeps", "Sweeps"), "predict": ("predict", "Predict")}
# Two real runs to compare, then a small real sweep: the Runs, Confusion and Sweeps pages show them.
RUNS = {"quick-plain-cnn": ["--config", "quick", "--set", "name=quick-plain-cnn"],
        "quick-mini-xception": ["--config", "quick", "--model", "mini_xception", "--set", "name=quick-mini-xception",
                                "--set", "data.limit=2000", "--set", "train.epochs=3"]}
SWEEP = ["--config", "quick", "--space", str(ROOT / "configs" / "sweeps" / "plain_cnn_search.yaml"),
         "--name", "plain-cnn-search", "--trials", "3", "--set", "train.epochs=3",
         "--pruner", "none"]


def fer(*args: str, env: dict) -> None:
    """One `fer` command, as a user types it; its output shows while it works."""
    subprocess.run([sys.executable, "-m", "fer", *args], env=env, check=True, cwd=ROOT)


def make_runs(runs_dir: Path, env: dict) -> None:
    """The real runs the pages show (each trained only when the runs folder lacks it)."""
    present = {json.loads((p / "config.json").read_text())["name"] for p in runs_dir.glob("*")
               if (p / "best.pt").is_file()}
    for name, args in RUNS.items():
        if name not in present:
            fer("train", *args, "--runs-dir", str(runs_dir), "--quiet", env=env)
    if not any(runs_dir.glob("*plain-cnn-search*")):
        fer("sweep", *SWEEP, "--runs-dir", str(runs_dir), "--quiet", env=env)


@contextmanager
def dashboard(env: dict, cwd: Path) -> Iterator[str]:
    """`streamlit run dashboard/app.py` from `cwd` on a free local port; yields its URL."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"),
                               "--server.headless=true", f"--server.port={port}"], env=env, cwd=cwd,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", timeout_s=120)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=60)


def write_y4m(path: Path, rgb: np.ndarray, seconds: int = 4, fps: int = 30) -> Path:
    """An uncompressed 640×480 I420 y4m video of one image, as Chromium's fake camera reads it."""
    planes = cv2.cvtColor(cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (640, 480)),
                          cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420\n".encode())
        for _ in range(seconds * fps):
            fh.write(b"FRAME\n" + planes)
    return path


def write_clip(path: Path) -> Path:
    """Three seconds of the astronaut's face moving over a real photo (scikit-image's coffee cup)."""
    from fer.inference.video import VideoWriter

    head = cv2.cvtColor(cv2.resize(skdata.astronaut()[20:260, 110:340], (200, 200), interpolation=cv2.INTER_AREA),
                        cv2.COLOR_RGB2BGR)
    background = cv2.resize(cv2.cvtColor(skdata.coffee(), cv2.COLOR_RGB2BGR), (640, 480))
    writer = VideoWriter(path, 640, 480, 15)
    for i in range(45):
        frame = background.copy()
        frame[140:340, 60 + 8 * i:260 + 8 * i] = head
        writer.write(frame, i / 15)
    writer.close()
    return path


def settle(page, title: str, timeout_s: float = 120) -> None:
    """Wait for the page's title, then until Streamlit has run the script and drawn every element."""
    page.locator("h1", has_text=title).first.wait_for(timeout=timeout_s * 1000)
    deadline, quiet = time.time() + timeout_s, 0
    while time.time() < deadline and quiet < 3:  # three quiet checks in a row: nothing left to draw
        busy = page.locator("[data-testid='stStatusWidget'], [data-testid='stSkeleton']").count()
        quiet = 0 if busy else quiet + 1
        page.wait_for_timeout(500)
    page.wait_for_timeout(1500)  # charts draw after their element appears


def shoot(browser, url: str, name: str, title: str, act=None, full_page: bool = False) -> None:
    """Open one page, let `act` use it as a visitor would, and save the picture."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.goto(f"{url}?token={TOKEN}")
    settle(page, title)
    if act is not None:
        act(page)
        settle(page, title)
    if page.locator("[data-testid='stException']").count():
        raise SystemExit(f"the {title} page shows an exception: " + page.locator("[data-testid='stException']")
                         .first.inner_text()[:500])
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)
    context.close()
    print(f"docs/screenshots/{name}.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FER_DATA", "data"), help="fer2013.csv or image folders")
    parser.add_argument("--runs-dir", type=Path, help="keep the runs here (default: a temporary folder)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    work = Path(tempfile.mkdtemp(prefix="fer-screenshots-"))
    runs_dir = args.runs_dir or work / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "FER_DATA": str(args.data), "FER_RUNS_DIR": str(runs_dir), "FER_DASHBOARD_TOKEN": TOKEN}
    env.pop("FER_SETTINGS", None)  # the shipped settings: local only, with a start token
    make_runs(runs_dir, env)
    # The dashboard starts as after the README's set-up: data/ and checkpoints/ in its folder, the shipped settings.
    place = work / "project"
    place.mkdir()
    for name, target in {"data": Path(args.data), "checkpoints": runs_dir, ".streamlit": ROOT / ".streamlit"}.items():
        if target.is_file():  # fer2013.csv goes inside data/, as the README says
            (place / name).mkdir()
            name = f"{name}/{target.name}"
        (place / name).symlink_to(target.resolve(), target_is_directory=target.is_dir())
    visitor_env = {k: v for k, v in env.items() if k not in ("FER_DATA", "FER_RUNS_DIR")}
    photo, clip = work / "astronaut.jpg", write_clip(work / "face.mp4")
    cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    camera = write_y4m(work / "face.y4m", cv2.resize(skdata.astronaut()[0:380, 60:400], (640, 480)))
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    flags = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
             f"--use-file-for-fake-video-capture={camera}", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]

    def upload_photo(page) -> None:
        page.locator("input[type='file']").first.set_input_files(str(photo))
        page.get_by_text("#1:").first.wait_for(timeout=120_000)

    def upload_clip(page) -> None:
        page.locator("input[type='file']").first.set_input_files(str(clip))
        page.get_by_text("Faces tracked").first.wait_for(timeout=180_000)

    def start_camera(page) -> None:
        page.frame_locator("iframe[title*='streamlit_webrtc']").get_by_role("button", name="START").click(
            timeout=60_000)
        page.get_by_text("Now:").first.wait_for(timeout=120_000)
        page.wait_for_timeout(3000)  # a few seconds of labelled frames

    SHOTS.mkdir(parents=True, exist_ok=True)
    with dashboard(visitor_env, place) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=flags)
        for name, (path, title) in PAGES.items():
            shoot(browser, f"{url}/{path}", name, title)
        shoot(browser, f"{url}/predict", "predict-upload", "Predict", upload_photo, full_page=True)
        shoot(browser, f"{url}/video", "video-upload", "Video", upload_clip, full_page=True)
        shoot(browser, f"{url}/webcam", "webcam", "Webcam", start_camera)
        browser.close()
    shutil.rmtree(work, ignore_errors=True)  # the runs too, unless --runs-dir kept them elsewhere


if __name__ == "__main__":
    main()
