"""Per-query metrics and bias measures: hand-computed values and ir_measures agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xlrun.evaluate import bias
from xlrun.evaluate import metrics as M


def test_hand_computed_values() -> None:
    ranks = M.pad_ranks([[1, 3], [2], [12, 5, 150], []])
    assert M.n_relevant(ranks).tolist() == [2, 1, 3, 0]
    ap = M.average_precision(ranks)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert ap[1] == pytest.approx(1 / 2)
    assert ap[2] == pytest.approx((1 / 5 + 2 / 12 + 3 / 150) / 3)
    assert ap[3] == 0.0
    nd = M.ndcg_at_k(ranks, 10)
    ideal2 = 1 + 1 / math.log2(3)
    assert nd[0] == pytest.approx((1 + 1 / math.log2(4)) / ideal2)
    assert nd[1] == pytest.approx(1 / math.log2(3))
    assert nd[2] == pytest.approx((1 / math.log2(6)) / (ideal2 + 1 / math.log2(4)))
    rr = M.reciprocal_rank_at_k(ranks, 10)
    assert rr.tolist() == pytest.approx([1.0, 0.5, 0.2, 0.0])
    assert M.reciprocal_rank_at_k(M.pad_ranks([[11]]), 10)[0] == 0.0
    assert M.recall_at_k(ranks, 100).tolist() == pytest.approx([1.0, 1.0, 2 / 3, 0.0])
    assert M.first_relevant_rank(ranks)[:3].tolist() == [1, 2, 5]


def test_unsorted_rows_are_fine() -> None:
    a = M.average_precision(np.array([[7.0, 2.0, np.inf]]))
    b = M.average_precision(np.array([[2.0, 7.0, np.inf]]))
    assert a[0] == pytest.approx(b[0]) == pytest.approx((1 / 2 + 2 / 7) / 2)


def test_against_ir_measures_on_random_runs() -> None:
    ir_measures = pytest.importorskip("ir_measures")
    from ir_measures import AP, RR, R, nDCG

    rng = np.random.default_rng(7)
    n_docs, n_q = 300, 40
    qrels, run, ranks = [], [], []
    for q in range(n_q):
        scores = rng.permutation(n_docs).astype(float)  # distinct scores, no ties
        rel = rng.choice(n_docs, size=int(rng.integers(1, 12)), replace=False)
        order = np.argsort(-scores)
        rank_of = np.empty(n_docs, dtype=int)
        rank_of[order] = np.arange(1, n_docs + 1)
        ranks.append(sorted(rank_of[rel].tolist()))
        qrels += [ir_measures.Qrel(f"q{q}", f"d{d}", 1) for d in rel]
        run += [ir_measures.ScoredDoc(f"q{q}", f"d{d}", float(scores[d])) for d in range(n_docs)]
    ref: dict[tuple[str, str], float] = {}
    for m in ir_measures.iter_calc([AP, nDCG @ 10, RR @ 10, R @ 100], qrels, run):
        ref[(str(m.measure), m.query_id)] = m.value
    padded = M.pad_ranks(ranks)
    ours = {"AP": M.average_precision(padded), "nDCG@10": M.ndcg_at_k(padded, 10),
            "RR@10": M.reciprocal_rank_at_k(padded, 10), "R@100": M.recall_at_k(padded, 100)}
    for name, values in ours.items():
        for q in range(n_q):
            assert values[q] == pytest.approx(ref[(name, f"q{q}")], abs=1e-6), (name, q)


def test_bias_measures() -> None:
    ranks = M.pad_ranks([[3, 40, 7], [5], []])
    rd = bias.rank_distance(ranks)
    assert rd[0] == 37 and rd[1] == 0 and np.isnan(rd[2])
    top = np.array([["en", "de", "en", "fr"], ["de", "de", "de", "de"]], dtype=object)
    share = bias.same_language_share(top, np.array(["en", "en"], dtype=object), k=4)
    assert share.tolist() == [0.5, 0.0]
    assert bias.expected_same_language(np.array(["en", "de", "de", "fr"]), "de") == 0.5
