"""User-facing errors.

Everything a user can fix (a bad file, a bad config key, a bad flag) is raised as a
:class:`UserInputError` subclass whose message is one line that names the file, row or
column or key and says what to do. The CLI prints that line and exits with status 2,
without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserInputError(Exception):
    """An error the user can fix; its message is shown as-is on one line."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class DataError(UserInputError):
    """The bar file cannot be turned into valid bars."""

    def __init__(self, path: str | Path | None, message: str) -> None:
        prefix = f"{path}: " if path is not None else ""
        super().__init__(prefix + message)


class ConfigError(UserInputError):
    """A configuration file or value is invalid."""
