"""``uriel:<set>``: cosine distance between URIEL typology vectors (:mod:`xlrun.langsim.uriel`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xlrun.langsim.distance_sources.base import DISTANCE_SOURCES, Source
from xlrun.langsim.embedding import SimilarityContext
from xlrun.langsim.uriel import URIEL_SETS, cosine_distances, uriel_features


def uriel_distances(arg: str | None, langs: Sequence[str],
                    _ctx: SimilarityContext | None) -> np.ndarray:
    """Cosine distances between the languages' vectors in URIEL feature set ``arg``."""
    assert arg is not None  # the source takes no default argument
    return cosine_distances(uriel_features(langs, arg))


DISTANCE_SOURCES.add("uriel", Source(
    "uriel", "cosine distance between URIEL/lang2vec typology vectors", uriel_distances,
    arguments=URIEL_SETS))
