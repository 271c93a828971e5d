"""``seed`` (the default): one model with seeds and questions random, crossed
(:mod:`xlrun.report.inference`); an arm with one run gets no test."""

from __future__ import annotations

import numpy as np

from xlrun.report.inference import Estimate, InferenceConfig, delta_estimate
from xlrun.report.statistics.base import ComparisonTest, register


class SeedModelTest(ComparisonTest):
    """The crossed seeds × questions model: interval and p from one t (Satterthwaite df)."""

    summary = ("intervals and p from one model with seeds and questions random (an arm with "
               "one run gets no test)")

    def estimate(self, A: np.ndarray, B: np.ndarray, paired: bool, diffs: np.ndarray,
                 config: InferenceConfig) -> Estimate:
        """:func:`~xlrun.report.inference.delta_estimate`."""
        return delta_estimate(A, B, paired, config.level)

    def model(self, level: int, fallback_cells: int, one_run_arms: bool) -> str:
        """The title's description of the model."""
        text = (f"{level}% interval and p from one model (seeds and questions random, seeds "
                "paired across arms, t on Satterthwaite df)")
        if fallback_cells:
            text += (f"; {fallback_cells} cell(s) on fewer seeds/questions or unpaired "
                     "(see notes)")
        return text

    def holm_of(self, one_run_arms: bool) -> str:
        """The recipe-level p (arms with one run have none)."""
        return "recipe-level p" + (" (arms with 1 run: no test)" if one_run_arms else "")

    def one_run_note(self, who: str, cells: str, arm: str) -> str:
        """Without a second run there is no seed variance, hence no test."""
        return (f"{who} has 1 run in {cells}: the delta of arm {arm!r} there is shown without "
                "interval, test or mark (seed variance unknown; run 3 or more seeds, or see "
                "--test query)")


SEED = register(SeedModelTest("seed"))
