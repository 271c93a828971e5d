"""Progress reporting that the pipeline uses without knowing who is watching.

The CLI passes a :class:`RichProgress`; tests and library users get :class:`NullProgress`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
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
    """Nested rich progress bars (runs, training steps, encoding) on stderr."""

    def __init__(self) -> None:
        self.console = Console(stderr=True)
        self._progress = _P(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), TimeRemainingColumn(), console=self.console,
                            transient=False)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[ProgressTask]:
        task_id = self._progress.add_task(description, total=total)
        try:
            yield _RichTask(self._progress, task_id)
        finally:
            self._progress.remove_task(task_id)

    def log(self, message: str) -> None:
        # as given: a run's error text such as "[/x]" is no markup (rich raised on it)
        self._progress.console.log(message, markup=False)
