"""The desktop webcam window (`fer webcam`): OpenCV's own window on a local camera or a video file.

Studies A and C ended with this demo (`cv2.VideoCapture`, a labelled box per face, `q` to quit). Here it runs
through the browser page's live pipeline (`fer.inference.live.LiveAnalyzer`): this loop only reads frames and
shows them; the model works on the newest frame on its own thread, so a slow CPU slows the labels, never the
video. A video file plays at its own frame rate, as a camera would deliver it.

`opencv-python-headless` has no window support and shares the `cv2` folder with the `opencv-contrib-python`
that MediaPipe brings, so whichever was installed last decides: `window_support()` checks the build that is
actually imported, and the display, before a window is opened (Qt aborts the process on an unreachable one).
"""
from __future__ import annotations

import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np

from fer.core.errors import UserError

QUIT_KEYS = (ord("q"), ord("Q"), 27)  # q or Esc
WINDOW_TITLE = "fer webcam (q quits)"


class DesktopError(UserError):
    """No window, camera or video to show: the message says which and what helps."""


def opencv_gui() -> str:
    """The GUI backend of the imported OpenCV build ("QT5", "GTK3", "WIN32UI", ...), or "NONE"."""
    match = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    return match.group(1).upper() if match else "NONE"


def _display_reachable(display: str) -> bool:
    """Whether an X server answers at `display` (":0", "localhost:10.0", ...)."""
    host, _, number = display.rpartition(":")
    number = number.split(".")[0]
    if not number.isdigit():
        return False
    if host in ("", "unix"):
        return Path(f"/tmp/.X11-unix/X{number}").exists()
    try:
        with socket.create_connection((host, 6000 + int(number)), timeout=2):
            return True
    except OSError:
        return False


def window_support(build_gui: Optional[str] = None, environ=os.environ, platform: str = sys.platform) -> Optional[str]:
    """Why this machine cannot open an OpenCV window, or None when it can."""
    gui = build_gui or opencv_gui()
    if gui == "NONE":
        return ("this OpenCV build has no window support (opencv-python-headless provides the cv2 module here); "
                "`pip install --force-reinstall --no-deps 'opencv-contrib-python<5'` installs one that has")
    if platform.startswith("linux"):
        display = environ.get("DISPLAY", "")
        if not display:
            return ("no display: DISPLAY is not set (run it on a desktop, over `ssh -X`, or under `xvfb-run`; "
                    "the dashboard's Webcam page works in a browser instead)")
        if not _display_reachable(display):
            return f"no display: nothing answers at DISPLAY={display[:40]}"
    return None


def open_capture(camera: int = 0, source: Optional[Path] = None) -> "cv2.VideoCapture":
    """A capture on the video file `source`, else on local camera number `camera`; DesktopError when neither opens."""
    if source is not None:
        if not Path(source).is_file():
            raise DesktopError(f"no video file at {source}")
        capture = cv2.VideoCapture(str(source))
        if not capture.isOpened():
            raise DesktopError(f"OpenCV cannot read {Path(source).name} as a video")
        return capture
    capture = cv2.VideoCapture(camera)
    if not capture.isOpened():
        raise DesktopError(f"no camera {camera}: OpenCV could not open it (none attached, or another program "
                           "holds it); try --camera 1, or --source FILE for a video file")
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
    return capture


def status_line(rgb: np.ndarray, model_fps: float, label_age_s: Optional[float]) -> np.ndarray:
    """`rgb` with the model's rate and the labels' age written under the frame rate (in place)."""
    scale = max(0.4, min(rgb.shape[:2]) / 640)
    age = "labels: waiting for the model" if label_age_s is None else f"labels {label_age_s:.2f} s old"
    text = f"{age} | model {model_fps:.1f} frames/s | q quits"
    origin = (8, int(52 * scale))  # below the FPS that `annotate` writes
    thick = max(1, int(round(2 * scale)))
    cv2.putText(rgb, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(rgb, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, (255, 255, 255), thick, cv2.LINE_AA)
    return rgb


@dataclass
class WindowReport:
    """What a window session showed."""

    frames_shown: int
    frames_analysed: int
    frames_dropped: int
    seconds: float
    quit_by_key: bool
    last_labels: Tuple[str, ...] = ()  # the labels drawn on the last frame shown, left to right

    @property
    def fps(self) -> float:
        return self.frames_shown / self.seconds if self.seconds > 0 else 0.0


def _show(title: str, rgb: np.ndarray) -> int:
    """Show one frame; the key pressed meanwhile (-1 for none)."""
    cv2.imshow(title, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return cv2.waitKey(1)


def run_window(analyzer, capture, *, from_file: bool, max_frames: Optional[int] = None, loop: bool = False,
               screenshot: Optional[Path] = None, title: str = WINDOW_TITLE) -> WindowReport:
    """Show the capture's frames, labelled by `analyzer`, until q/Esc, the window closes or the frames end."""
    source_fps = capture.get(cv2.CAP_PROP_FPS) if from_file else 0.0
    period = 1.0 / source_fps if 0 < source_fps <= 240 else 0.0  # a file plays at its own rate
    cv2.namedWindow(title, cv2.WINDOW_AUTOSIZE)
    start, shown, quit_by_key, last = time.monotonic(), 0, False, None
    try:
        while max_frames is None or shown < max_frames:
            ok, bgr = capture.read()
            if not ok and from_file and loop and shown:
                capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, bgr = capture.read()
            if not ok:
                break
            if period:
                time.sleep(max(0.0, start + shown * period - time.monotonic()))
            last = analyzer.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            status_line(last, analyzer.inference_fps(), analyzer.label_age_s())
            key = _show(title, last)
            shown += 1
            if key & 0xFF in QUIT_KEYS and key != -1:
                quit_by_key = True
                break
            if cv2.getWindowProperty(title, cv2.WND_PROP_VISIBLE) < 1:  # closed with the mouse
                break
    finally:
        cv2.destroyWindow(title)
        cv2.waitKey(1)  # lets the GUI thread actually close it
    if screenshot is not None and last is not None:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(screenshot), cv2.cvtColor(last, cv2.COLOR_RGB2BGR))
    drawn = analyzer.drawn.faces if analyzer.drawn is not None and last is not None else []
    labels = tuple(face.label for face in sorted(drawn, key=lambda face: face.box[0]))
    return WindowReport(shown, analyzer.inferences, analyzer.dropped, time.monotonic() - start, quit_by_key, labels)


if __name__ == "__main__":  # `python -m fer.inference.desktop [--build]`: exit 0 when a window can open here
    build_only = "--build" in sys.argv[1:]  # the OpenCV build alone, whatever the display (the Makefile's check)
    reason = window_support(environ={"DISPLAY": ""}, platform="any") if build_only else window_support()
    print(reason or f"OpenCV {cv2.__version__} can open windows here ({opencv_gui()})")
    sys.exit(1 if reason else 0)
