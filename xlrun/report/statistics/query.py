"""``query``: the question-only paired t-test on seed-averaged values, with a sign-flip
randomization p (``p_rand``) beside it. It ignores seed variance and overstates certainty
when seeds differ (labelled as such)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from xlrun.report.inference import (
    Estimate,
    InferenceConfig,
    question_estimate,
    sign_flip_many,
)
from xlrun.report.statistics.base import ComparisonTest, register


class QuestionTest(ComparisonTest):
    """The paired t over questions of the seed-averaged deltas, and its sign-flip p."""

    summary = ("the question-only paired t-test on seed-averaged values (and a sign-flip p), "
               "which ignores seed variance and overstates certainty when seeds differ")
    columns = ("p_rand",)

    def estimate(self, A: np.ndarray, B: np.ndarray, paired: bool, diffs: np.ndarray,
                 config: InferenceConfig) -> Estimate:
        """:func:`~xlrun.report.inference.question_estimate` of ``diffs``."""
        return question_estimate(diffs, config.level)

    def add_columns(self, tests: pl.DataFrame, diffs: Sequence[np.ndarray],
                    config: InferenceConfig) -> pl.DataFrame:
        """``p_rand``: the sign-flip p of every cell × arm (one batch of flips for all)."""
        p_rand = sign_flip_many(diffs, config.n_permutations, config.seed)
        return tests.with_columns(pl.Series("p_rand", p_rand, dtype=pl.Float64))

    def model(self, level: int, fallback_cells: int, one_run_arms: bool) -> str:
        """The title's description of the test."""
        return (f"{level}% interval and p of the question-only paired t on seed-averaged "
                "values (ignores seed variance), sign-flip p_rand")

    def holm_of(self, one_run_arms: bool) -> str:
        """The question-level p."""
        return "question-level p"

    def one_run_note(self, who: str, cells: str, arm: str) -> str:
        """The question-only test runs anyway; say what it cannot see."""
        return (f"{who} has 1 run in {cells}: the question-only test of arm {arm!r} there "
                "cannot see seed variance")

    def meta(self, config: InferenceConfig) -> dict[str, Any]:
        """The sign flips' number and seed."""
        return {"n_permutations": config.n_permutations, "seed": config.seed}


QUERY = register(QuestionTest("query"))
