"""The README and every page in docs/ work: they render as CommonMark meant (no heading swallowed by a
code block, every fence closed), their relative links and images resolve, the Python snippets run for
real, every `fer` command line parses with the real CLI and names files that exist, the `make` targets
are there, the configuration reference matches the config fields, and `mkdocs build --strict` builds."""
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from markdown_it import MarkdownIt
from skimage import data as skdata

from fer.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MARKDOWN = MarkdownIt("commonmark").enable("table")


def _fences(path: Path) -> list:
    """(language, code) of every fenced block, as a CommonMark parser reads the file."""
    return [(t.info.split()[0] if t.info.strip() else "", t.content)
            for t in MARKDOWN.parse(path.read_text()) if t.type == "fence"]


BLOCKS = [block for path in DOCS for block in _fences(path)]
PYTHON = [code for lang, code in BLOCKS if lang == "python"]
COMMANDS = sorted({part.strip() for lang, code in BLOCKS if lang == "bash"
                   for line in code.replace("\\\n", " ").splitlines() for part in line.split(" #")[0].split(";")
                   if re.match(r"^(\w+=\S+ )*fer ", part.strip())})


def _naive_fences(text: str) -> list:
    """(first line, last line) of each block as an author means it: a ``` line opens, the next ``` line closes."""
    spans, start = [], None
    for number, line in enumerate(text.splitlines()):
        if line.lstrip().startswith("```"):
            if start is None:
                start = number
            else:
                spans.append((start, number))
                start = None
    if start is not None:
        spans.append((start, None))  # never closed
    return spans


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_every_page_renders_as_written(path):
    text = path.read_text()
    parsed = [tuple(t.map) for t in MARKDOWN.parse(text) if t.type == "fence"]
    rendered = [(start, end - 1) for start, end in parsed]
    # A closing fence with text after it (``` then words) is no closing fence: everything up to the next
    # ``` line, headings included, renders as code. The parser's blocks must be the author's.
    assert rendered == _naive_fences(text), f"{path.name}: a code fence is not closed where it seems to be"
    for start, end in parsed:
        closing = text.splitlines()[end - 1].strip() if end - 1 < len(text.splitlines()) else ""
        assert re.fullmatch(r"`{3,}", closing), f"{path.name}:{start + 1}: the block opened here is never closed"


def test_a_fence_closed_with_text_after_it_is_caught():
    broken = "# Title\n\n```bash\nmake test\n``` then words\n\n## Swallowed\n\n```bash\nfer runs\n```\n"
    rendered = [(t.map[0], t.map[1] - 1) for t in MARKDOWN.parse(broken) if t.type == "fence"]
    assert rendered != _naive_fences(broken)  # the check above fails on the README's old mistake


def _links(path: Path) -> list:
    """Every link and image target in the file."""
    found = []
    for token in MARKDOWN.parse(path.read_text()):
        for child in token.children or ():
            if child.type == "link_open":
                found.append(child.attrs["href"])
            elif child.type == "image":
                found.append(child.attrs["src"])
    return found


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_relative_links_and_images_resolve(path):
    relative = [link for link in _links(path) if not re.match(r"^(https?:|mailto:|#)", link)]
    missing = [link for link in relative if not (path.parent / link.split("#")[0]).exists()]
    assert not missing, f"{path.name}: {missing}"


def test_the_readme_is_a_front_door():
    assert len(README.splitlines()) <= 250
    assert re.search(r"^#{2,3} .*GPU", README, re.M), "one section answers: how do I train on my GPU?"
    assert "kaggle.com" in README and "source .venv/bin/activate" in README and "pip install" in README


@pytest.mark.parametrize("path", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_pages_speak_to_users(path):
    text = path.read_text()
    for phrase in ("../shared", "this issue", "our users", "lent to", "/work/", "our machines"):
        assert phrase not in text, f"{path.name}: {phrase!r}"


def test_the_configuration_reference_matches_the_config_fields():
    from fer.training.reference import with_reference

    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == with_reference(page), "run: python -m fer.training.reference docs/configuration.md"


def test_the_documentation_site_builds_strictly(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or "mkdocs"
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


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


def test_the_docs_have_snippets_to_check():
    assert len(PYTHON) >= 3 and len(COMMANDS) >= 60


@pytest.mark.usefixtures("mediapipe_models")
@pytest.mark.parametrize("code", PYTHON, ids=[f"python-{i}" for i in range(len(PYTHON))])
def test_python_snippet_runs(code, readme_folder):
    exec(compile(code, "docs", "exec"), {"__name__": "docs"})


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
    args = build_parser().parse_args(argv)  # a wrong command or flag exits here
    for value in vars(args).values():
        if isinstance(value, Path) and value.suffix in (".yaml", ".json"):
            assert (ROOT / value).is_file(), f"{command}: {value} does not exist"


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in re.findall(r"`make ([\w-]+)`", README) + ["dashboard", "test", "test-fast"]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"make {target}"
    assert os.access(ROOT / ".ci" / "run", os.R_OK)


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
