"""``cross_lingual``: every batch is one ordered pair (X, Y), X != Y."""

from __future__ import annotations

from xlrun.train.samplers.base import SAMPLERS, BatchSampler


@SAMPLERS.register("cross_lingual")
class CrossLingualSampler(BatchSampler):
    """Every batch is one ordered pair (X, Y), X != Y."""

    strategy = "cross_lingual"
    fixed_mono = False
