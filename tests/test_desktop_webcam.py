"""`fer webcam`: the desktop window under a real X server (Xvfb), fed a video file of a real face.

The window is checked on the X server's own screen (a screen grab, not the program's word), `q` is a real
key press through the XTest extension, and every way the window cannot open says why in one line.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data as skdata

from fer.cli.main import main
from fer.inference.annotate import CLASS_COLOURS
from fer.inference.desktop import DesktopError, open_capture, opencv_gui, status_line, window_support
from fer.inference.video import VideoWriter

XVFB = shutil.which("Xvfb")
FER = str(Path(sys.executable).with_name("fer"))


def _clip(path: Path, frames: int = 45) -> Path:
    """A 640×480, 15 fps clip of the astronaut's real face (scikit-image's photo) drifting right."""
    head = cv2.resize(skdata.astronaut()[20:260, 110:340], (180, 180), interpolation=cv2.INTER_AREA)
    writer = VideoWriter(str(path), 640, 480, 15)
    for i in range(frames):
        canvas = np.full((480, 640, 3), 128, np.uint8)
        canvas[120:300, 40 + 6 * i:220 + 6 * i] = head
        writer.write(canvas, i / 15)
    writer.close()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return _clip(tmp_path_factory.mktemp("webcam") / "face.mp4")


# --- what it says when it cannot open a window ------------------------------------------------------------------

def test_a_headless_opencv_build_is_named_with_the_fix():
    reason = window_support(build_gui="NONE")
    assert "no window support" in reason and "opencv-contrib-python" in reason


def test_no_display_and_an_unreachable_display_say_so():
    assert "DISPLAY is not set" in window_support(build_gui="QT5", environ={}, platform="linux")
    assert "nothing answers at DISPLAY=:987" in window_support(build_gui="QT5", environ={"DISPLAY": ":987"},
                                                               platform="linux")
    assert window_support(build_gui="WIN32UI", environ={}, platform="win32") is None


def test_the_installed_opencv_can_open_windows():
    """The install keeps MediaPipe's GUI build of cv2 over the headless one (both share the folder)."""
    assert opencv_gui() != "NONE", cv2.getBuildInformation()[:2000]


def test_missing_camera_file_or_video_each_raise_one_line(tmp_path):
    with pytest.raises(DesktopError, match="no video file at"):
        open_capture(source=tmp_path / "absent.mp4")
    (tmp_path / "notes.mp4").write_text("secret notes, not a video\n")
    with pytest.raises(DesktopError, match="cannot read notes.mp4 as a video") as error:
        open_capture(source=tmp_path / "notes.mp4")
    assert "secret" not in str(error.value)
    with pytest.raises(DesktopError, match="no camera 57"):
        open_capture(camera=57)


def test_the_cli_refuses_without_a_display_before_loading_a_model(monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    if sys.platform.startswith("linux"):
        assert main(["webcam"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("fer webcam: error: ") and "\n" not in err


def test_status_line_writes_the_label_age_under_the_frame_rate():
    frame = np.zeros((480, 640, 3), np.uint8)
    status_line(frame, 12.5, 0.25)
    assert frame[:24].max() == 0 and frame[30:60].max() == 255  # below the FPS row, in white


# --- the window itself, under Xvfb ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def x_display():
    """A private X server (Xvfb picks a free display number and writes it to a pipe)."""
    if XVFB is None:
        if os.environ.get("CI"):
            pytest.fail("Xvfb is missing (.ci/run installs Debian's xvfb)")
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    read, write = os.pipe()
    server = subprocess.Popen([XVFB, "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        display = ":" + pipe.readline().strip()
    yield display
    server.terminate()
    server.wait(timeout=10)


def _grab(display: str) -> np.ndarray:
    from PIL import ImageGrab

    return np.asarray(ImageGrab.grab(xdisplay=display).convert("RGB"))


def _label_box_pixels(screen: np.ndarray) -> dict:
    """Pixels of the screen in each emotion's box colour (boxes and label plates are drawn in it, exactly)."""
    return {name: int((screen == colour).all(-1).sum()) for name, colour in CLASS_COLOURS.items()}


def _press(display: str, key: bytes) -> None:
    """A real key press on the X server (XTest), at the pointer, where the window sits."""
    x11, xtst = ctypes.cdll.LoadLibrary("libX11.so.6"), ctypes.cdll.LoadLibrary("libXtst.so.6")
    x11.XOpenDisplay.restype = ctypes.c_void_p
    x11.XStringToKeysym.restype = ctypes.c_ulong
    handle = ctypes.c_void_p(x11.XOpenDisplay(display.encode()))
    code = x11.XKeysymToKeycode(handle, ctypes.c_ulong(x11.XStringToKeysym(key)))
    xtst.XTestFakeMotionEvent(handle, -1, 100, 100, 0)
    xtst.XTestFakeKeyEvent(handle, code, True, 0)
    xtst.XTestFakeKeyEvent(handle, code, False, 0)
    x11.XFlush(handle)
    x11.XCloseDisplay(handle)


@pytest.mark.slow
def test_the_window_shows_a_labelled_face_and_q_closes_it(x_display, clip, mediapipe_models, tmp_path):
    env = {**os.environ, "DISPLAY": x_display}
    shot = tmp_path / "last.png"
    blank = _grab(x_display)
    window = subprocess.Popen([FER, "webcam", "--source", str(clip), "--loop", "--offline", "--screenshot", str(shot)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, best = time.monotonic() + 90, {}
        while time.monotonic() < deadline and window.poll() is None:
            best = _label_box_pixels(_grab(x_display))
            if max(best.values()) > 500:  # a box and its label plate, on the X server's screen
                break
            time.sleep(0.3)
        assert max(best.values()) > 500, (best, window.poll())
        label = max(best, key=best.get)
        assert label == "happy"  # the astronaut smiles; the shipped model says so on the photo too
        _press(x_display, b"q")
        out, err = window.communicate(timeout=30)
    finally:
        if window.poll() is None:
            window.kill()
    assert window.returncode == 0, err
    assert "closed with q" in out and "frames shown" in out, out
    assert max(_label_box_pixels(blank).values()) == 0  # nothing in those colours before the window
    # The saved frame is the last one shown, with the labels it carried then (the newest result may have
    # missed the face on that frame); the run says which, and the picture must agree.
    said = re.search(r"last frame: .* \((.*)\)$", out.strip()).group(1)
    last = _label_box_pixels(cv2.cvtColor(cv2.imread(str(shot)), cv2.COLOR_BGR2RGB))
    # (a few of the photo's own pixels can fall on a box colour; a box and its plate are over 1,000)
    if said == "no face":
        assert max(last.values()) < 100, last
    else:
        assert said in CLASS_COLOURS and last[said] > 500, (said, last)
        assert all(count < 100 for name, count in last.items() if name != said), last
