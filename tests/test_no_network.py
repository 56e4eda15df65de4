"""No surprise network: the main commands run with every socket refused, and only the documented
MediaPipe model download ever tries to connect (and then falls back to OpenCV's Haar cascade)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from skimage import data as skdata


# Loaded before anything else in the child (a sitecustomize on PYTHONPATH): every attempt to resolve a
# name or open a non-Unix socket is written to a log and refused.
GUARD = textwrap.dedent('''
    import os, socket
    LOG = os.environ["FER_NETWORK_LOG"]

    def _refuse(what, target):
        with open(LOG, "a") as fh:
            fh.write(f"{what} {target!r}\\n")
        raise OSError(101, f"network blocked by the test: {what} {target!r}")

    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        if self.family == getattr(socket, "AF_UNIX", None):
            return _connect(self, address)
        _refuse("connect", address)

    def connect_ex(self, address):
        if self.family == getattr(socket, "AF_UNIX", None):
            return _connect_ex(self, address)
        _refuse("connect", address)

    def getaddrinfo(host, *args, **kwargs):
        _refuse("resolve", host)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
''')

# The main commands, in one process (PyTorch is imported once): data, train, runs, eval, export, predict, video.
SCRIPT = textwrap.dedent('''
    import sys
    from fer.cli.main import main

    data, runs, work, overrides = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    sets = [a for o in overrides for a in ("--set", o)]
    steps = [
        ["data", "stats", data],
        ["train", "--quiet", *sets],
        ["runs", "--runs-dir", runs, "--format", "json"],
        ["eval", "offline", "--runs-dir", runs],
        ["export", "offline", "--runs-dir", runs, "--int8", "--data", data],
        ["predict", work + "/photo.jpg", "--run", "offline", "--runs-dir", runs, "--json"],
        ["video", work + "/clip.mp4", "--quiet", "--csv", work + "/rows.csv"],
        ["suite", "list"],
    ]
    for step in steps:
        code = main(step)
        print("STEP", step[0], code, flush=True)
        if code:
            sys.exit(f"fer {step[0]} failed with {code}")
''')


def _child(tmp_path, env_extra, *args):
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    log = tmp_path / "network.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")]),
           "FER_NETWORK_LOG": str(log), **env_extra}
    env.pop("FER_DATA", None)
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=600)
    return done, (log.read_text().splitlines() if log.exists() else [])


@pytest.mark.slow
def test_main_commands_never_touch_the_network(small_folder, tmp_path, mediapipe_models, tiny_model):
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    from fer.inference.video import VideoWriter
    clip = VideoWriter(tmp_path / "clip.mp4", 512, 512, 10)
    for i in range(6):
        clip.write(np.ascontiguousarray(skdata.astronaut()), i / 10)
    clip.close()
    runs = tmp_path / "runs"
    overrides = [f"data.path={small_folder}", f"runs_dir={runs}", "train.epochs=1", tiny_model, "name=offline"]
    script = tmp_path / "commands.py"
    script.write_text(SCRIPT)
    done, attempts = _child(tmp_path, {"FER_RUNS_DIR": str(runs)}, str(script), str(small_folder), str(runs),
                            str(tmp_path), *overrides)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert [line.split()[1] for line in done.stdout.splitlines() if line.startswith("STEP")] == ["data", "train", "runs",
        "eval", "export", "predict", "video", "suite"]
    assert attempts == [], f"network attempts: {attempts}"
    board = json.loads(done.stdout.split("STEP runs 0")[0].split("STEP train 0")[1])
    assert [row["label"] for row in board] == ["default", "offline"] and board[1]["test_acc"] is not None, board


@pytest.mark.slow
def test_the_model_download_is_the_one_exception_and_falls_back_offline(tmp_path):
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    done, attempts = _child(tmp_path, {"FER_MODEL_CACHE": str(tmp_path / "empty-cache")},
                            "-m", "fer", "predict", str(tmp_path / "photo.jpg"), "--backend", "torch")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Haar" in done.stderr and "1 face(s)" in done.stdout
    assert attempts and all(a.startswith("resolve") and "storage.googleapis.com" in a for a in attempts), attempts
