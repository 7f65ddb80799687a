"""Errors a user can fix: one clear message naming what is wrong and where, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A bad template, flag, payload or file. The CLI prints `error: <message>` and exits with `exit_code`."""

    exit_code = 2

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
