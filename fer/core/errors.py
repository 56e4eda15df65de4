"""Errors the user can fix (a missing file, no internet for a download): one line, never a traceback.

Value problems are ValueErrors (ConfigError, DataError, ImageError); the rest derive from `UserError`,
so the CLI can catch them all without importing the heavy modules that raise them.
"""


class UserError(Exception):
    """A problem the user can fix; the CLI prints its message and exits with 2."""
