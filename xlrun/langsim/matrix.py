"""The value type of language distances: :class:`DistanceMatrix`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xlrun.errors import UsageError
from xlrun.languages import normalize


@dataclass(frozen=True, eq=False)
class DistanceMatrix:
    """Pairwise distances between languages (ISO 639-1 codes).

    ``values`` is a read-only, symmetric float64 matrix with a zero diagonal, indexed like
    ``langs``. ``source`` is the source string that produced it (``uriel:syntax_knn``,
    ``0.5*uriel:fam+0.5*script``, ...).
    """

    source: str
    langs: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        vals = np.array(self.values, dtype=np.float64, copy=True)
        n = len(self.langs)
        if vals.shape != (n, n):
            raise ValueError(f"distance matrix shape {vals.shape} does not match {n} languages")
        if len(set(self.langs)) != n:
            raise ValueError(f"repeated languages in {self.langs}")
        if not np.all(np.isfinite(vals)):
            raise ValueError(f"non-finite distances from source {self.source!r}")
        vals = (vals + vals.T) / 2.0
        np.fill_diagonal(vals, 0.0)
        vals.setflags(write=False)
        object.__setattr__(self, "langs", tuple(self.langs))
        object.__setattr__(self, "values", vals)

    def index(self, lang: str) -> int:
        """Position of ``lang`` (any accepted code form) in :attr:`langs`."""
        iso = normalize(lang)
        try:
            return self.langs.index(iso)
        except ValueError:
            raise UsageError(f"language {lang!r} is not in this distance matrix; "
                             f"it has: {', '.join(self.langs)}") from None

    def get(self, a: str, b: str) -> float:
        """Distance between languages ``a`` and ``b``."""
        return float(self.values[self.index(a), self.index(b)])

    def subset(self, langs: Sequence[str]) -> DistanceMatrix:
        """The matrix restricted to (and reordered as) ``langs``."""
        idx = [self.index(x) for x in langs]
        return DistanceMatrix(self.source, tuple(self.langs[i] for i in idx),
                              self.values[np.ix_(idx, idx)])

    def condensed(self) -> np.ndarray:
        """Upper triangle in scipy's condensed form (pairs i < j, row-major)."""
        iu = np.triu_indices(len(self.langs), k=1)
        return np.asarray(self.values[iu], dtype=np.float64)

    def rows(self, *, ordered: bool = True) -> list[dict[str, Any]]:
        """Long format, one dict per pair: ``{"lang_a", "lang_b", "distance"}``.

        With ``ordered=True`` (the default, the ``language_distances`` table layout) every
        ordered pair ``a != b`` appears, i.e. both ``(a, b)`` and ``(b, a)``; the diagonal is
        left out. With ``ordered=False`` only pairs with ``a`` before ``b`` in :attr:`langs`.
        """
        out = []
        n = len(self.langs)
        for i in range(n):
            for j in range(n):
                if i == j or (not ordered and j < i):
                    continue
                out.append({"lang_a": self.langs[i], "lang_b": self.langs[j],
                            "distance": float(self.values[i, j])})
        return out

    def to_rows(self, *, ordered: bool = True) -> list[dict[str, Any]]:
        """:meth:`rows` plus ``"source"``: the ``language_distances`` table rows (no run_id)."""
        return [dict(r, source=self.source) for r in self.rows(ordered=ordered)]

    def to_frame(self, *, ordered: bool = True) -> Any:
        """:meth:`rows` as a polars DataFrame (columns lang_a, lang_b, distance)."""
        import polars as pl  # deferred on purpose: the run path never imports polars

        rows = self.rows(ordered=ordered)
        return pl.DataFrame(rows, schema={"lang_a": pl.Utf8, "lang_b": pl.Utf8,
                                          "distance": pl.Float64})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"source", "langs", "values"}`` (values as nested lists)."""
        return {"source": self.source, "langs": list(self.langs),
                "values": self.values.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DistanceMatrix:
        """Inverse of :meth:`to_dict`."""
        return cls(str(d["source"]), tuple(d["langs"]), np.asarray(d["values"], dtype=np.float64))

    def to_json(self) -> str:
        """:meth:`to_dict` as a JSON string."""
        return json.dumps(self.to_dict())

    def nearest(self, lang: str, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` languages closest to ``lang`` with their distances (ties by code)."""
        i = self.index(lang)
        others = [(self.langs[j], float(self.values[i, j])) for j in range(len(self.langs)) if j != i]
        return sorted(others, key=lambda t: (t[1], t[0]))[:n]

    def __repr__(self) -> str:
        return f"DistanceMatrix(source={self.source!r}, langs={self.langs!r})"
