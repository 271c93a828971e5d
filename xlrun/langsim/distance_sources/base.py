"""The language-distance source every source is, and the ``DISTANCE_SOURCES`` registry.

A source is a :class:`Source`; its name may take an argument after ``:`` (``uriel:syntax_knn``,
``embedding:parallel``). Each source is one module of :mod:`xlrun.langsim.distance_sources`.
Importing this package is cheap (no data is read until a source is computed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from xlrun.errors import SpecError
from xlrun.langsim.embedding import SimilarityContext
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

    def validate(self, spec: str, where: str = "source") -> str | None:
        """Check ``spec`` (``name[:arg]``) and return its argument (``None``: it takes none).

        Raises:
            SpecError: an argument the source does not take, or a missing one; the message
                lists the spellings it accepts.
        """
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


DISTANCE_SOURCES: Registry[Source] = Registry("language-similarity source")
"""Source name → :class:`Source` (each registered by its module in this package)."""


def attribute_distance(attr: str) -> ComputeFn:
    """A 0/1 distance: 0 when two languages have the same :class:`~xlrun.languages.Language`
    attribute ``attr`` (``script``, ``family``), else 1."""
    def compute(_arg: str | None, langs: Sequence[str],
                _ctx: SimilarityContext | None) -> np.ndarray:
        vals = [getattr(LANGUAGES[lang], attr) for lang in langs]
        return np.array([[0.0 if a == b else 1.0 for b in vals] for a in vals], dtype=np.float64)
    return compute


def get_source(spec: str, where: str = "source") -> tuple[Source, str | None]:
    """The registered :class:`Source` for ``name[:arg]`` and its checked argument."""
    src = DISTANCE_SOURCES.get(spec.strip(), where)
    return src, src.validate(spec.strip(), where)


def all_usages() -> list[str]:
    """Every accepted single-source spelling, for help texts and error messages."""
    return [usage for _, src in DISTANCE_SOURCES.items() for usage in src.usages()]
