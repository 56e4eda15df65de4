"""Run names and tags are plain text: printable characters only, capped lengths, no comma in a tag.

Control characters (Unicode category Cc), format characters (Cf: zero-width spaces, bidi overrides that
make a name read backwards), line breaks and unassigned code points are refused, so a name shows the
same everywhere and no name can hide or fake another. Pages render names as text, never as Markdown.
"""
from __future__ import annotations

import unicodedata
from typing import Iterable, List

MAX_NAME_CHARS = 200
MAX_TAG_CHARS = 64
MAX_TAGS = 32


def _problem(text: str) -> str:
    for ch in text:
        category = unicodedata.category(ch)
        if category in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            return f"the invisible or control character U+{ord(ch):04X}"
    return ""


def check_name(name: str) -> str:
    """A run name, stripped; ValueError when it is empty, too long or holds control or format characters."""
    if not isinstance(name, str):
        raise ValueError("a run name must be text")
    name = name.strip()
    if not name:
        raise ValueError("a run name cannot be empty")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"a run name is at most {MAX_NAME_CHARS} characters (this one has {len(name):,})")
    if (problem := _problem(name)):
        raise ValueError(f"a run name holds only printable characters, not {problem}")
    return name


def check_tags(tags: Iterable[str]) -> List[str]:
    """Tags, stripped, blanks dropped; ValueError for a comma, a tag over 64 characters, more than 32, or controls."""
    out = []
    for tag in tags:
        if not isinstance(tag, str):
            raise ValueError("a tag must be text")
        tag = tag.strip()
        if not tag:
            continue
        if "," in tag:
            raise ValueError(f"a tag cannot hold a comma (tags are listed comma-separated): {tag[:40]!r}")
        if len(tag) > MAX_TAG_CHARS:
            raise ValueError(f"a tag is at most {MAX_TAG_CHARS} characters")
        if (problem := _problem(tag)):
            raise ValueError(f"a tag holds only printable characters, not {problem}")
        out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValueError(f"a run has at most {MAX_TAGS} tags ({len(out)} given)")
    return out
