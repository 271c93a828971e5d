"""Which distance sources know which languages: ``xlrun langs coverage``.

For each language, what the similarity sources have for it:

* ``uriel:syntax_knn`` / ``uriel:phonology_knn`` / ``uriel:inventory_knn`` — ``observed`` when
  URIEL has at least one feature of that kind from its sources (WALS, SSWL, Ethnologue,
  PHOIBLE) for the language (under any code xlrun tries: :func:`~xlrun.langsim.uriel.candidate_codes`),
  ``predicted`` when its vector in the ``*_knn`` set is only URIEL's k-nearest-neighbour
  imputation (from languages near it in family and geography), ``none`` when the set has no
  usable vector (the source refuses the language);
* ``uriel:fam`` — ``tree`` (Glottolog family membership), ``isolate`` (an all-zero vector:
  no family, distance 1 to every other language), ``none``;
* ``uriel:geo`` — ``yes`` / ``none``;
* ``script`` and ``family`` — from :mod:`xlrun.languages`, known for every language xlrun
  knows; ``embedding`` needs texts, not a table, and works for any language with text.

A script variant (``bn-Latn``) has its language's typology.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xlrun.errors import UsageError
from xlrun.langsim.uriel import candidate_codes, lang2vec_data_dir, load_set, resolve_code
from xlrun.languages import LANGUAGES, normalize

KINDS: dict[str, str] = {"syntax_knn": "S_", "phonology_knn": "P_", "inventory_knn": "INV_"}
"""``uriel:<set>`` → the prefix of its features in URIEL's observed ``features.npz``."""
COLUMNS: tuple[str, ...] = ("lang", "name", "script", "family", "uriel:syntax_knn",
                            "uriel:phonology_knn", "uriel:inventory_knn", "uriel:fam",
                            "uriel:geo")


@functools.cache
def _observed() -> tuple[dict[str, int], dict[str, np.ndarray]]:
    """URIEL language code → row, and per kind the number of observed features per row."""
    with np.load(os.path.join(lang2vec_data_dir(), "features.npz")) as db:
        feats = db["feats"].astype(str)
        langs = {str(c): i for i, c in enumerate(db["langs"])}
        known = (db["data"] != -1).any(axis=2)
    counts = {kind: known[:, np.char.startswith(feats, prefix)].sum(axis=1)
              for kind, prefix in KINDS.items()}
    return langs, counts


@dataclass(frozen=True)
class LanguageCoverage:
    """One language's row of :func:`coverage`."""

    lang: str
    name: str
    script: str
    family: str
    sources: dict[str, str]

    def row(self) -> list[str]:
        """The values in :data:`COLUMNS` order."""
        return [self.lang, self.name, self.script, self.family,
                *[self.sources[c] for c in COLUMNS[4:]]]


def _usable(lang: str, feature_set: str) -> bool:
    try:
        resolve_code(lang, feature_set)
    except UsageError:
        return False
    return True


def language_coverage(lang: str) -> LanguageCoverage:
    """What each source has for ``lang`` (see the module docstring)."""
    code = normalize(lang)
    info = LANGUAGES[code]
    rows, counts = _observed()
    cands = candidate_codes(code)
    out: dict[str, str] = {}
    for kind in KINDS:
        if not _usable(code, kind):
            out[f"uriel:{kind}"] = "none"
            continue
        seen = any(c in rows and counts[kind][rows[c]] > 0 for c in cands)
        out[f"uriel:{kind}"] = "observed" if seen else "predicted"
    if _usable(code, "fam"):
        fam = load_set("fam")
        vec = fam.values[fam.codes[resolve_code(code, "fam")]]
        out["uriel:fam"] = "tree" if np.nansum(vec) > 0 else "isolate"
    else:
        out["uriel:fam"] = "none"
    out["uriel:geo"] = "yes" if _usable(code, "geo") else "none"
    return LanguageCoverage(code, info.name, info.script, info.family, out)


def coverage(langs: Sequence[str]) -> list[LanguageCoverage]:
    """:func:`language_coverage` of each language (normalised, repeats dropped, sorted)."""
    return [language_coverage(c) for c in sorted({normalize(x) for x in langs})]


def summary(rows: Sequence[LanguageCoverage]) -> dict[str, dict[str, int]]:
    """Per source, how many languages have each status."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        for source, status in r.sources.items():
            out.setdefault(source, {})
            out[source][status] = out[source].get(status, 0) + 1
    out["script"] = {"yes": len(rows)}
    out["family"] = {"yes": len(rows)}
    return out
