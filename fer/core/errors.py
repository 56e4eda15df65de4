"""Errors the user can fix (a missing file, no internet for a download): one line, never a traceback.

Value problems are ValueErrors (ConfigError, DataError, ImageError); the rest derive from `UserError`,
so the CLI can catch them all without importing the heavy modules that raise them.
"""


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message and exits with 2."""


class CheckpointError(ValueError):
    """A file that is not a usable fer-studio checkpoint; the message is one line saying why.

    Here (not in fer.runs.checkpoint, which needs PyTorch) so the ONNX path can catch it without PyTorch.
    """
