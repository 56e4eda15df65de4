"""End to end in a real browser: Debian's chromium, driven by Playwright, against `streamlit run`.

Every page loads without an exception box, a photo upload labels the face, and the webcam page
receives a fake camera (a y4m video of a real face) and shows processed frames and a label.
Each page's screenshot goes to a temporary folder to look at when a test fails; the README's come from
real data through docs/make_screenshots.py, never from these fixtures.
"""
import os
import re
import shutil
import socket
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fer.config import load_config
from fer.training.fit import train

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
SHOTS = Path(os.environ.get("TMPDIR", "/tmp")) / "fer-e2e-screenshots"
# page -> (url path, its title)
PAGES = {"overview": ("", "fer-studio"), "data": ("data", "Data"), "train": ("train", "Train"),
         "runs": ("runs", "Runs"), "studies": ("studies", "Studies"), "confusion": ("confusion", "Confusion"), "gradcam": ("gradcam", "Grad-CAM"),
         "sweeps": ("sweeps", "Sweeps"),
         "predict": ("predict", "Predict"), "video": ("video", "Video"), "webcam": ("webcam", "Webcam")}

# CI installs chromium (.ci/run), so there a missing browser fails instead of skipping.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("mediapipe_models"),
              pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                 reason="Debian chromium is not installed (apt-get install chromium)")]


E2E_TOKEN = "e2e-start-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_y4m(path: Path, rgb: np.ndarray, seconds: int = 4, fps: int = 30) -> Path:
    """An uncompressed 640×480 I420 y4m video of one image, as Chrome's fake camera reads it."""
    frame = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), (640, 480))
    planes = cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as fh:
        fh.write(f"YUV4MPEG2 W640 H480 F{fps}:1 Ip A1:1 C420\n".encode())
        for _ in range(seconds * fps):
            fh.write(b"FRAME\n" + planes)
    return path


@pytest.fixture(scope="module")
def app_url(small_folder, tmp_path_factory, tiny_overrides, dashboard_server):
    runs = tmp_path_factory.mktemp("e2e_runs")
    train(load_config(None, tiny_overrides(small_folder, runs, 1, "name=e2e")))
    # The shipped settings: local, and the start token that `fer dashboard` prints goes with every URL.
    env = {**os.environ, "FER_RUNS_DIR": str(runs), "FER_DATA": str(small_folder), "FER_DASHBOARD_TOKEN": E2E_TOKEN}
    env.pop("FER_SETTINGS", None)
    with dashboard_server(env) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    y4m = write_y4m(tmp_path_factory.mktemp("video") / "face.y4m",
                    cv2.resize(skdata.astronaut()[0:380, 60:400], (640, 480)))
    args = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={y4m}", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield browser
        browser.close()


def _open(browser, url: str, token: str = E2E_TOKEN):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    page.goto(f"{url}?token={token}" if token else url)
    page.wait_for_selector("[data-testid='stApp']", timeout=60_000)
    return page


def _settle(page, title: str, timeout_s: float = 90) -> None:
    """Wait for the page's title, then until Streamlit has run the script and drawn every element."""
    page.locator("h1", has_text=title).first.wait_for(timeout=timeout_s * 1000)
    deadline = time.time() + timeout_s
    quiet = 0
    while time.time() < deadline and quiet < 3:  # three quiet checks in a row: nothing left to draw
        busy = page.locator("[data-testid='stStatusWidget'], [data-testid='stSkeleton']").count()
        quiet = 0 if busy else quiet + 1
        page.wait_for_timeout(400)


@pytest.mark.parametrize("name", list(PAGES))
def test_every_page_loads_without_an_exception(browser, app_url, name):
    path, title = PAGES[name]
    page = _open(browser, f"{app_url}/{path}")
    _settle(page, title)
    assert page.locator("[data-testid='stException']").count() == 0
    assert page.locator("[data-testid='stMain']").inner_text().strip()
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.context.close()


def test_the_pixel_histogram_draws_something(browser, app_url, tmp_path):
    page = _open(browser, f"{app_url}/data")
    _settle(page, "Data")
    charts = page.locator("[data-testid='stVegaLiteChart']")  # the class counts, then the pixel histogram
    charts.nth(1).scroll_into_view_if_needed()
    page.wait_for_timeout(1500)  # vega-embed draws after the element appears
    shot = tmp_path / "histogram.png"
    charts.nth(1).screenshot(path=str(shot))
    image = cv2.imread(str(shot))
    # Ink that is neither the white background nor the grey axes: the line's own colour.
    b, g, r = (image[..., i].astype(int) for i in range(3))
    coloured = ((np.abs(b - r) > 40) | (np.abs(g - r) > 40)).sum()
    assert coloured > 200, f"the histogram is empty ({coloured} coloured pixels)"
    page.context.close()


def test_photo_upload_shows_a_face_label(browser, app_url, tmp_path):
    photo = tmp_path / "astronaut.jpg"
    cv2.imwrite(str(photo), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    page = _open(browser, f"{app_url}/predict")
    _settle(page, "Predict")
    page.locator("input[type='file']").first.set_input_files(str(photo))
    page.get_by_text("#1:").first.wait_for(timeout=90_000)
    _settle(page, "Predict")
    text = page.locator("[data-testid='stMain']").inner_text()
    labels = re.findall(r"#(\d+): (angry|disgust|fear|happy|sad|surprise|neutral) \(\d+%\)", text)
    assert [n for n, _ in labels] == ["1"]  # exactly one face, with a label and a confidence
    assert page.locator("[data-testid='stException']").count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "predict-upload.png"), full_page=True)
    page.context.close()


def test_video_upload_plays_the_annotated_clip_in_the_browser(browser, app_url, tmp_path):
    from fer.inference.video import VideoWriter

    head = cv2.resize(skdata.astronaut()[20:260, 110:340], (200, 200), interpolation=cv2.INTER_AREA)
    writer = VideoWriter(tmp_path / "face.mp4", 640, 480, 15)
    for i in range(30):
        frame = np.full((480, 640, 3), 110, np.uint8)
        frame[140:340, 100 + 8 * i:300 + 8 * i] = head
        writer.write(frame, i / 15)
    writer.close()
    page = _open(browser, f"{app_url}/video")
    _settle(page, "Video")
    page.locator("input[type='file']").first.set_input_files(str(tmp_path / "face.mp4"))
    page.get_by_text("Faces tracked").first.wait_for(timeout=120_000)
    _settle(page, "Video")
    # The annotated H.264 MP4 decodes in Chromium: its metadata loads and it lasts the clip's two seconds.
    duration = page.locator("video").first.evaluate(
        "v => new Promise(done => v.readyState >= 1 ? done(v.duration) : "
        "v.addEventListener('loadedmetadata', () => done(v.duration)))")
    assert 1.8 < duration < 2.3
    assert page.locator("[data-testid='stException']").count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "video-upload.png"), full_page=True)
    page.context.close()


def test_webcam_streams_frames_and_shows_a_label(browser, app_url):
    page = _open(browser, f"{app_url}/webcam")
    _settle(page, "Webcam")
    frame = page.frame_locator("iframe[title*='streamlit_webrtc']")
    frame.get_by_role("button", name="START").click(timeout=60_000)
    page.get_by_text("Now:").first.wait_for(timeout=90_000)
    text = page.locator("[data-testid='stMain']").inner_text()
    frames = int(text.split("Frames processed: ")[1].split()[0])
    assert frames > 0 and "Now:" in text
    assert page.locator("[data-testid='stException']").count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "webcam.png"))
    page.context.close()
