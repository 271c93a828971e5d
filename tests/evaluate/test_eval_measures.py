"""Measures by ir_measures names: every supported measure equals ir_measures' pytrec_eval
backend on generated full rankings (ties and graded qrels included), and unsupported names
are refused with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from xlrun.errors import SpecError
from xlrun.evaluate import measures as X

ir_measures = pytest.importorskip("ir_measures")
pytest.importorskip("pytrec_eval")

NAMES = ["AP", "AP@5", "AP(rel=2)", "AP(rel=2)@20", "nDCG", "nDCG@1", "nDCG@10", "nDCG@100",
         "RR", "RR(rel=2)", "RR@1", "RR@10", "RR(rel=3)@5", "P@1", "P@5", "P(rel=2)@10",
         "P@1000", "R@1", "R@10", "R@100", "R@1000", "Success@1", "Success@5",
         "Success(rel=2)@10", "Rprec", "Rprec(rel=2)", "IPrec@0.0", "IPrec@0.3", "IPrec@0.5",
         "IPrec@1.0"]


def trec_order(scores: dict[str, float]) -> list[str]:
    """trec_eval's order of a query's documents: score descending, then docno descending."""
    return sorted(scores, key=lambda d: (scores[d], d.encode("utf-8")), reverse=True)


def generated(seed: int, n_q: int = 60, n_docs: int = 400
              ) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Random graded qrels and full-ranking runs with many tied scores."""
    rng = np.random.default_rng(seed)
    alphabet = list("abcxyz019_:#é")
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(n_q):
        ids = set()
        while len(ids) < n_docs:
            ids.add("".join(rng.choice(alphabet, size=int(rng.integers(1, 6)))))
        docs = sorted(ids)
        levels = int(rng.integers(2, 40))  # few distinct scores: many ties
        scores = rng.integers(0, levels, size=n_docs) / 7.0 + (rng.random() if q % 2 else 0)
        run[f"q{q}"] = {d: float(s) for d, s in zip(docs, scores, strict=True)}
        n_rel = int(rng.integers(1, 25))
        rel = rng.choice(n_docs, size=n_rel, replace=False)
        grades = rng.integers(1, 4, size=n_rel) if q % 3 else np.ones(n_rel, dtype=int)
        qrels[f"q{q}"] = {docs[i]: int(g) for i, g in zip(rel, grades, strict=True)}
    return qrels, run


def xlrun_values(names: list[str], qrels: dict[str, dict[str, int]],
                 run: dict[str, dict[str, float]]) -> dict[tuple[str, str], float]:
    measures = X.parse_measures(names)
    out = {}
    for qid, scores in run.items():
        rank_of = {d: i + 1 for i, d in enumerate(trec_order(scores))}
        rel = qrels[qid]
        ranks = np.array([[rank_of.get(d, np.inf) for d in rel]], dtype=float)
        grades = np.array([list(rel.values())], dtype=float)
        for name, v in X.compute(measures, ranks, grades).items():
            out[(name, qid)] = float(v[0])
    return out


def reference(names: list[str], qrels: dict[str, dict[str, int]],
              run: dict[str, dict[str, float]]) -> dict[tuple[str, str], float]:
    """ir_measures with the pytrec_eval backend; RR@k (which pytrec_eval lacks) as pytrec_eval's
    RR on the run cut to its top k in trec_eval's order."""
    ref: dict[tuple[str, str], float] = {}
    direct = [ir_measures.parse_measure(n) for n in names]
    cut_rr = [m for m in direct if m.NAME == "RR" and "cutoff" in m.params]
    plain = [m for m in direct if m not in cut_rr]
    qrels_list = [ir_measures.Qrel(q, d, g) for q, docs in qrels.items() for d, g in docs.items()]
    for m in ir_measures.pytrec_eval.iter_calc(plain, qrels_list, run):
        ref[(str(m.measure), m.query_id)] = m.value
    for m in cut_rr:
        k = m.params["cutoff"]
        top = {q: {d: s[d] for d in trec_order(s)[:k]} for q, s in run.items()}
        whole = ir_measures.RR(**{k2: v for k2, v in m.params.items() if k2 != "cutoff"})
        for v in ir_measures.pytrec_eval.iter_calc([whole], qrels_list, top):
            ref[(str(m), v.query_id)] = v.value
    return ref


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_supported_measure_equals_pytrec_eval(seed: int) -> None:
    qrels, run = generated(seed)
    ours = xlrun_values(NAMES, qrels, run)
    ref = reference(NAMES, qrels, run)
    assert set(ref) == set(ours)
    worst = max(abs(ours[k] - ref[k]) for k in ref)
    assert worst <= 1e-9, worst
    # the generated data exercise what they should: ties at relevant ranks, graded qrels
    tied = sum(1 for q, s in run.items() for d in qrels[q]
               if sum(1 for v in s.values() if v == s[d]) > 1)
    assert tied > 100
    assert any(g > 1 for docs in qrels.values() for g in docs.values())


def test_rr_at_k_equals_the_msmarco_backend_without_ties() -> None:
    """An independent check of RR@k where pytrec_eval has none (ir_measures' msmarco
    provider; runs without ties, where no tie rule matters)."""
    qrels, run = generated(9)
    run = {q: {d: float(i) for i, d in enumerate(trec_order(s))} for q, s in run.items()}
    names = ["RR@1", "RR@10", "RR@100"]
    ours = xlrun_values(names, qrels, run)
    qrels_list = [ir_measures.Qrel(q, d, g) for q, docs in qrels.items() for d, g in docs.items()]
    for m in ir_measures.msmarco.iter_calc([ir_measures.parse_measure(n) for n in names],
                                           qrels_list, run):
        assert ours[(str(m.measure), m.query_id)] == pytest.approx(m.value, abs=1e-12)


def test_the_tie_rule_is_trec_evals() -> None:
    """Three tied documents, the relevant one with the smallest id: trec_eval ranks it last."""
    qrels = {"q": {"a": 1}}
    run = {"q": {"a": 0.5, "b": 0.5, "c": 0.5}}
    assert xlrun_values(["RR"], qrels, run)[("RR", "q")] == pytest.approx(1 / 3)
    assert reference(["RR"], qrels, run)[("RR", "q")] == pytest.approx(1 / 3)


def test_unretrieved_relevant_documents_count_as_trec_eval_counts_them() -> None:
    """A run cut at depth 50 (an imported run): relevant documents below it still count in
    R (AP, R@k) and in the ideal DCG."""
    qrels, run = generated(4)
    short = {q: {d: s[d] for d in trec_order(s)[:50]} for q, s in run.items()}
    names = ["AP", "nDCG", "nDCG@10", "R@100", "RR", "P@5", "Rprec", "IPrec@0.5"]
    ours = xlrun_values(names, qrels, short)
    ref = reference(names, qrels, short)
    assert max(abs(ours[k] - ref[k]) for k in ref) <= 1e-9


def test_canonical_names_and_trec_eval_names() -> None:
    assert X.canonical_names(["nDCG@10", "ndcg_cut.10", "map", "AP(rel=1)", "P.5,10",
                              "recip_rank", "NDCG@10"]) == ["nDCG@10", "AP", "P@5", "P@10", "RR"]


@pytest.mark.parametrize(("name", "why"), [
    ("Judged@10", "judged non-relevant"),
    ("Bpref", "judged non-relevant"),
    ("nDCG(judged_only=True)@10", "judged non-relevant"),
    ("SetP", "retrieved set"),
    ("NumRet", "retrieved set"),
    ("ERR@10", "does not compute"),
    ("NumRel", "does not compute"),
    ("nDCG(dcg='exp-log2')@10", "log2"),
    ("nDCG(gains={0:0,1:1,2:3})@10", "grades"),
    ("P", "needs a cutoff"),
    ("R", "needs a cutoff"),
    ("P@0", "positive integer"),
    ("P@5.5", "positive integer"),
    ("Rprec@10", "takes no cutoff"),
    ("R(rel=2)@10", "rel="),
    ("IPrec@1.5", "recall level"),
    ("ndcg@10", "unknown measure"),
    ("nonsense", "unknown measure"),
    ("", "expected a measure"),
])
def test_unsupported_measures_are_refused_with_the_reason(name: str, why: str) -> None:
    with pytest.raises(SpecError) as e:
        X.parse_measures(["AP", name], "eval[0].measures")
    text = str(e.value)
    assert "eval[0].measures[1]" in text and why in text, text
    assert "nDCG@k" in text or "ndcg@10" not in name


# ----------------------------------------------------------------------------- the runner
class IntegerEncoder:
    """Vectors of small integers from a hash of the text: inner products are exact small
    integers, so many documents tie (and duplicated texts tie exactly)."""

    def encode(self, texts, side, batch_size=64, progress=None):
        import hashlib

        out = np.stack([np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16))
                        .integers(-2, 3, size=4) for t in texts]).astype(np.float32)
        if progress is not None:
            progress(len(texts))
        return out


def tied_dataset(seed: int = 0):
    """Three languages, parallel, graded qrels, doc ids whose order differs from their index."""
    from xlrun.evaluate.types import Document, EvalData, Query

    rng = np.random.default_rng(seed)
    langs = ["de", "en", "sw"]
    corpus, queries, qrels, grades = {}, {}, {}, {}
    for lang in langs:
        ids = [f"{lang}:{''.join(rng.choice(list('zyxab#é0'), size=4))}{i}" for i in range(60)]
        corpus[lang] = [Document(d, lang, f"text {int(rng.integers(0, 25))}") for d in ids]
        queries[lang] = [Query(f"q{i}", lang, f"question {lang} {i}") for i in range(15)]
    for i in range(15):
        rel = {lang: rng.choice(60, size=int(rng.integers(1, 4)), replace=False) for lang in langs}
        for lang in langs:
            docs = {corpus[y][j].id for y in langs for j in rel[y]}
            qrels[(lang, f"q{i}")] = frozenset(docs)
            grades[(lang, f"q{i}")] = {d: int(rng.integers(1, 4)) for d in docs
                                       if rng.random() < 0.5}
    return EvalData("local", "test", queries, corpus, qrels, parallel=True, grades=grades)


def test_runner_measures_equal_pytrec_eval_with_ties_and_grades() -> None:
    """The whole evaluation path (search with its tie rule, grades, measures) against
    pytrec_eval on the full ranking of the same integer scores."""
    import polars as pl

    from xlrun.evaluate.runner import evaluate_dataset
    from xlrun.evaluate.types import POOL
    from xlrun.spec.schema import EvalSection

    data = tied_dataset()
    names = [n for n in NAMES if not n.startswith("RR@") and "RR(" not in n]
    cfg = EvalSection("local", measures=X.canonical_names(names), top_k=0)
    enc = IntegerEncoder()
    out = evaluate_dataset(enc, data, cfg, device="cpu")
    qm = pl.from_arrow(out.query_measures)
    qr = pl.from_arrow(out.query_results)
    assert qm.height == qr.height * len(cfg.measures)
    vec = {d.id: enc.encode([d.text], "p")[0] for docs in data.corpus.values() for d in docs}
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for row in qr.iter_rows(named=True):
        q = next(q for q in data.queries[row["query_lang"]] if q.id == row["query_id"])
        docs = [d for lang, ds in data.corpus.items() for d in ds
                if row["doc_lang"] in (POOL, lang)]
        key = f"{row['setting']}/{row['query_lang']}/{row['doc_lang']}/{q.id}"
        qv = enc.encode([q.text], "q")[0]
        run[key] = {d.id: float(vec[d.id] @ qv) for d in docs}
        qrels[key] = {d.id: data.grade(q, d.id) for d in docs if d.id in data.relevant(q)}
    ref = reference(names, qrels, run)
    ours = {(r["measure"], f"{r['setting']}/{r['query_lang']}/{r['doc_lang']}/{r['query_id']}"):
            r["value"] for r in qm.iter_rows(named=True)}
    assert set(ours) == set(ref)
    assert max(abs(ours[k] - ref[k]) for k in ref) <= 1e-9
    tied = sum(1 for k, s in run.items() for d in qrels[k]
               if sum(1 for v in s.values() if v == s[d]) > 1)
    assert tied > 50
    # the query_results columns are the binary measures of the same ranking
    binary = {k: dict.fromkeys(v, 1) for k, v in qrels.items()}
    ref_bin = reference(["AP", "nDCG@10", "R@100", "RR"], binary, run)
    for row in qr.iter_rows(named=True):
        key = f"{row['setting']}/{row['query_lang']}/{row['doc_lang']}/{row['query_id']}"
        assert row["ap"] == pytest.approx(ref_bin[("AP", key)], abs=1e-9)
        assert row["ndcg_at_10"] == pytest.approx(ref_bin[("nDCG@10", key)], abs=1e-9)
        assert row["recall_at_100"] == pytest.approx(ref_bin[("R@100", key)], abs=1e-9)
        rr = ref_bin[("RR", key)]
        assert row["mrr_at_10"] == pytest.approx(rr if rr >= 0.1 else 0.0, abs=1e-9)
    # run_metrics holds each measure's mean per cell and per setting
    rm = pl.from_arrow(out.run_metrics)
    for name in cfg.measures:
        got = rm.filter((pl.col("metric") == name) & (pl.col("setting") == "cross")
                        & (pl.col("query_lang") == POOL))["value"][0]
        want = qm.filter((pl.col("measure") == name) & (pl.col("setting") == "cross"))["value"]
        assert got == pytest.approx(want.mean(), abs=1e-12)


@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_search_breaks_ties_by_the_given_order(backend: str) -> None:
    """exact_search with ``tie_break``: top-k and relevant ranks follow (score desc,
    tie_break asc), also where the k-th score ties beyond the top-k (faiss: within what it
    returns)."""
    if backend == "faiss":
        pytest.importorskip("faiss")
    from xlrun.evaluate.search import exact_search

    rng = np.random.default_rng(5)
    docs = rng.integers(-1, 2, size=(200, 3)).astype(np.float32)  # 27 distinct vectors
    queries = rng.integers(-1, 2, size=(30, 3)).astype(np.float32)
    tie = rng.permutation(200)
    rel = [list(rng.choice(200, size=4, replace=False)) for _ in range(30)]
    res = exact_search(queries, docs, 7, rel, device="cpu", backend=backend, tie_break=tie)
    for i, q in enumerate(queries):
        scores = docs @ q
        order = sorted(range(200), key=lambda d, s=scores: (-s[d], tie[d]))
        if backend == "torch":
            assert res.top_idx[i].tolist() == order[:7]
        else:  # faiss picks among scores tied at the 7th itself; it orders what it picked
            got = res.top_idx[i].tolist()
            assert [scores[d] for d in got] == [scores[d] for d in order[:7]]
            assert got == sorted(got, key=lambda d, s=scores: (-s[d], tie[d]))
        rank_of = {d: r + 1 for r, d in enumerate(order)}
        assert sorted(res.relevant_ranks[i].tolist()) == sorted(rank_of[d] for d in rel[i])
