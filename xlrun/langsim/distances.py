"""Compute a :class:`~xlrun.langsim.matrix.DistanceMatrix` from a source string.

A source string is one source (``uriel:syntax_knn``, ``script``, ``embedding:parallel``) or a
weighted sum of sources: ``0.5*uriel:syntax_knn+0.5*script``. A term without ``*`` has weight 1;
weights are used as given (not renormalised), so weights summing to 1 keep distances on the
scale of their components.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xlrun.errors import SpecError, UsageError
from xlrun.langsim.distance_sources import DISTANCE_SOURCES, all_usages, get_source
from xlrun.langsim.embedding import SimilarityContext
from xlrun.langsim.matrix import DistanceMatrix
from xlrun.languages import normalize_all


def parse_combination(source: str, where: str = "source") -> list[tuple[float, str]]:
    """``0.5*uriel:fam+0.5*script`` → ``[(0.5, 'uriel:fam'), (0.5, 'script')]`` (checked).

    Raises:
        SpecError: an empty term, a weight that is not a non-negative number, or an unknown
            source (the message lists the accepted spellings).
    """
    terms: list[tuple[float, str]] = []
    for raw in source.split("+"):
        term = raw.strip()
        weight = 1.0
        if "*" in term:
            w, _, term = term.partition("*")
            try:
                weight = float(w.strip())
            except ValueError:
                raise SpecError(where, f"weight {w.strip()!r} is not a number", value=source,
                                allowed="e.g. 0.5*uriel:syntax_knn+0.5*script") from None
            if weight < 0 or not np.isfinite(weight):
                raise SpecError(where, "weights must be finite and non-negative", value=source)
            term = term.strip()
        if not term:
            raise SpecError(where, "empty term in source", value=source,
                            allowed="e.g. 0.5*uriel:syntax_knn+0.5*script")
        if term.split(":", 1)[0].strip() not in DISTANCE_SOURCES:
            raise SpecError(where, "unknown language-similarity source", value=term,
                            allowed=all_usages())
        get_source(term, where)
        terms.append((weight, term))
    if len(terms) > 1 and any(get_source(t)[0].compute is None for _, t in terms):
        raise SpecError(where, "'manual' cannot be combined with other sources", value=source)
    return terms


def validate_source(source: str, where: str = "sampling.similarity") -> None:
    """Check a source string fully (names, arguments, weights) without computing anything."""
    parse_combination(source, where)


def needs_context(source: str) -> bool:
    """Whether a (checked) source string has a term that needs a model and texts
    (:class:`~xlrun.langsim.embedding.SimilarityContext`), such as ``embedding``."""
    return any(get_source(term)[0].needs_context for _, term in parse_combination(source))


def distance_matrix(source: str, langs: Sequence[str], *,
                    context: SimilarityContext | None = None) -> DistanceMatrix:
    """Pairwise distances between ``langs`` under ``source``.

    Args:
        source: a source string (see the module docstring); ``manual`` has no distances.
        langs: ISO 639-1 or 639-3 codes (normalised to 639-1, repeats dropped, order kept).
        context: model and parallel texts, needed by ``embedding`` sources only.

    Raises:
        UnknownLanguageError: a code xlrun does not know (lists the nearest codes).
        UsageError: unknown source, ``manual``, fewer than 1 language, or a language the
            source has no data for.
    """
    codes = normalize_all(list(langs), "langs")
    if not codes:
        raise UsageError("name at least one language")
    terms = parse_combination(source)
    total = np.zeros((len(codes), len(codes)), dtype=np.float64)
    for weight, term in terms:
        src, arg = get_source(term)
        if src.compute is None:
            raise UsageError(f"source {term!r} has no distances: its clusters are written in "
                             "the spec (sampling.clusters); choose one of: "
                             + ", ".join(u for u in all_usages() if u != "manual"))
        total += weight * np.asarray(src.compute(arg, codes, context), dtype=np.float64)
    return DistanceMatrix(source=source.strip(), langs=tuple(codes), values=total)
