"""URIEL typological vectors (via the data shipped in the ``lang2vec`` wheel).

Two ways to read a feature set, with the same values:

* :func:`uriel_features` (used by the ``uriel:<set>`` source) reads the ``.npz`` files of the
  installed ``lang2vec`` package directly, vectorised, once per process and feature set
  (``functools.lru_cache``). Measured on the dev box: ``import lang2vec.lang2vec`` takes
  ~5 s (it scans the family database at import) and ``get_features(..., "fam")`` ~7 s more
  (a quadratic feature-name lookup), whereas the direct read takes ~0.6 s for ``fam`` and
  ~0.05 s for the ``*_knn`` sets.
* :func:`lang2vec_features` calls ``lang2vec.lang2vec.get_features`` itself (a reference the
  tests compare against). lang2vec imports ``pkg_resources``, which is gone from
  setuptools ≥ 81 and from bare Python 3.12 environments; when it is missing, a minimal
  stand-in (only ``resource_filename``) is put in ``sys.modules`` for the duration of the import.

Language codes: URIEL uses ISO 639-3 and often knows both an individual language and its
macro-language (``arb``/``ara``, ``cmn``/``zho``, ``nob``/``nor``). For each language xlrun tries
the code in :mod:`xlrun.languages` first, then the fallbacks in :data:`URIEL_CODES`, and uses
the first code whose vector in the requested set is present and not all zero (e.g. Norwegian's
``nob`` has an empty family vector in URIEL, ``nor`` has one; Latvian ``lvs`` → ``lav``).

Missing values: URIEL marks unknown features with ``-1`` (``'--'`` in lang2vec output);
they are kept as ``NaN`` and cosine distances are computed on the features known for both
languages. A language with no usable vector in a set raises :class:`~xlrun.errors.UsageError`
naming the language and the set, except in ``fam``, where an all-zero vector is meaningful
(a language isolate such as Basque belongs to no family) and gives distance 1 to every other
language (see :func:`cosine_distances`).
"""

from __future__ import annotations

import functools
import os
import sys
import types
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xlrun.errors import UsageError
from xlrun.languages import LANGUAGES, VARIANTS, normalize

#: The lang2vec feature sets the ``uriel:<set>`` source accepts.
URIEL_SETS: tuple[str, ...] = ("syntax_knn", "phonology_knn", "inventory_knn", "fam", "geo")

# lang2vec's FEATURE_SETS_DICT for the sets above: file, source name, feature-name prefix.
_SET_FILES: dict[str, tuple[str, str, str]] = {
    "syntax_knn": ("feature_predictions.npz", "predicted", "S_"),
    "phonology_knn": ("feature_predictions.npz", "predicted", "P_"),
    "inventory_knn": ("feature_predictions.npz", "predicted", "INV_"),
    "fam": ("family_features.npz", "FAM", ""),
    "geo": ("geocoord_features.npz", "GEOCOORDS", ""),
}

#: Sets in which an all-zero vector is a valid value (no family membership) rather than missing.
ZERO_IS_VALID: frozenset[str] = frozenset({"fam"})

#: ISO 639-1 → URIEL codes to try after the one in :mod:`xlrun.languages` (macro-languages
#: and individual languages URIEL files under another code).
URIEL_CODES: dict[str, tuple[str, ...]] = {
    "ar": ("arb", "ara"),
    "zh": ("cmn", "zho"),
    "fa": ("pes", "fas"),
    "sw": ("swh", "swa"),
    "ms": ("zsm", "msa"),
    "lv": ("lvs", "lav"),
    "no": ("nob", "nor", "nno"),
    "mn": ("khk", "mon"),
    "ne": ("npi", "nep"),
    "uz": ("uzn", "uzb"),
    "et": ("est", "ekk"),
    "sq": ("sqi", "als"),
    "az": ("aze", "azj"),
    "ku": ("kmr", "kur"),
    "yi": ("ydd", "yid"),
    "ff": ("fuv", "ful"),
    "om": ("gaz", "orm"),
    "mg": ("plt", "mlg"),
    "ps": ("pbt", "pus"),
    "gn": ("gug", "grn"),
    "or": ("ory", "ori"),
    "nn": ("nno", "nor"),
}

_PKG_RESOURCES_HINT = (
    "lang2vec needs 'pkg_resources' (from setuptools < 81): run `pip install 'setuptools<81'`"
)


@dataclass(frozen=True)
class UrielSet:
    """One feature set for every URIEL language: ``values[i]`` is the vector of ``codes[i]``."""

    name: str
    codes: dict[str, int]
    values: np.ndarray  # float64, NaN where URIEL has no value
    features: tuple[str, ...]


def lang2vec_package_dir() -> str:
    """Folder of the installed ``lang2vec`` package, found without importing it.

    The lang2vec wheel also installs a script ``bin/lang2vec.py`` that shadows the package
    whenever ``bin/`` is first on ``sys.path`` (as for the ``xlrun`` console script), so the
    package folder is looked up on ``sys.path`` explicitly.
    """
    for entry in sys.path:
        d = os.path.join(entry or os.getcwd(), "lang2vec")
        if os.path.isfile(os.path.join(d, "__init__.py")) and os.path.isdir(os.path.join(d, "data")):
            return d
    raise UsageError("the 'uriel' similarity source needs lang2vec (its package ships the "
                     "URIEL data): run `pip install lang2vec`")


def lang2vec_data_dir() -> str:
    """The folder of the URIEL ``.npz`` files: ``$XLRUN_URIEL_DIR`` when set (a copy of the
    files a study needs, e.g. on a machine without lang2vec), else the ``data`` folder of the
    installed ``lang2vec`` package (found without importing it)."""
    override = os.environ.get("XLRUN_URIEL_DIR")
    if override:
        return override
    return os.path.join(lang2vec_package_dir(), "data")


def check_set(feature_set: str | None) -> str:
    """Return ``feature_set`` if it is one of :data:`URIEL_SETS`, else raise UsageError."""
    if feature_set not in URIEL_SETS:
        raise UsageError(
            f"unknown URIEL feature set {feature_set!r} in 'uriel:<set>'; "
            f"allowed: {', '.join('uriel:' + s for s in URIEL_SETS)}")
    return feature_set


@functools.cache
def load_set(feature_set: str) -> UrielSet:
    """Read one feature set for all URIEL languages (cached for the life of the process)."""
    check_set(feature_set)
    filename, source, prefix = _SET_FILES[feature_set]
    path = os.path.join(lang2vec_data_dir(), filename)
    with np.load(path) as db:
        feats = db["feats"]
        langs = db["langs"]
        sources = list(db["sources"])
        feat_idx = np.flatnonzero(np.char.startswith(feats.astype(str), prefix))
        data = db["data"][:, feat_idx, sources.index(source)].astype(np.float64)
    data[data == -1.0] = np.nan
    return UrielSet(name=feature_set, codes={str(c): i for i, c in enumerate(langs)},
                    values=data, features=tuple(str(f) for f in feats[feat_idx]))


def candidate_codes(lang: str) -> list[str]:
    """URIEL codes to try for an xlrun language, best first (a script variant such as
    ``bn-Latn`` has its language's typology: its language's codes)."""
    iso1 = normalize(lang)
    iso1 = VARIANTS.get(iso1, iso1)
    out = [LANGUAGES[iso1].iso3]
    for c in URIEL_CODES.get(iso1, ()):
        if c not in out:
            out.append(c)
    return out


def _usable(vec: np.ndarray, feature_set: str) -> bool:
    known = vec[~np.isnan(vec)]
    if known.size == 0:
        return False
    return feature_set in ZERO_IS_VALID or bool(np.any(known != 0))


def resolve_code(lang: str, feature_set: str) -> str:
    """The URIEL code used for ``lang`` in ``feature_set`` (first candidate with a usable vector).

    For ``fam`` an all-zero vector counts as usable only when no candidate has family
    features (a language isolate).

    Raises:
        UsageError: no candidate code has a usable vector in the set.
    """
    data = load_set(feature_set)
    cands = [c for c in candidate_codes(lang) if c in data.codes]
    for c in cands:
        vec = data.values[data.codes[c]]
        known = vec[~np.isnan(vec)]
        if known.size and np.any(known != 0):
            return c
    for c in cands:
        if _usable(data.values[data.codes[c]], feature_set):
            return c
    tried = ", ".join(candidate_codes(lang))
    raise UsageError(
        f"language {lang!r} has no usable URIEL vector in feature set {feature_set!r} "
        f"(tried codes: {tried}); choose another set, e.g. "
        f"{', '.join('uriel:' + s for s in URIEL_SETS if s != feature_set)}")


def uriel_features(langs: Sequence[str], feature_set: str) -> np.ndarray:
    """Feature matrix (``len(langs)`` × features, float64, NaN = unknown) for xlrun languages."""
    data = load_set(check_set(feature_set))
    rows = [data.values[data.codes[resolve_code(lang, feature_set)]] for lang in langs]
    return np.vstack(rows) if rows else np.zeros((0, len(data.features)))


def cosine_distances(x: np.ndarray) -> np.ndarray:
    """Pairwise cosine distances of the rows of ``x`` (NaN = unknown, ignored pairwise).

    For each pair, only features known for both rows are used. A pair where either row is
    all zero on those features gets distance 1 (nothing in common), except a row with itself.
    """
    n = x.shape[0]
    known = ~np.isnan(x)
    z = np.where(known, x, 0.0)
    out = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            both = known[i] & known[j]
            a, b = z[i, both], z[j, both]
            na, nb = np.linalg.norm(a), np.linalg.norm(b)
            d = 1.0 if na == 0 or nb == 0 else 1.0 - float(a @ b) / (na * nb)
            out[i, j] = out[j, i] = max(d, 0.0)
    return out


def _import_lang2vec() -> types.ModuleType:
    """Import ``lang2vec.lang2vec``, supplying a stand-in ``pkg_resources`` if it is missing
    (deferred on purpose: slow to import, and only :func:`lang2vec_features` needs it)."""
    if "lang2vec.lang2vec" in sys.modules:
        return sys.modules["lang2vec.lang2vec"]
    pkg_dir = lang2vec_package_dir()
    try:
        import pkg_resources  # noqa: F401
        shim = None
    except ImportError:
        shim = types.ModuleType("pkg_resources")
        shim.resource_filename = lambda _pkg, path: os.path.join(pkg_dir, path)  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    shadow = sys.modules.get("lang2vec")
    if shadow is not None and not hasattr(shadow, "__path__"):  # the bin/lang2vec.py script
        del sys.modules["lang2vec"]
    sys.path.insert(0, os.path.dirname(pkg_dir))  # the package before bin/lang2vec.py
    try:
        import lang2vec.lang2vec as l2v
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise UsageError(f"cannot import lang2vec ({e}); {_PKG_RESOURCES_HINT}") from e
    finally:
        sys.path.remove(os.path.dirname(pkg_dir))
        if shim is not None and sys.modules.get("pkg_resources") is shim:
            del sys.modules["pkg_resources"]
    return l2v


def lang2vec_features(iso3_codes: Sequence[str], feature_set: str) -> np.ndarray:
    """The same matrix as :func:`uriel_features`, but through ``lang2vec.get_features`` (slow)."""
    l2v = _import_lang2vec()
    feats = l2v.get_features(list(iso3_codes), check_set(feature_set))
    return np.array([[np.nan if v == "--" else float(v) for v in feats[c]] for c in iso3_codes],
                    dtype=np.float64)
