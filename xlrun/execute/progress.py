"""Progress reporting that the pipeline uses without knowing who is watching.

The CLI passes a :class:`RichProgress`; tests and library users get :class:`NullProgress`.
On a terminal :class:`RichProgress` draws bars; when its output is not a terminal (a log
file, a pipe, a batch job) it prints plain lines instead: each bar's position at most every
:data:`PLAIN_INTERVAL_S` seconds and when it ends.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as _P


class ProgressTask(Protocol):
    """One bar: advance it by a number of units."""

    def advance(self, n: int = 1) -> None:
        """Move forward ``n`` units."""

    def update(self, completed: int, total: int | None = None,
               description: str | None = None) -> None:
        """Set the position (and optionally the total and the label)."""


class Progress(Protocol):
    """Something that can show bars for long work."""

    def task(self, description: str, total: int | None) -> contextlib.AbstractContextManager[ProgressTask]:
        """A bar for ``total`` units, removed when the context exits."""

    def log(self, message: str) -> None:
        """A line of text for the user."""


class _NullTask:
    def advance(self, n: int = 1) -> None:
        pass

    def update(self, completed: int, total: int | None = None,
               description: str | None = None) -> None:
        pass


class NullProgress:
    """Shows nothing."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[ProgressTask]:
        yield _NullTask()

    def log(self, message: str) -> None:
        pass


PLAIN_INTERVAL_S = 10.0
"""Seconds between two plain progress lines of one bar (output that is not a terminal)."""


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}"


class _PlainTask:
    """A bar as plain lines: ``description: done/total (pct%) elapsed``, at most every
    :data:`PLAIN_INTERVAL_S` seconds, and a last line when it ends."""

    def __init__(self, write: Callable[[str], None], description: str, total: int | None,
                 interval_s: float = PLAIN_INTERVAL_S) -> None:
        self._write, self.description, self.total = write, description, total
        self.completed = 0
        self._interval = interval_s
        self._start = self._last = time.monotonic()
        self._shown: tuple[int, int | None] | None = None  # the position last written

    def _line(self) -> str:
        pos = f"{self.completed}" if not self.total else (
            f"{self.completed}/{self.total} ({100 * self.completed / self.total:.0f}%)")
        return f"{self.description}: {pos} {_clock(time.monotonic() - self._start)}"

    def _show(self) -> None:
        self._shown = (self.completed, self.total)
        self._write(self._line())

    def _maybe_write(self) -> None:
        now = time.monotonic()
        if now - self._last >= self._interval:
            self._last = now
            self._show()

    def advance(self, n: int = 1) -> None:
        self.completed += n
        self._maybe_write()

    def update(self, completed: int, total: int | None = None,
               description: str | None = None) -> None:
        self.completed = completed
        if total is not None:
            self.total = total
        if description is not None:
            self.description = description
        self._maybe_write()

    def finish(self) -> None:
        """The last line (only when the bar moved since the last line: an empty bar, or one
        whose position was just written, says nothing more)."""
        if self.completed and self._shown != (self.completed, self.total):
            self._show()


class _RichTask:
    def __init__(self, progress: Any, task_id: Any) -> None:
        self._p, self._id = progress, task_id

    def advance(self, n: int = 1) -> None:
        self._p.advance(self._id, n)

    def update(self, completed: int, total: int | None = None,
               description: str | None = None) -> None:
        kwargs = {"completed": completed}
        if total is not None:
            kwargs["total"] = total
        if description is not None:
            kwargs["description"] = description
        self._p.update(self._id, **kwargs)


class RichProgress:
    """Nested rich progress bars (runs, training steps, encoding) on stderr; plain lines
    when stderr is not a terminal (see the module doc)."""

    def __init__(self, console: Console | None = None) -> None:
        # log_path=False: a log line ends with the message, not with this file's line number
        self.console = console or Console(stderr=True, log_path=False)
        self.plain = not self.console.is_terminal
        self._progress = _P(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                            transient=False)

    def __enter__(self) -> RichProgress:
        if not self.plain:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.plain:
            self._progress.stop()

    def _plain_line(self, text: str) -> None:
        self.console.out(f"[{time.strftime('%H:%M:%S')}] {text}", highlight=False)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[ProgressTask]:
        if self.plain:
            plain = _PlainTask(self._plain_line, description, total)
            try:
                yield plain
            finally:
                plain.finish()
            return
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _RichTask(self._progress, task_id)
        finally:
            self._progress.remove_task(task_id)

    def log(self, message: str) -> None:
        if self.plain:
            self._plain_line(message)
        else:
            self._progress.console.log(message)
