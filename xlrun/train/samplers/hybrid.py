"""``hybrid``: each batch is monolingual with probability ``mono_ratio``, else cross-lingual."""

from __future__ import annotations

from xlrun.train.samplers.base import SAMPLERS, BatchSampler


@SAMPLERS.register("hybrid")
class HybridSampler(BatchSampler):
    """Each batch is monolingual with probability ``mono_ratio``, else cross-lingual."""

    strategy = "hybrid"
