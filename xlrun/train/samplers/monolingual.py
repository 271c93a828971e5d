"""``monolingual``: every batch is one language: queries and passages in X."""

from __future__ import annotations

from xlrun.train.samplers.base import SAMPLERS, BatchSampler


@SAMPLERS.register("monolingual")
class MonolingualSampler(BatchSampler):
    """Every batch is one language: queries and passages in X."""

    strategy = "monolingual"
    fixed_mono = True
