"""The test every ``xlrun report --test`` is, and the ``TESTS`` registry.

A :class:`ComparisonTest` turns one cell's comparison of an arm with the baseline (questions ×
runs per arm, see :mod:`xlrun.report.compare`) into an
:class:`~xlrun.report.inference.Estimate` (delta, interval, p), may add columns computed over
all cells, and describes itself in the report's title and metadata. Each test is one module
of :mod:`xlrun.report.statistics`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from xlrun.registry import Registry
from xlrun.report.inference import Estimate, InferenceConfig


class ComparisonTest:
    """An inferential test of ``--compare`` named ``name`` (its ``--test`` value)."""

    summary: str = ""
    """One line for ``xlrun report --help``."""
    columns: tuple[str, ...] = ()
    """Columns the test adds after ``p`` (filled by :meth:`add_columns`)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def validate(self, config: InferenceConfig, key_path: str) -> None:
        """Checks of the test's settings (``--permutations``, ``--seed``) beyond the CLI's."""

    def estimate(self, A: np.ndarray, B: np.ndarray, paired: bool, diffs: np.ndarray,
                 config: InferenceConfig) -> Estimate:
        """The delta of arm ``A`` over baseline ``B`` (questions × runs each, same questions;
        runs paired by seed when ``paired``) with its interval and p; ``diffs`` are the
        per-question differences of the run means."""
        raise NotImplementedError

    def add_columns(self, tests: pl.DataFrame, diffs: Sequence[np.ndarray],
                    config: InferenceConfig) -> pl.DataFrame:
        """``tests`` (one row per cell × arm, in the order of ``diffs``) with :attr:`columns`."""
        return tests

    def model(self, level: int, fallback_cells: int, one_run_arms: bool) -> str:
        """What the intervals and p come from, for the title (``level`` in percent)."""
        raise NotImplementedError

    def holm_of(self, one_run_arms: bool) -> str:
        """What Holm's correction runs over, for the title (``one_run_arms``: some arm has a
        single run in some cell)."""
        return "p"

    def one_run_note(self, who: str, cells: str, arm: str) -> str:
        """The note for cells where ``who`` (an arm or the baseline) has a single run."""
        return (f"{who} has 1 run in {cells}: the test of arm {arm!r} there cannot see seed "
                "variance")

    def meta(self, config: InferenceConfig) -> dict[str, Any]:
        """The test's settings for the report's metadata (beyond ``test`` and ``level``)."""
        return {}


TESTS: Registry[ComparisonTest] = Registry("report test")
"""``xlrun report --test`` → :class:`ComparisonTest` (each registered by its module here)."""


def register(test: ComparisonTest) -> ComparisonTest:
    """Register ``test`` under its name; returns it."""
    TESTS.add(test.name, test)
    return test
