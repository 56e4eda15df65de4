"""The `fer` command: one parser, its commands registered by the module of each command group.

The light commands (`runs`, `cancel`, `queue`, `worker`: fer.cli.queue) import no PyTorch, so they
answer at once; the others (fer.cli.train, suite, data, sweep, predict, export, video) are imported
only when one of them, or the full help, is asked for. Errors the user can fix print one line.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from fer.cli import dashboard, queue
from fer.core.errors import UserError

LIGHT_COMMANDS = ("runs", "cancel", "worker", "queue", "dashboard")
# The modules of the other command groups, in the order `fer --help` lists them.
HEAVY_GROUPS = ("train", "suite", "data", "sweep", "export", "predict", "video")


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The argparse tree for `fer`; for a light `command`, only the light commands (no PyTorch import)."""
    parser = argparse.ArgumentParser(prog="fer", description="fer-studio: FER2013 experiments from the shell.")
    sub = parser.add_subparsers(dest="command", required=True)
    if command not in LIGHT_COMMANDS:
        # PyTorch, MediaPipe and grad-cam take seconds to import: only the commands that use them load them.
        for group in HEAVY_GROUPS:
            importlib.import_module(f"fer.cli.{group}").add_parsers(sub)
    queue.add_parsers(sub)
    dashboard.add_parsers(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the `fer` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
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
