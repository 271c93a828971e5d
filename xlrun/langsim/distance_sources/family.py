"""``family``: 0 when two languages share their top-level family, else 1 (an isolate is
related to nothing but itself)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xlrun.langsim.distance_sources.base import DISTANCE_SOURCES, Source, attribute_distance
from xlrun.langsim.embedding import SimilarityContext
from xlrun.languages import LANGUAGES

_same_family = attribute_distance("family")


def family_distances(arg: str | None, langs: Sequence[str],
                     ctx: SimilarityContext | None) -> np.ndarray:
    """0/1 family distances; an isolate (family = its own name) is at 1 from every other."""
    out = _same_family(arg, langs, ctx)
    isolates = [i for i, lang in enumerate(langs) if LANGUAGES[lang].family == LANGUAGES[lang].name]
    for i in isolates:
        out[i, :] = out[:, i] = 1.0
        out[i, i] = 0.0
    return out


DISTANCE_SOURCES.add("family", Source(
    "family", "0 if the top-level language families are the same, else 1", family_distances))
