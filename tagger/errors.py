"""User-facing errors.

Anything raised as a :class:`TaggerError` is a user mistake or bad input: the CLI prints
its message on one line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import os


class TaggerError(Exception):
    """An error caused by user input (bad file, bad option, bad model directory)."""

    exit_code = 2


class InputError(TaggerError):
    """Bad content in an input file, located by file and (1-based) line number."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, message: str):
        self.path = None if path is None else str(path)
        self.line = line
        self.message = message
        where = self.path or "<input>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class ModelError(TaggerError):
    """A model directory that is missing, corrupt, of the wrong kind or unsafe."""
