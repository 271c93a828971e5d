"""Exact search: top-k order with ties, exact ranks, chunk max-pooling, faiss backend."""

from __future__ import annotations

import numpy as np
import pytest

from xlrun.evaluate.search import exact_search, order_keys


def _brute(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Per query: document indices ordered by (score desc, index asc)."""
    s = q.astype(np.float32) @ d.astype(np.float32).T
    return np.array([np.lexsort((np.arange(len(row)), -row)) for row in s])


def test_topk_and_ranks_match_brute_force_with_ties() -> None:
    rng = np.random.default_rng(0)
    # few distinct small-integer vectors → many ties, exact in any BLAS
    base = rng.integers(-3, 4, size=(5, 8)).astype(np.float32)
    docs = base[rng.integers(0, 5, size=60)]
    queries = rng.integers(-3, 4, size=(9, 8)).astype(np.float32)
    rel = [sorted(rng.choice(60, size=int(rng.integers(1, 6)), replace=False).tolist())
           for _ in range(9)]
    res = exact_search(queries, docs, 17, rel, device="cpu", block_size=4)
    order = _brute(queries, docs)
    assert np.array_equal(res.top_idx, order[:, :17])
    for i, r in enumerate(rel):
        pos = {int(d): p + 1 for p, d in enumerate(order[i])}
        assert sorted(res.relevant_ranks[i][np.isfinite(res.relevant_ranks[i])]) == \
            sorted(pos[d] for d in r)


def test_order_keys_are_monotone() -> None:
    import torch

    s = torch.tensor([[0.5, -0.25, 0.5, -1.0, 1.0, 0.0]])
    keys = order_keys(s)[0].tolist()
    got = sorted(range(6), key=lambda j: -keys[j])
    assert got == [4, 0, 2, 5, 1, 3]


def test_k_larger_than_collection_and_empty() -> None:
    q = np.eye(3, dtype=np.float32)
    res = exact_search(q, q, 10, [[0], [1], [2]], device="cpu")
    assert res.top_idx.shape == (3, 3)
    assert res.relevant_ranks[:, 0].tolist() == [1, 1, 1]
    empty = exact_search(q, np.zeros((0, 3), np.float32), 5, [[], [], []], device="cpu")
    assert empty.top_idx.shape == (3, 0)


def test_chunked_documents_take_max_over_chunks() -> None:
    rng = np.random.default_rng(1)
    chunks = rng.standard_normal((10, 6)).astype(np.float32)
    group = np.array([0, 0, 1, 2, 2, 2, 3, 4, 4, 5])
    queries = rng.standard_normal((4, 6)).astype(np.float32)
    s = queries @ chunks.T
    doc_scores = np.stack([s[:, group == g].max(1) for g in range(6)], 1)
    res = exact_search(queries, chunks, 3, [[1, 4]] * 4, doc_group=group, device="cpu")
    expected = np.array([np.lexsort((np.arange(6), -row)) for row in doc_scores])
    assert np.array_equal(res.top_idx, expected[:, :3])
    assert np.allclose(res.top_scores, np.take_along_axis(doc_scores, expected[:, :3], 1))


def test_faiss_backend_agrees_without_ties() -> None:
    pytest.importorskip("faiss")
    rng = np.random.default_rng(2)
    docs = rng.standard_normal((50, 16)).astype(np.float32)
    queries = rng.standard_normal((7, 16)).astype(np.float32)
    a = exact_search(queries, docs, 10, [[3]] * 7, device="cpu")
    b = exact_search(queries, docs, 10, [[3]] * 7, device="cpu", backend="faiss")
    assert np.array_equal(a.top_idx, b.top_idx)
    assert np.array_equal(a.relevant_ranks, b.relevant_ranks)
