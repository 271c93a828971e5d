"""The executor every executor is, and the ``EXECUTORS`` registry.

An executor takes a submission's queued runs somewhere to execute (``executor.kind``, or
``xlrun submit --executor``). Each is one module of :mod:`xlrun.execute.executors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine

from xlrun.execute.progress import Progress
from xlrun.execute.run_context import RunOutcome
from xlrun.registry import Registry
from xlrun.spec.schema import ExecutorSection


@dataclass(frozen=True)
class Dispatch:
    """What an executor did with the runs it was given.

    Attributes:
        message: one line for the user (``executed 4 runs: 4 done, 0 failed``).
        outcomes: the runs executed here, in order (empty when they run elsewhere).
    """

    message: str
    outcomes: tuple[RunOutcome, ...] = ()

    @property
    def failed(self) -> list[RunOutcome]:
        """The outcomes of runs that failed."""
        return [o for o in self.outcomes if o.status == "failed"]


class Executor:
    """Base class: build from the spec's ``[executor]`` table, then :meth:`dispatch` runs."""

    runs_here: ClassVar[bool] = False
    """The runs execute in this process (the CLI then shows progress and turns SIGTERM into
    an interrupt that puts the current run back in the queue)."""

    @classmethod
    def validate(cls, section: ExecutorSection, key_path: str) -> None:
        """Checks of ``[executor]`` this executor needs beyond the loader's own (none)."""

    @classmethod
    def from_spec(cls, section: ExecutorSection, *, db_url: str, device: str, folder: Path,
                  **overrides: Any) -> Executor:
        """An executor for ``section``; ``overrides`` are command-line values (``None``:
        not given) that replace the section's."""
        raise NotImplementedError

    def dispatch(self, engine: Engine, run_ids: Sequence[int], progress: Progress) -> Dispatch:
        """Execute (or send off) the queued runs among ``run_ids``."""
        raise NotImplementedError


EXECUTORS: Registry[type[Executor]] = Registry("executor")
"""``executor.kind`` → :class:`Executor` class (each registered by its module here)."""
