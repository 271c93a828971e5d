"""Per-query retrieval metrics from the exact ranks of every relevant document.

Input is a ``(n_queries, max_relevant)`` float array of 1-based ranks, one row per query,
padded with ``inf`` where a query has fewer relevant documents (:func:`pad_ranks` builds
it). Rows need not be sorted. Gains are binary. Each function returns one value per query.

- :func:`average_precision`: over *all* relevant documents (not truncated), like
  ``trec_eval``'s ``map``; a query with no relevant document gets 0.
- :func:`ndcg_at_k`: binary-gain nDCG with the ideal ranking of ``min(R, k)`` relevant docs.
- :func:`reciprocal_rank_at_k`: 1 / first relevant rank when it is ≤ k, else 0.
- :func:`recall_at_k`: share of relevant documents ranked ≤ k.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_ranks(ranks: Sequence[Sequence[float]]) -> np.ndarray:
    """Ragged per-query ranks → a sorted ``(n, max_len)`` float array padded with ``inf``."""
    width = max((len(r) for r in ranks), default=0)
    out = np.full((len(ranks), max(width, 1)), np.inf)
    for i, r in enumerate(ranks):
        out[i, :len(r)] = r
    out.sort(axis=1)
    return out


def _sorted(ranks: np.ndarray) -> np.ndarray:
    r = np.asarray(ranks, dtype=np.float64)
    if r.ndim == 1:
        r = r[None, :]
    return np.sort(r, axis=1)


def n_relevant(ranks: np.ndarray) -> np.ndarray:
    """Number of relevant documents per query (finite entries)."""
    return np.isfinite(_sorted(ranks)).sum(axis=1)


def average_precision(ranks: np.ndarray) -> np.ndarray:
    """AP = mean over the R relevant docs of (i / rank_i), ranks sorted ascending."""
    r = _sorted(ranks)
    n = np.isfinite(r).sum(axis=1)
    i = np.arange(1, r.shape[1] + 1, dtype=np.float64)[None, :]
    prec = np.where(np.isfinite(r), i / np.where(np.isfinite(r), r, 1.0), 0.0)
    return np.divide(prec.sum(axis=1), n, out=np.zeros(len(r)), where=n > 0)


def ndcg_at_k(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """Binary-gain nDCG@k: Σ_{rank≤k} 1/log2(rank+1) over the ideal Σ_{i≤min(R,k)} 1/log2(i+1)."""
    r = _sorted(ranks)
    n = np.isfinite(r).sum(axis=1)
    hit = r <= k
    dcg = np.where(hit, 1.0 / np.log2(np.where(hit, r, 1.0) + 1.0), 0.0).sum(axis=1)
    disc = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = disc[np.minimum(n, k)]
    return np.divide(dcg, idcg, out=np.zeros(len(r)), where=idcg > 0)


def first_relevant_rank(ranks: np.ndarray) -> np.ndarray:
    """The best (smallest) rank of a relevant document (``inf`` when there is none)."""
    return _sorted(ranks)[:, 0]


def reciprocal_rank_at_k(ranks: np.ndarray, k: int = 10) -> np.ndarray:
    """1 / first relevant rank if it is ≤ k, else 0 (MRR@k is its mean)."""
    first = first_relevant_rank(ranks)
    return np.where(first <= k, 1.0 / np.where(first <= k, first, 1.0), 0.0)


def recall_at_k(ranks: np.ndarray, k: int = 100) -> np.ndarray:
    """Share of the relevant documents ranked ≤ k (0 for a query with none)."""
    r = _sorted(ranks)
    n = np.isfinite(r).sum(axis=1)
    return np.divide((r <= k).sum(axis=1), n, out=np.zeros(len(r)), where=n > 0)


METRICS = {
    "map": average_precision,
    "ndcg@10": lambda r: ndcg_at_k(r, 10),
    "mrr@10": lambda r: reciprocal_rank_at_k(r, 10),
    "recall@100": lambda r: recall_at_k(r, 100),
}
"""Aggregate metric name (``run_metrics.metric``) → per-query function."""


def query_metrics(ranks: np.ndarray, grades: np.ndarray | None = None
                  ) -> dict[str, np.ndarray]:
    """The metric columns of ``query_results`` (AP, nDCG@10, MRR@10, Recall@100), by name.

    Binary gains: every document with a grade > 0 counts as 1. Without ``grades`` the finite
    entries of ``ranks`` are the relevant documents (``inf`` is padding); with them, an
    entry of grade > 0 and rank ``inf`` is a relevant document a run did not rank (it
    counts in the denominators, as in trec_eval).
    """
    if grades is None:
        return {"ap": average_precision(ranks), "ndcg_at_10": ndcg_at_k(ranks, 10),
                "mrr_at_10": reciprocal_rank_at_k(ranks, 10),
                "recall_at_100": recall_at_k(ranks, 100)}
    r, g = sort_judged(ranks, (np.asarray(grades) > 0).astype(np.float64))
    return {"ap": graded_ap(r, g), "ndcg_at_10": graded_ndcg(r, g, 10),
            "mrr_at_10": graded_rr(r, g, 1, 10), "recall_at_100": graded_recall(r, g, 1, 100)}


# ----------------------------------------------------------------------------- graded
# The functions below take the ranks *and grades* of a query's judged relevant documents:
# ``ranks`` (n, m) 1-based float ranks (``inf``: not ranked, i.e. not retrieved by a run
# that stops early, or padding) and ``grades`` (n, m) relevance grades (> 0 for a relevant
# document, 0 for padding). Each follows trec_eval's definition of the measure of the same
# ir_measures name (see :mod:`xlrun.evaluate.measures`); ``rel`` is trec_eval's relevance
# level (a document counts as relevant when its grade is ``>= rel``) and ``k`` a cutoff
# (``None``: the whole ranking).


def sort_judged(ranks: np.ndarray, grades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ordered by rank ascending (grades follow); 1-D inputs are one row."""
    r = np.asarray(ranks, dtype=np.float64)
    g = np.asarray(grades, dtype=np.float64)
    if r.ndim == 1:
        r, g = r[None, :], g[None, :]
    if r.shape != g.shape:
        raise ValueError(f"ranks {r.shape} and grades {g.shape} differ in shape")
    order = np.argsort(r, axis=1, kind="stable")
    return np.take_along_axis(r, order, 1), np.take_along_axis(g, order, 1)


def _within(r: np.ndarray, k: int | None) -> np.ndarray:
    return np.isfinite(r) if k is None else r <= k


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return np.divide(a, b, out=np.zeros(a.shape), where=np.asarray(b) > 0)


def graded_ap(r: np.ndarray, g: np.ndarray, rel: int = 1, k: int | None = None) -> np.ndarray:
    """AP (``k``: AP@k, trec_eval's ``map_cut``): Σ over relevant docs ranked ≤ k of
    (relevant docs up to its rank / its rank), divided by the number R of relevant docs."""
    mask = g >= rel
    cum = np.cumsum(mask, axis=1)
    hit = mask & _within(r, k)
    prec = np.where(hit, cum / np.where(hit, r, 1.0), 0.0)
    return _safe_div(prec.sum(axis=1), mask.sum(axis=1))


def graded_rr(r: np.ndarray, g: np.ndarray, rel: int = 1, k: int | None = None) -> np.ndarray:
    """RR: 1 / the rank of the first relevant doc (0 when it is not ranked ≤ k)."""
    hit = (g >= rel) & _within(r, k)
    first = np.where(hit, r, np.inf).min(axis=1)
    return np.where(np.isfinite(first), 1.0 / np.where(np.isfinite(first), first, 1.0), 0.0)


def graded_precision(r: np.ndarray, g: np.ndarray, rel: int = 1, k: int = 10) -> np.ndarray:
    """P@k: relevant docs ranked ≤ k, divided by k (trec_eval divides by k always)."""
    return ((g >= rel) & (r <= k)).sum(axis=1) / float(k)


def graded_recall(r: np.ndarray, g: np.ndarray, rel: int = 1, k: int | None = None
                  ) -> np.ndarray:
    """R@k: the share of the relevant docs ranked ≤ k."""
    mask = g >= rel
    return _safe_div((mask & _within(r, k)).sum(axis=1), mask.sum(axis=1))


def graded_success(r: np.ndarray, g: np.ndarray, rel: int = 1, k: int = 10) -> np.ndarray:
    """Success@k: 1 when a relevant doc is ranked ≤ k, else 0."""
    return ((g >= rel) & (r <= k)).any(axis=1).astype(np.float64)


def graded_rprec(r: np.ndarray, g: np.ndarray, rel: int = 1) -> np.ndarray:
    """R-precision: relevant docs ranked ≤ R, divided by R."""
    mask = g >= rel
    n = mask.sum(axis=1)
    return _safe_div((mask & (r <= n[:, None])).sum(axis=1), n)


def graded_iprec(r: np.ndarray, g: np.ndarray, recall: float, rel: int = 1) -> np.ndarray:
    """Interpolated precision at a recall level: the best precision at any rank whose
    recall is ≥ ``recall`` (trec_eval's ``iprec_at_recall``; 0 when none reaches it)."""
    mask = g >= rel
    cum = np.cumsum(mask, axis=1)
    n = mask.sum(axis=1)
    ranked = mask & np.isfinite(r)
    prec = np.where(ranked, cum / np.where(ranked, r, 1.0), 0.0)
    rec = _safe_div(cum, n[:, None] * np.ones_like(cum))
    ok = ranked & (rec >= recall)
    return np.where(ok, prec, 0.0).max(axis=1, initial=0.0)


def graded_ndcg(r: np.ndarray, g: np.ndarray, k: int | None = None) -> np.ndarray:
    """nDCG (``k``: nDCG@k) with the grades as gains, as trec_eval: Σ_{rank ≤ k}
    gain / log2(rank + 1) over the same sum for the ideal order (gains sorted descending,
    the first ``k``)."""
    gain = np.where(g > 0, g, 0.0)
    hit = (gain > 0) & _within(r, k)
    dcg = np.where(hit, gain / np.log2(np.where(hit, r, 1.0) + 1.0), 0.0).sum(axis=1)
    ideal = -np.sort(-gain, axis=1)
    pos = np.arange(1, ideal.shape[1] + 1, dtype=np.float64)[None, :]
    if k is not None:
        ideal = np.where(pos <= k, ideal, 0.0)
    idcg = (ideal / np.log2(pos + 1.0)).sum(axis=1)
    return _safe_div(dcg, idcg)
