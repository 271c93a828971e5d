"""Exact inner-product search with exact ranks for every relevant document.

Vectors are L2-normalised, so inner product = cosine. For each block of queries the full
score matrix against the collection is computed (torch matmul; on CUDA when available),
and from that one matrix come both

- the top-k, ordered by score descending then document index ascending (ties at the k-th
  score are resolved by the same rule, so the order is deterministic), and
- the exact 1-based rank of every relevant document: ``1 + #{score > s} + #{score == s and
  index < d}`` — the same order as the top-k, never truncated, so AP covers all relevant
  documents.

The ranks are counted on the float scores, a few queries at a time so that the comparisons
stay in cache: ``#{score > s}`` for every relevant document, and only where a score is tied
with a relevant one, ``#{score == s and index < d}``. The top-k comes from ``torch.topk`` on
the scores, re-ordered by (score desc, index asc); rows where the k-th score is tied with
documents outside the top-k take it from unique int64 keys instead (:func:`order_keys`:
order-preserving float bits, then the reversed index), so ties resolve the same way always.

``tie_break`` replaces the index in that order: ``(score desc, tie_break asc)``. The
evaluation passes each document's position in descending document-id order, so equal scores
rank as trec_eval ranks them (score descending, then docno descending).

``backend="faiss"`` takes the top-k from a faiss ``IndexFlatIP`` (GPU faiss when present)
instead; ranks still come from the matmul, and faiss may order exact ties differently.
Documents split into chunks are searched with ``doc_group`` (row → document): a
document's score is the max over its chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Backend = Literal["torch", "faiss"]
_BLOCK_ELEMENTS = 1 << 23  # ~8M scores per block


@dataclass(frozen=True)
class SearchResult:
    """Top-k and relevant ranks for a batch of queries."""

    top_idx: np.ndarray  # (n_queries, k) document indices, best first
    top_scores: np.ndarray  # (n_queries, k) float32 scores
    relevant_ranks: np.ndarray  # (n_queries, max_relevant) float64 1-based ranks, inf padding


def pad_relevant(relevant: Sequence[Sequence[int]]) -> np.ndarray:
    """Ragged lists of relevant document indices → ``(n, max_len)`` int64 padded with -1."""
    width = max((len(r) for r in relevant), default=0)
    out = np.full((len(relevant), max(width, 1)), -1, dtype=np.int64)
    for i, r in enumerate(relevant):
        out[i, :len(r)] = r
    return out


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _group_max(scores: torch.Tensor, group: torch.Tensor, n_groups: int) -> torch.Tensor:
    out = torch.full((scores.shape[0], n_groups), -torch.inf, dtype=scores.dtype,
                     device=scores.device)
    return out.scatter_reduce_(1, group.expand(scores.shape[0], -1), scores, reduce="amax")


def order_keys(scores: torch.Tensor, tie: torch.Tensor | None = None) -> torch.Tensor:
    """Unique int64 keys sorting like (score desc, index asc): larger key = better rank.

    The float32 score's bits are mapped to an order-preserving integer and shifted left; the
    low 31 bits hold ``2**31 - 1 - index``, so equal scores rank by ascending index
    (``tie``: by ascending ``tie[index]`` instead, a permutation of the indices).
    """
    bits = scores.float().contiguous().view(torch.int32).to(torch.int64)
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    idx = (tie if tie is not None
           else torch.arange(scores.shape[1], device=scores.device, dtype=torch.int64))
    return (bits << 31) + ((1 << 31) - 1 - idx)[None, :]


def _topk_ordered(keys: torch.Tensor, scores: torch.Tensor, k: int
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k by (score desc, index asc): the keys are unique, so topk is exact."""
    idx = torch.topk(keys, k, dim=1, sorted=True).indices
    return idx, scores.gather(1, idx)


def _ranks(keys: torch.Tensor, rel: torch.Tensor) -> np.ndarray:
    """Exact 1-based ranks of ``rel`` (b, R; -1 = padding) among ``keys``; inf for padding."""
    valid = (rel >= 0).cpu().numpy()
    target = keys.gather(1, rel.clamp(min=0))
    if keys.device.type == "cpu":  # numpy counts ~5x faster than torch on CPU
        kn, tn = keys.numpy(), target.numpy()
        higher = np.stack([np.count_nonzero(kn > tn[:, j:j + 1], axis=1)
                           for j in range(tn.shape[1])], axis=1)
    else:
        higher = (keys[:, None, :] > target[:, :, None]).sum(-1).cpu().numpy()
    return np.where(valid, 1.0 + higher, np.inf)


_RANK_CHUNK_ELEMENTS = 1 << 18  # CPU: scores compared per step (~1 MB, stays in cache)


def score_ranks(scores: torch.Tensor, rel: torch.Tensor, tie: torch.Tensor | None = None
                ) -> np.ndarray:
    """Exact 1-based ranks of ``rel`` (b, R; -1 = padding) in ``scores`` (b, m) under the
    order (score desc, index asc) (``tie``: ``tie[index]`` asc); inf for padding. The same
    ranks as :func:`_ranks` on :func:`order_keys`, counted on the floats (on CPU a few rows
    at a time, in cache)."""
    b, m = scores.shape
    valid = (rel >= 0).cpu().numpy()
    idx = rel.clamp(min=0)
    target = scores.gather(1, idx)
    if scores.device.type == "cpu":
        sn, tn = scores.numpy(), target.numpy()
        higher = np.empty(tn.shape, dtype=np.int64)
        ties = np.empty(tn.shape, dtype=np.int64)
        step = max(1, _RANK_CHUNK_ELEMENTS // max(1, m))
        for a in range(0, b, step):
            sc = sn[a:a + step]
            for j in range(tn.shape[1]):
                t = tn[a:a + step, j:j + 1]
                higher[a:a + step, j] = np.count_nonzero(sc > t, axis=1)
                ties[a:a + step, j] = np.count_nonzero(sc == t, axis=1)
    else:
        s3, t3 = scores[:, None, :], target[:, :, None]
        higher = (s3 > t3).sum(-1).cpu().numpy()
        ties = (s3 == t3).sum(-1).cpu().numpy()
    extra = (ties > 1) & valid
    if extra.any():  # a document with the same score and a lower index ranks above
        cols = tie if tie is not None else torch.arange(m, device=scores.device)
        idx_n = idx.cpu().numpy()
        for i, j in zip(*np.nonzero(extra), strict=True):
            same = (scores[i] == target[i, j]) & (cols < cols[int(idx_n[i, j])])
            higher[i, j] += int(same.sum())
    return np.where(valid, 1.0 + higher, np.inf)


def _topk_scores(scores: torch.Tensor, k: int, tie: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k by (score desc, index asc) (``tie``: ``tie[index]`` asc) from the float scores;
    rows whose k-th score is tied beyond the top-k fall back to :func:`order_keys`."""
    vals, idx = torch.topk(scores, k, dim=1, sorted=True)
    kth = vals[:, -1:]
    ambiguous = (scores >= kth).sum(1) > k
    # within the top-k, equal scores by ascending index: sort by index, then stably by score
    order = torch.argsort(idx if tie is None else tie[idx], dim=1)
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    order = torch.argsort(-vals, dim=1, stable=True)
    idx, vals = idx.gather(1, order), vals.gather(1, order)
    if bool(ambiguous.any()):
        rows = ambiguous.nonzero().flatten()
        ki, kv = _topk_ordered(order_keys(scores[rows], tie), scores[rows], k)
        idx[rows], vals[rows] = ki, kv
    return idx, vals


def _faiss_topk(queries: np.ndarray, docs: np.ndarray, k: int, tie: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
    import faiss  # deferred on purpose: optional backend; workers never import it

    index = faiss.IndexFlatIP(docs.shape[1])
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), 0, index)
    index.add(np.ascontiguousarray(docs, dtype=np.float32))
    scores, idx = index.search(np.ascontiguousarray(queries, dtype=np.float32), k)
    order = np.lexsort((idx if tie is None else tie[idx], -scores), axis=1)  # ties: index asc
    return np.take_along_axis(idx, order, 1), np.take_along_axis(scores, order, 1)


def exact_search(queries: np.ndarray, docs: np.ndarray, k: int,
                 relevant: np.ndarray | Sequence[Sequence[int]] | None = None, *,
                 doc_group: np.ndarray | None = None, n_docs: int | None = None,
                 device: torch.device | str | None = None, backend: Backend = "torch",
                 block_size: int | None = None, tie_break: np.ndarray | None = None
                 ) -> SearchResult:
    """Search ``queries`` (n, d) against ``docs`` (m, d) by inner product.

    Args:
        k: top-k to return (clipped to the number of documents).
        relevant: per query, the indices of its relevant documents (ragged lists or a
            padded array with -1); their exact ranks are returned.
        doc_group: optional (m,) document index of each row of ``docs`` (chunks of long
            documents); a document's score is the max over its rows. ``n_docs`` is the
            number of documents (default ``doc_group.max() + 1``).
        device: where to compute (default CUDA if available).
        backend: ``torch`` (default) or ``faiss`` for the top-k (not with ``doc_group``).
        block_size: queries per block (default: ~32M scores per block).
        tie_break: optional (n_docs,) permutation of ``0 … n_docs-1``: equal scores rank by
            ascending ``tie_break[doc]`` instead of ascending document index.
    """
    dev = torch.device(device) if device is not None else default_device()
    nq = len(queries)
    n = int(n_docs if n_docs is not None else (doc_group.max() + 1 if doc_group is not None
                                                 and len(doc_group) else len(docs)))
    kk = max(0, min(int(k), n))
    rel = (relevant if isinstance(relevant, np.ndarray) and relevant.ndim == 2
           else pad_relevant(relevant if relevant is not None else [[] for _ in range(nq)]))
    width = rel.shape[1]
    top_idx = np.zeros((nq, kk), dtype=np.int64)
    top_scores = np.zeros((nq, kk), dtype=np.float32)
    ranks = np.full((nq, width), np.inf)
    if nq == 0 or n == 0:
        return SearchResult(top_idx, top_scores, ranks)
    if backend == "faiss" and doc_group is None and kk > 0:
        top_idx, top_scores = _faiss_topk(queries, docs, kk, tie_break)
    elif backend not in ("torch", "faiss"):
        raise ValueError(f"unknown search backend {backend!r}; allowed: torch, faiss")
    use_torch_topk = not (backend == "faiss" and doc_group is None)

    d = torch.from_numpy(np.ascontiguousarray(docs, dtype=np.float32)).to(dev)
    tie = (torch.from_numpy(np.asarray(tie_break, dtype=np.int64)).to(dev)
           if tie_break is not None else None)
    group = (torch.from_numpy(np.asarray(doc_group, dtype=np.int64)).to(dev)[None, :]
             if doc_group is not None else None)
    per_row = max(len(docs), n) * max(1, width)
    bs = block_size or max(1, _BLOCK_ELEMENTS // per_row)
    for start in range(0, nq, bs):
        stop = min(nq, start + bs)
        q = torch.from_numpy(np.ascontiguousarray(queries[start:stop], dtype=np.float32)).to(dev)
        s = q @ d.T
        if group is not None:
            s = _group_max(s, group, n)
        if use_torch_topk and kk > 0:
            ti, ts = _topk_scores(s, kk, tie)
            top_idx[start:stop] = ti.cpu().numpy()
            top_scores[start:stop] = ts.cpu().numpy()
        r = torch.from_numpy(rel[start:stop]).to(dev)
        if (r >= 0).any():
            ranks[start:stop] = score_ranks(s, r, tie)
    return SearchResult(top_idx, top_scores, ranks)
