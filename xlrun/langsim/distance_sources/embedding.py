"""``embedding[:mean|:parallel]``: distances in a model's embedding space
(:mod:`xlrun.langsim.embedding`); needs a :class:`~xlrun.langsim.embedding.SimilarityContext`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xlrun.langsim.distance_sources.base import DISTANCE_SOURCES, Source
from xlrun.langsim.embedding import EMBEDDING_VARIANTS, SimilarityContext, embedding_distances


def model_distances(arg: str | None, langs: Sequence[str],
                    ctx: SimilarityContext | None) -> np.ndarray:
    """:func:`~xlrun.langsim.embedding.embedding_distances` with variant ``arg``."""
    return embedding_distances(langs, ctx, arg or "mean")


DISTANCE_SOURCES.add("embedding", Source(
    "embedding", "distance between languages in a model's embedding space (mean: mean "
    "embeddings; parallel: 1 - mean cosine of parallel sentences)", model_distances,
    arguments=EMBEDDING_VARIANTS, default_argument="mean", needs_context=True))
