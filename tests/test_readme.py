"""Every snippet in the README works: the Python ones run for real, every `fer` command line parses
with the real CLI, the files they name exist, and the `make` targets are there."""
import os
import re
import shlex
from pathlib import Path

import cv2
import pytest
from skimage import data as skdata

from fer.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = [part.strip() for lang, code in BLOCKS if lang == "bash"
            for line in code.replace("\\\n", " ").splitlines() for part in line.split(" #")[0].split(";")
            if re.match(r"^(\w+=\S+ )*fer ", part.strip())]


@pytest.fixture
def readme_folder(tmp_path, small_folder, monkeypatch):
    """A working folder as the README assumes: data/ holds FER2013, configs/ the shipped configs, a photo, a clip."""
    (tmp_path / "data").symlink_to(small_folder)
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    cv2.imwrite(str(tmp_path / "photo.jpg"), cv2.cvtColor(skdata.astronaut(), cv2.COLOR_RGB2BGR))
    from fer.inference.video import VideoWriter
    clip = VideoWriter(tmp_path / "clip.mp4", 512, 512, 10)  # a second of the same real face
    for i in range(10):
        clip.write(skdata.astronaut(), i / 10)
    clip.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FER_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path


def test_the_readme_has_snippets_to_check():
    assert len(PYTHON) >= 2 and len(COMMANDS) >= 25


@pytest.mark.usefixtures("mediapipe_models")
@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_snippet_runs(code, readme_folder):
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})


def _concrete(command: str) -> list:
    """A README command line with its placeholders filled in and optional [parts] taken (first choice)."""
    command = re.sub(r"^(\w+=\S+ )+", "", command)  # FER_DATA=... in front
    command = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split("|")[0], command)
    command = re.sub(r"(--\w[\w-]*) (\w+)\|\S+", r"\1 \2", command)  # --format table|csv|json
    for placeholder, value in {"RUN": "some-run", "PATH": "data", "N": "2", "key=value": "train.epochs=1",
                               "*.jpg": "photo.jpg"}.items():
        command = re.sub(rf"(?<![\w.-]){re.escape(placeholder)}(?![\w.-])", value, command)
    return shlex.split(command)[1:]


@pytest.mark.parametrize("command", COMMANDS)
def test_cli_line_parses_and_names_real_files(command):
    argv = _concrete(command)
    args = build_parser(argv[0]).parse_args(argv)  # a wrong command or flag exits here
    for value in vars(args).values():
        if isinstance(value, Path) and value.suffix in (".yaml", ".json"):
            assert (ROOT / value).is_file(), f"{command}: {value} does not exist"


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"`make ([\w-]+)`", README) + ["dashboard", "test", "test-fast"]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"make {target}"
    assert os.access(ROOT / ".ci" / "run", os.R_OK)


DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# A dotted fer name in prose or code (`fer.runs.store.read_status`), not the tail of another word (transfer.x).
FER_NAME = re.compile(r"(?<![\w./-])fer(?:\.[A-Za-z_]\w*)+")


def _resolves(name: str) -> bool:
    """Whether `fer.a.b.c` is a module, or an attribute reached from the longest importable module."""
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_every_fer_name_in_the_readme_and_docs_imports():
    names = {(path.name, name) for path in DOCS for name in FER_NAME.findall(path.read_text())}
    assert len(names) >= 10  # the docs do name the code
    broken = sorted(f"{doc}: {name}" for doc, name in names if not _resolves(name))
    assert not broken, broken
