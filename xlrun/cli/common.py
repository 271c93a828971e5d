"""Shared CLI plumbing: error handling, the --db option, lazy choices, output helpers.

SQLAlchemy is imported only when an error needs explaining (deferred on purpose: the CLI
starts without it)."""

from __future__ import annotations

import functools
import signal
import sys
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from xlrun.errors import XlrunError
from xlrun.secrets import mask

F = TypeVar("F", bound=Callable[..., Any])


class LazyChoice(click.Choice):
    """A ``click.Choice`` whose choices (a registry's names, a schema's ``Literal``) are read
    when first needed, to check a value or show ``--help``: the module that holds them is not
    imported when the CLI starts."""

    def __init__(self, names: Callable[[], Iterable[str]]) -> None:
        self._names = names
        super().__init__((), case_sensitive=True)

    @property  # type: ignore[override]
    def choices(self) -> tuple[str, ...]:
        """The names, as they are now."""
        return tuple(self._names())

    @choices.setter
    def choices(self, value: Iterable[str]) -> None:
        """Ignored: the names come from ``names()``."""

class LazyHelpOption(click.Option):
    """A ``click.Option`` whose help text is written when ``--help`` shows it (from a
    registry's components), so that the registry is not imported when the CLI starts."""

    def __init__(self, *args: Any, help_text: Callable[[], str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._help_text = help_text

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        """The option's line in ``--help``, with the help text built now."""
        if self.help is None:
            self.help = self._help_text()
        return super().get_help_record(ctx)


db_option = click.option(
    "--db", "db_url", default=None, metavar="URL",
    help="Database URL (default: $XLRUN_DB, else sqlite:///xlrun.db). A plain path means SQLite.")


def handle_errors(fn: F) -> F:
    """Turn :class:`XlrunError` into ``Error: …`` on stderr and its exit code (2 = bad input);
    database faults a user can fix (read-only, corrupt, unopenable) become such errors too."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                from sqlalchemy.exc import DBAPIError

                if not isinstance(e, DBAPIError):
                    raise
                from xlrun.db.engine import explain_db_error

                known = explain_db_error(e)
                if known is None:
                    raise
                raise known from e
        except XlrunError as e:
            click.echo(f"Error: {printable(mask(str(e)))}", err=True)
            sys.exit(e.exit_code)
    return wrapper  # type: ignore[return-value]


def sigterm_as_interrupt() -> None:
    """Treat SIGTERM (SLURM time limit, preemption, ``kill``) like Ctrl-C: the current run goes
    back to the queue instead of being left ``running``."""
    def handler(signum: int, frame: object) -> NoReturn:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def console() -> Console:
    """A rich console on stdout (plain text when not a terminal)."""
    return Console(soft_wrap=False, width=200 if not sys.stdout.isatty() else None)


def printable(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (C0 but newline and tab, DEL,
    C1 — terminal escape sequences start with them) and invisible format characters
    (zero-width, bidi overrides) are shown as ``\\x1b``/``\\u202e`` escapes."""
    if text.isascii() and text.isprintable():
        return text
    out = []
    for c in text:
        if c in "\n\t":
            out.append(c)
        elif unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"):
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def print_table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a rich table (text is shown as given: ``[...]`` is not taken for markup; control
    and invisible characters as escapes, :func:`printable`)."""
    table = Table(title=escape(printable(title)) if title else title, show_lines=False)
    for c in columns:
        table.add_column(escape(printable(c)), overflow="fold")
    for r in rows:
        table.add_row(*["" if v is None else escape(printable(str(v))) for v in r])
    console().print(table)
