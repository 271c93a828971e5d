"""Errors a user can act on.

Every error that reaches the CLI is an :class:`XlrunError`; the CLI prints its message and
exits with its ``exit_code`` (2 for bad input, 1 for failures at run time).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class XlrunError(Exception):
    """Base class of errors whose message is meant for the user."""

    exit_code = 1


class UsageError(XlrunError):
    """Bad input from the user (a spec, a flag, a language code): exit code 2."""

    exit_code = 2


def _fmt_allowed(allowed: Iterable[Any] | str | None) -> str:
    if allowed is None:
        return ""
    if isinstance(allowed, str):
        return allowed
    items = [repr(a) if not isinstance(a, str) else a for a in allowed]
    return "one of: " + ", ".join(items)


class SpecError(UsageError):
    """A spec value is wrong. Names the key path, the bad value and what is allowed."""

    def __init__(self, path: str, message: str, *, value: Any = None,
                 allowed: Iterable[Any] | str | None = None, has_value: bool = True) -> None:
        self.path = path
        self.value = value
        self.allowed = _fmt_allowed(allowed)
        parts = [f"spec error at '{path}': {message}"]
        if has_value:
            parts.append(f"got {value!r}")
        if self.allowed:
            parts.append(f"allowed: {self.allowed}")
        super().__init__("; ".join(parts))


class UnknownLanguageError(UsageError):
    """A language code xlrun does not know; the message lists the nearest known codes."""

    def __init__(self, code: str, suggestions: list[str], where: str | None = None) -> None:
        self.code = code
        self.suggestions = suggestions
        self.where = where
        loc = f" at '{where}'" if where else ""
        hint = f"; nearest known codes: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"unknown language code{loc}: {code!r}{hint}")


class TrainingDiverged(XlrunError):
    """The loss became NaN or infinite."""


class DatabaseUnavailable(XlrunError):
    """The database cannot be reached."""


class WriteFailed(XlrunError):
    """A file xlrun writes while running could not be written (a full disk, a folder that
    became read-only); the message names the file and the cause."""
