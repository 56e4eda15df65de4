"""The `fer` command: one parser, its commands registered by the module of each command group.

Building the parser imports no PyTorch, OpenCV or MediaPipe: the choices come from the registries'
catalog (fer.cli.catalog) and each command imports what it uses when it runs, so `fer --help` and
every `fer COMMAND --help` answer at once. Errors the user can fix print one line.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from fer.core.errors import UserError

# The modules of the command groups, in the order `fer --help` lists them.
GROUPS = ("train", "ensemble", "suite", "data", "sweep", "export", "predict", "video", "webcam", "queue", "dashboard")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree for `fer`, every command in it."""
    parser = argparse.ArgumentParser(prog="fer", description="fer-studio: FER2013 experiments from the shell.")
    sub = parser.add_subparsers(dest="command", required=True)
    for group in GROUPS:
        importlib.import_module(f"fer.cli.{group}").add_parsers(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the `fer` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UserError, ValueError, KeyError, OSError) as e:  # OSError: a folder given as a file, no permission …
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        message = " ".join(str(message).split())  # one line, whatever the error held
        print(f"fer {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
