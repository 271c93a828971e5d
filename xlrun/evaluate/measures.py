"""Retrieval measures by their ir_measures names, computed exactly from a full ranking.

``[[eval]] measures = ["AP", "nDCG@10", "RR@10", "R@1000", "P@1", "Success@5"]`` names
measures the way `ir_measures <https://ir-measur.es>`_ does; each name is parsed by
ir_measures itself (``ir_measures.parse_measure``, and trec_eval's names such as
``ndcg_cut.10`` or ``map`` through ``ir_measures.parse_trec_measure``) and stored under its
canonical ir_measures name (``str(measure)``: ``ndcg_cut.10`` → ``nDCG@10``).

xlrun ranks *every* document of a collection, so every measure that depends only on the
ranks and grades of a query's relevant documents is computed exactly, for any cutoff. These
are supported (``k`` a positive integer cutoff, ``rel`` trec_eval's relevance level, a
positive integer: a document is relevant when its grade is ``>= rel``, default 1):

=====================  =====================================================================
name                   definition (trec_eval's)
=====================  =====================================================================
``AP``, ``AP@k``       average precision over all R relevant documents (``@k``: only those
                       ranked ≤ k contribute, still divided by R: trec_eval's ``map_cut``);
                       ``rel``
``nDCG``, ``nDCG@k``   DCG with the qrels' grades as gains and 1/log2(rank + 1) discounts,
                       over the ideal DCG of the same gains (graded where the qrels are)
``RR``, ``RR@k``       1 / rank of the first relevant document (0 beyond k); ``rel``
``P@k``                relevant documents in the top k, divided by k; ``rel``
``R@k``                share of the relevant documents in the top k
``Success@k``          1 when a relevant document is in the top k; ``rel``
``Rprec``              relevant documents in the top R, divided by R; ``rel``
``IPrec@x``            the best precision at a recall ≥ x (0 ≤ x ≤ 1)
=====================  =====================================================================

Measures that need what xlrun does not keep are refused with the reason: judged
non-relevant documents (``Judged@k``, ``Bpref``, ``infAP``, ``judged_only=True``), the
size of a retrieved set (``NumRet``, ``SetP``, ``SetR``, ``SetF``, ``SetAP``: a full ranking
retrieves every document), gains other than the grades (``gains=``), other discounts
(``dcg='exp-log2'``), and measures xlrun does not compute (``ERR``, ``RBP``, ``NumQ``,
``NumRel``: the count is ``query_results.n_relevant``, ...).

Ties: documents with equal scores are ordered by document id, descending, as trec_eval
orders them (score descending, then docno descending, compared byte-wise), so the values
equal trec_eval's on a run file holding the same ranking
(``tests/evaluate/test_eval_measures.py`` checks every supported measure against
ir_measures' pytrec_eval backend to 1e-9, ties and grades included; ``RR@k``, which
pytrec_eval lacks, as pytrec_eval's ``RR`` on the ranking cut at k).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xlrun.errors import SpecError, UsageError
from xlrun.evaluate import metrics as M

MAX_NAME_LENGTH = 32
"""Longest canonical name (``run_metrics.metric`` holds 32 characters)."""

SUPPORTED: tuple[str, ...] = ("AP", "AP@k", "nDCG", "nDCG@k", "RR", "RR@k", "P@k", "R@k",
                              "Success@k", "Rprec", "IPrec@x")
"""The measure forms xlrun computes (``k``: cutoff, ``x``: recall level); see the table
above for ``rel``."""

_CUTOFF: dict[str, str] = {"AP": "optional", "nDCG": "optional", "RR": "optional",
                           "P": "required", "R": "required", "Success": "required",
                           "Rprec": "none", "IPrec": "none"}
_REL: frozenset[str] = frozenset({"AP", "RR", "P", "Success", "Rprec"})
_NEEDS_JUDGED = frozenset({"Judged", "Bpref", "infAP"})
_SET_MEASURES = frozenset({"NumRet", "SetP", "SetR", "SetF", "SetAP"})


class MeasureError(UsageError):
    """A measure name ir_measures cannot parse or xlrun cannot compute (the message says
    which and why)."""


@dataclass(frozen=True)
class Measure:
    """One supported measure: its canonical ir_measures ``name`` and what it computes."""

    name: str
    family: str
    cutoff: int | None = None
    rel: int = 1
    recall: float | None = None

    def compute(self, ranks: np.ndarray, grades: np.ndarray) -> np.ndarray:
        """Per-query values from rank-sorted ``ranks`` and ``grades`` (see
        :func:`xlrun.evaluate.metrics.sort_judged`)."""
        return _FUNCTIONS[self.family](self, ranks, grades)


_FUNCTIONS: dict[str, Callable[[Measure, np.ndarray, np.ndarray], np.ndarray]] = {
    "AP": lambda m, r, g: M.graded_ap(r, g, m.rel, m.cutoff),
    "nDCG": lambda m, r, g: M.graded_ndcg(r, g, m.cutoff),
    "RR": lambda m, r, g: M.graded_rr(r, g, m.rel, m.cutoff),
    "P": lambda m, r, g: M.graded_precision(r, g, m.rel, int(m.cutoff or 0)),
    "R": lambda m, r, g: M.graded_recall(r, g, 1, m.cutoff),
    "Success": lambda m, r, g: M.graded_success(r, g, m.rel, int(m.cutoff or 0)),
    "Rprec": lambda m, r, g: M.graded_rprec(r, g, m.rel),
    "IPrec": lambda m, r, g: M.graded_iprec(r, g, float(m.recall or 0.0)),
}


def _supported_text() -> str:
    return ", ".join(SUPPORTED)


def _ir_parse(text: str) -> list[Any]:
    """ir_measures' measures for ``text`` (its own syntax, else trec_eval's names)."""
    import ir_measures  # deferred on purpose: only specs that name measures need it

    try:
        return [ir_measures.parse_measure(text)]
    except Exception:  # noqa: BLE001 - not ir_measures syntax: try trec_eval's names next
        pass
    try:
        return list(ir_measures.parse_trec_measure(text))
    except Exception:  # noqa: BLE001 - neither: the caller reports an unknown name
        return []


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, float) and value.is_integer() and value > 0:
        return int(value)
    return None


def _refusal(family: str, params: dict[str, Any]) -> str | None:
    """Why xlrun cannot compute this measure exactly (``None``: it can)."""
    if family in _NEEDS_JUDGED or params.get("judged_only"):
        return ("it needs the judged non-relevant documents, which xlrun does not keep (it "
                "keeps the grades of the relevant ones)")
    if family in _SET_MEASURES:
        return ("it depends on the size of a retrieved set, and xlrun ranks every document "
                "(use a cutoff measure such as P@k or R@k)")
    if family not in _FUNCTIONS:
        return "xlrun does not compute it"
    if "gains" in params:
        return "xlrun's gains are the qrels' grades (trec_eval's convention); remove gains="
    if params.get("dcg", "log2") != "log2":
        return "xlrun's nDCG uses trec_eval's log2 discount; remove dcg="
    return None


def _to_measure(m: Any, text: str) -> Measure:
    family = str(m.NAME)
    params = dict(m.params)
    why = _refusal(family, params)
    if why is not None:
        raise MeasureError(f"measure {text!r} is not supported: {why}")
    unknown = sorted(set(params) - {"cutoff", "rel", "judged_only", "dcg", "recall"})
    if unknown:
        raise MeasureError(f"measure {text!r}: unknown parameter(s) {', '.join(unknown)}")
    rel = 1
    if "rel" in params:
        rel_value = _positive_int(params["rel"])
        if family not in _REL or rel_value is None:
            raise MeasureError(f"measure {text!r}: rel= must be a positive integer and "
                               f"applies to {', '.join(sorted(_REL))}")
        rel = rel_value
    cutoff = None
    need = _CUTOFF[family]
    if "cutoff" in params:
        cutoff = _positive_int(params["cutoff"])
        if need == "none":
            raise MeasureError(f"measure {text!r}: {family} takes no cutoff")
        if cutoff is None:
            raise MeasureError(f"measure {text!r}: the cutoff must be a positive integer")
    elif need == "required":
        raise MeasureError(f"measure {text!r} needs a cutoff (e.g. {family}@10): "
                           "without one it would count the whole ranking")
    recall = None
    if family == "IPrec":
        recall = params.get("recall")
        if isinstance(recall, bool) or not isinstance(recall, (int, float)) \
                or not 0.0 <= float(recall) <= 1.0:
            raise MeasureError(f"measure {text!r}: IPrec needs a recall level in [0, 1], "
                               "e.g. IPrec@0.5")
        recall = float(recall)
        cutoff = None
    try:
        name = str(m)
    except Exception as exc:  # ir_measures could not print it: a bad parameter
        raise MeasureError(f"measure {text!r} is not valid ({exc})") from exc
    if len(name) > MAX_NAME_LENGTH:
        raise MeasureError(f"measure name {name!r} is longer than {MAX_NAME_LENGTH} "
                           "characters")
    return Measure(name, family, cutoff, rel, recall)


def measures_of(text: str) -> list[Measure]:
    """The measures ``text`` names (one, or several for a trec_eval name such as
    ``P.5,10``).

    Raises:
        MeasureError: ir_measures cannot parse ``text``, or xlrun cannot compute the measure
            exactly (the message says why).
    """
    if not isinstance(text, str) or not text.strip():
        raise MeasureError(f"expected a measure name such as 'nDCG@10', got {text!r}")
    parsed = _ir_parse(text.strip())
    if not parsed:
        raise MeasureError(f"unknown measure {text!r}: ir_measures cannot parse it (names are "
                           "case-sensitive: AP, nDCG@10, RR@10, R@100, P@1, ...; trec_eval's "
                           "names such as ndcg_cut.10 work too)")
    return [_to_measure(m, text) for m in parsed]


def parse_measure(text: str, where: str = "measure") -> list[Measure]:
    """:func:`measures_of` for a spec value at key path ``where``.

    Raises:
        SpecError: naming ``where``, the value, why, and the supported forms.
    """
    try:
        return measures_of(text)
    except MeasureError as e:
        raise SpecError(where, str(e), value=text, allowed=_supported_text()) from None


def parse_measures(texts: Sequence[str], where: str = "measures") -> list[Measure]:
    """Every measure ``texts`` name, each once, in order (``where[i]`` in errors)."""
    out: dict[str, Measure] = {}
    for i, text in enumerate(texts):
        for m in parse_measure(text, f"{where}[{i}]"):
            out.setdefault(m.name, m)
    return list(out.values())


def canonical_names(texts: Sequence[str], where: str = "measures") -> list[str]:
    """The canonical names of ``texts`` (what a run stores and its key hashes)."""
    return [m.name for m in parse_measures(texts, where)]


def compute(measures: Sequence[Measure], ranks: np.ndarray, grades: np.ndarray
            ) -> dict[str, np.ndarray]:
    """Per-query values of every measure, by canonical name (rows of ``ranks``/``grades``
    in any order within a row)."""
    r, g = M.sort_judged(ranks, grades)
    return {m.name: np.asarray(m.compute(r, g), dtype=np.float64) for m in measures}
