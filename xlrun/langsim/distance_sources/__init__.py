"""Language-distance sources (registry ``DISTANCE_SOURCES``), one module each.

A source is a :class:`Source`; its name may take an argument after ``:``
(``uriel:syntax_knn``, ``embedding:parallel``). Sources:

* ``uriel:<set>`` — cosine distance between URIEL vectors (``syntax_knn``, ``phonology_knn``,
  ``inventory_knn``, ``fam``, ``geo``; see :mod:`xlrun.langsim.uriel`).
* ``script`` — 0 when two languages share their main writing system (ISO 15924 code from
  :mod:`xlrun.languages`), else 1. Japanese (``Jpan``), Chinese (``Hans``) and Korean
  (``Kore``) count as *different* scripts although they share Han characters: kana and
  Hangul dominate Japanese and Korean text, and subword vocabularies treat them apart.
* ``family`` — 0 when two languages share their top-level family, else 1. Isolates
  (Basque) are only at distance 0 from themselves.
* ``embedding[:mean|:parallel]`` — distances in a model's embedding space
  (:mod:`xlrun.langsim.embedding`); needs a :class:`~xlrun.langsim.embedding.SimilarityContext`.
* ``manual`` — no distances: the clusters are written in the spec (``sampling.clusters``).

A new source is one new module here (see ``docs/extending.md``). Importing this package is
cheap: no data is read until a source is computed.
"""

from xlrun.langsim.distance_sources.base import (
    DISTANCE_SOURCES,
    ComputeFn,
    Source,
    all_usages,
    attribute_distance,
    get_source,
)
from xlrun.registry import import_submodules

__all__ = ["DISTANCE_SOURCES", "ComputeFn", "Source", "all_usages", "attribute_distance",
           "get_source"]

import_submodules(__name__, __path__)
