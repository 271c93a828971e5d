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


def query_metrics(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """The metric columns of ``query_results`` (AP, nDCG@10, MRR@10, Recall@100), by name."""
    return {"ap": average_precision(ranks), "ndcg_at_10": ndcg_at_k(ranks, 10),
            "mrr_at_10": reciprocal_rank_at_k(ranks, 10), "recall_at_100": recall_at_k(ranks, 100)}
