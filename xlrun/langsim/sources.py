"""Language-distance sources (registry ``SOURCES``).

Each entry is a :class:`Source`; a source name may take an argument after ``:``
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

Importing this module is cheap (no data is read until a source is computed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xlrun.errors import SpecError, UsageError
from xlrun.langsim.embedding import EMBEDDING_VARIANTS, SimilarityContext, embedding_distances
from xlrun.langsim.uriel import URIEL_SETS, cosine_distances, uriel_features
from xlrun.languages import LANGUAGES
from xlrun.registry import Registry

#: ``compute(argument, iso1_langs, context) -> square float64 matrix``
ComputeFn = Callable[[str | None, Sequence[str], SimilarityContext | None], np.ndarray]


@dataclass(frozen=True)
class Source:
    """A registered distance source.

    Attributes:
        name: registry name (the part before ``:``).
        description: one line for ``xlrun langs sources``.
        compute: the distance function; ``None`` for ``manual`` (no distances).
        arguments: allowed arguments after ``:`` (empty: takes none).
        default_argument: used when the name comes without ``:``; ``None``: argument required
            (when ``arguments`` is not empty).
        needs_context: the source needs a model and texts (:class:`SimilarityContext`).
    """

    name: str
    description: str
    compute: ComputeFn | None
    arguments: tuple[str, ...] = ()
    default_argument: str | None = None
    needs_context: bool = False

    def parse_argument(self, spec: str, where: str = "source") -> str | None:
        """The argument of ``spec`` (``name[:arg]``), checked; UsageError names what is allowed."""
        _, sep, arg = spec.partition(":")
        arg = arg.strip()
        if not self.arguments:
            if sep:
                raise SpecError(where, f"source {self.name!r} takes no argument", value=spec,
                                allowed=[self.name])
            return None
        if not sep:
            if self.default_argument is None:
                raise SpecError(where, f"source {self.name!r} needs an argument", value=spec,
                                allowed=[f"{self.name}:{a}" for a in self.arguments])
            return self.default_argument
        if arg not in self.arguments:
            raise SpecError(where, f"unknown argument for source {self.name!r}", value=spec,
                            allowed=[f"{self.name}:{a}" for a in self.arguments])
        return arg

    def usages(self) -> list[str]:
        """The spellings this source accepts (``uriel:syntax_knn``, ...)."""
        if not self.arguments:
            return [self.name]
        out = [self.name] if self.default_argument is not None else []
        return out + [f"{self.name}:{a}" for a in self.arguments]


SOURCES: Registry[Source | None] = Registry("language-similarity source")


def _uriel(arg: str | None, langs: Sequence[str], _ctx: SimilarityContext | None) -> np.ndarray:
    assert arg is not None
    return cosine_distances(uriel_features(langs, arg))


def _attribute_distance(attr: str) -> ComputeFn:
    def compute(_arg: str | None, langs: Sequence[str],
                _ctx: SimilarityContext | None) -> np.ndarray:
        vals = [getattr(LANGUAGES[lang], attr) for lang in langs]
        return np.array([[0.0 if a == b else 1.0 for b in vals] for a in vals], dtype=np.float64)
    return compute


def _family(arg: str | None, langs: Sequence[str], ctx: SimilarityContext | None) -> np.ndarray:
    out = _attribute_distance("family")(arg, langs, ctx)
    isolates = [i for i, lang in enumerate(langs) if LANGUAGES[lang].family == LANGUAGES[lang].name]
    for i in isolates:  # an isolate is related to nothing but itself
        out[i, :] = out[:, i] = 1.0
        out[i, i] = 0.0
    return out


def _embedding(arg: str | None, langs: Sequence[str], ctx: SimilarityContext | None) -> np.ndarray:
    return embedding_distances(langs, ctx, arg or "mean")


for _src in (
    Source("uriel", "cosine distance between URIEL/lang2vec typology vectors",
           _uriel, arguments=URIEL_SETS),
    Source("script", "0 if the main writing systems (ISO 15924) are the same, else 1",
           _attribute_distance("script")),
    Source("family", "0 if the top-level language families are the same, else 1", _family),
    Source("embedding", "distance between languages in a model's embedding space "
           "(mean: mean embeddings; parallel: 1 - mean cosine of parallel sentences)",
           _embedding, arguments=EMBEDDING_VARIANTS, default_argument="mean",
           needs_context=True),
    Source("manual", "clusters written in the spec (sampling.clusters); no distances", None),
):
    SOURCES.add(_src.name, _src)


def get_source(spec: str, where: str = "source") -> tuple[Source, str | None]:
    """The registered :class:`Source` for ``name[:arg]`` and its checked argument."""
    src = SOURCES.get(spec.strip(), where)
    if src is None:  # pragma: no cover - every entry is a Source
        raise UsageError(f"source {spec!r} has no implementation")
    return src, src.parse_argument(spec.strip(), where)


def all_usages() -> list[str]:
    """Every accepted single-source spelling, for help texts and error messages."""
    out: list[str] = []
    for name in SOURCES.names():
        src = SOURCES.get(name)
        out += src.usages() if src is not None else [name]
    return out
