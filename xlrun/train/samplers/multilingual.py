"""``multilingual``: every pair of a batch draws its own kind and languages."""

from __future__ import annotations

from xlrun.train.samplers.base import SAMPLERS, BatchSampler


@SAMPLERS.register("multilingual")
class MultilingualSampler(BatchSampler):
    """Every pair draws its own languages: mono with probability ``mono_ratio``, else cross."""

    strategy = "multilingual"
    per_pair = True
