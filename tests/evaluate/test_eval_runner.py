"""The runner against an independent brute-force computation, on fixtures with a fake encoder."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xlrun.evaluate.encode import EmbeddingCache, chunk_texts
from xlrun.evaluate.runner import EvalOutput
from xlrun.evaluate.runner import evaluate_dataset as _evaluate_arrow
from xlrun.evaluate.tasks import load_dataset
from xlrun.evaluate.types import EvalData
from xlrun.spec.schema import EvalSection

FIX = Path(__file__).resolve().parents[1] / "fixtures"


class FakeEncoder:
    """Deterministic unit vectors from a hash of the text; counts calls per side."""

    def __init__(self, dim: int = 8) -> None:
        self.dim = dim
        self.calls: list[tuple[str, int]] = []

    def encode(self, texts, side, batch_size=64, progress=None):
        self.calls.append((side, len(texts)))
        out = np.stack([np.random.default_rng(
            int(hashlib.md5(t.encode()).hexdigest()[:8], 16)).standard_normal(self.dim)
            for t in texts]).astype(np.float32)
        if progress is not None:
            progress(len(texts))
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class _PolarsOutput:
    """The runner's Arrow tables seen as polars frames (the runner itself needs no polars)."""

    def __init__(self, out: EvalOutput) -> None:
        self.arrow = out
        self.query_results = pl.from_arrow(out.query_results)
        self.retrieved = pl.from_arrow(out.retrieved)
        self.run_metrics = pl.from_arrow(out.run_metrics)
        self.metric = out.metric
        self.info = out.info


def evaluate_dataset(*args, **kwargs) -> _PolarsOutput:
    return _PolarsOutput(_evaluate_arrow(*args, **kwargs))


def _vec(enc: FakeEncoder, text: str) -> np.ndarray:
    return enc.encode([text], "x")[0]


def brute_map(enc: FakeEncoder, data: EvalData, setting: str) -> dict[tuple[str, str], float]:
    """mAP per (query_lang, doc_lang) by sorting every score list in plain numpy."""
    langs = sorted(data.corpus)
    pool = [d for lang in langs for d in data.corpus[lang]]
    out: dict[tuple[str, str], float] = {}
    for x in sorted(data.queries):
        if setting == "mono":
            targets = [(x, data.corpus[x])]
        elif setting == "cross":
            targets = [(y, data.corpus[y]) for y in langs if y != x]
        else:
            targets = [("all", pool)]
        for y, docs in targets:
            dvec = np.stack([_vec(enc, d.text) for d in docs])
            aps = []
            for q in data.queries[x]:
                rel = {i for i, d in enumerate(docs) if d.id in data.relevant(q)}
                if not rel:
                    continue
                s = dvec @ _vec(enc, q.text)
                order = sorted(range(len(docs)), key=lambda i, s=s: (-s[i], i))
                hits, prec = 0, 0.0
                for r, i in enumerate(order, start=1):
                    if i in rel:
                        hits += 1
                        prec += hits / r
                aps.append(prec / len(rel))
            out[(x, y)] = float(np.mean(aps))
    return out


@pytest.mark.parametrize("fixture,dataset", [("lareqa", "xquad-r"), ("local_eval", "local")])
def test_runner_matches_brute_force(fixture: str, dataset: str) -> None:
    cfg = EvalSection(dataset, path=str(FIX / fixture), top_k=5)
    data = load_dataset(cfg)
    enc = FakeEncoder()
    out = evaluate_dataset(enc, data, cfg, device="cpu")
    for setting in ("mono", "cross", "multi"):
        expected = brute_map(enc, data, setting)
        rows = out.run_metrics.filter((pl.col("setting") == setting) & (pl.col("metric") == "map")
                                      & (pl.col("query_lang") != "all"))
        got = {(r["query_lang"], r["doc_lang"]): r["value"] for r in rows.iter_rows(named=True)}
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, abs=1e-6), (setting, key)
        per_query = out.query_results.filter(pl.col("setting") == setting)["ap"].mean()
        assert out.metric(setting, "map") == pytest.approx(per_query)
    # each language and side encoded exactly once, shared by all settings
    assert len([c for c in enc.calls if c[0] != "x"]) == 2 * len(data.languages)


def test_frames_match_db_tables_and_skip_rules() -> None:
    from xlrun.db.models import QueryResult, Retrieved, RunMetric

    cfg = EvalSection("xquad-r", path=str(FIX / "lareqa"), top_k=3)
    data = load_dataset(cfg)
    out = evaluate_dataset(FakeEncoder(), data, cfg, device="cpu")
    for frame, table in ((out.query_results, QueryResult), (out.retrieved, Retrieved),
                         (out.run_metrics, RunMetric)):
        cols = [c.name for c in table.__table__.columns if c.name != "run_id"]
        assert sorted(frame.columns) == sorted(cols)
    qr = out.query_results
    # q6 exists only in en: scored in mono en and multi, skipped in cross en→de
    assert qr.filter((pl.col("query_id") == "q6") & (pl.col("setting") == "cross")).height == 0
    assert qr.filter((pl.col("query_id") == "q6") & (pl.col("setting") == "mono")).height == 1
    assert qr.filter(pl.col("setting") != "multi")["rank_distance"].null_count() == \
        qr.filter(pl.col("setting") != "multi").height
    multi = qr.filter(pl.col("setting") == "multi")
    assert multi["doc_lang"].unique().to_list() == ["all"]
    assert multi.filter(pl.col("query_lang") == "en")["same_lang_expected"][0] == \
        pytest.approx(6 / 12)
    # top-3 rows per query and setting, ranks 1..3, relevant flags agree with qrels
    rt = out.retrieved
    assert rt.height == 3 * qr.height
    assert rt.group_by(["setting", "query_lang", "doc_lang", "query_id"]).agg(
        pl.col("rank").sort())["rank"].to_list()[0] == [1, 2, 3]
    for r in rt.iter_rows(named=True):
        assert r["is_relevant"] == (r["doc_id"] in data.qrels[(r["query_lang"], r["query_id"])])
    # first relevant rank agrees with the retrieved list when it falls in the top 3
    top = rt.filter(pl.col("is_relevant")).group_by(
        ["setting", "query_lang", "doc_lang", "query_id"]).agg(pl.col("rank").min().alias("m"))
    joined = top.join(qr, on=["setting", "query_lang", "doc_lang", "query_id"])
    assert (joined["m"] == joined["first_relevant_rank"]).all()
    metrics = set(out.run_metrics.filter(pl.col("setting") == "multi")["metric"])
    assert metrics == {"map", "ndcg@10", "mrr@10", "recall@100", "rank_distance",
                       "same_lang_at_10"}


def test_non_parallel_top_k_zero_and_cache() -> None:
    cfg = EvalSection("mldr", path=str(FIX / "mldr"), top_k=0)
    data = load_dataset(cfg)
    enc = FakeEncoder()
    cache = EmbeddingCache()
    out = evaluate_dataset(enc, data, cfg, cache=cache, device="cpu")
    assert set(out.query_results["setting"]) == {"mono", "multi"}  # no cross: not parallel
    multi = out.query_results.filter(pl.col("setting") == "multi")
    # rank distance needs parallel answers: NULL here, never a misleading 0
    assert multi["rank_distance"].null_count() == multi.height
    assert multi["same_lang_at_10"].null_count() == 0
    assert "rank_distance" not in set(out.run_metrics["metric"])
    assert out.retrieved.height == 0 and "doc_id" in out.retrieved.columns
    n_calls = len(enc.calls)
    again = evaluate_dataset(enc, data, cfg, cache=cache, device="cpu")
    assert len(enc.calls) == n_calls  # all vectors from the cache
    assert again.query_results.equals(out.query_results)


def test_disk_cache_and_chunking(tmp_path: Path) -> None:
    cfg = EvalSection("mldr", path=str(FIX / "mldr"), settings=["mono"],
                      chunk_long_documents=True, max_length=6)
    data = load_dataset(cfg)
    enc = FakeEncoder()
    out1 = evaluate_dataset(enc, data, cfg, cache=EmbeddingCache(tmp_path), model_key="m1",
                            device="cpu")
    n_calls = len(enc.calls)
    assert any(tmp_path.glob("*.npy"))
    out2 = evaluate_dataset(enc, data, cfg, cache=EmbeddingCache(tmp_path), model_key="m1",
                            device="cpu")
    assert len(enc.calls) == n_calls and out2.query_results.equals(out1.query_results)
    # no tokenizer → whitespace chunks of max_length - 2 words
    chunks, group = chunk_texts(["a b c d e f g h i", "short"], 4)
    assert chunks == ["a b c d", "e f g h", "i", "short"] and group.tolist() == [0, 0, 0, 1]
    passage_sizes = [n for side, n in enc.calls if side == "passage"]
    assert sum(passage_sizes) > sum(len(d) for d in data.corpus.values())


def _polars_aggregate(qr: pl.DataFrame) -> pl.DataFrame:
    """``run_metrics`` as the runner computed it with polars before it went polars-free."""
    keys = ["dataset", "split", "setting", "query_lang", "doc_lang"]
    cols = {"map": "ap", "ndcg@10": "ndcg_at_10", "mrr@10": "mrr_at_10",
            "recall@100": "recall_at_100", "rank_distance": "rank_distance",
            "same_lang_at_10": "same_lang_at_10"}
    exprs = [pl.col(c).mean().alias(m) for m, c in cols.items()]
    per_pair = qr.group_by(keys).agg(exprs)
    overall = (qr.group_by(["dataset", "split", "setting"]).agg(exprs)
               .with_columns(pl.lit("all").alias("query_lang"), pl.lit("all").alias("doc_lang")))
    long = pl.concat([per_pair, overall.select(per_pair.columns)]).unpivot(
        index=keys, variable_name="metric", value_name="value")
    is_bias = pl.col("metric").is_in(["rank_distance", "same_lang_at_10"])
    long = long.filter(~is_bias | (pl.col("setting") == "multi")).drop_nulls("value")
    order = {"mono": 0, "cross": 1, "multi": 2}
    return (long.with_columns(pl.col("setting").replace_strict(order, default=99).alias("_o"))
            .sort(["_o", "query_lang", "doc_lang", "metric"]).drop("_o")
            .select(["dataset", "split", "setting", "query_lang", "doc_lang", "metric", "value"]))


@pytest.mark.parametrize("fixture,dataset", [("lareqa", "xquad-r"), ("local_eval", "local")])
def test_run_metrics_equal_the_former_polars_aggregation(fixture: str, dataset: str) -> None:
    from xlrun.evaluate.runner import aggregate

    cfg = EvalSection(dataset, path=str(FIX / fixture), top_k=0)
    out = evaluate_dataset(FakeEncoder(), load_dataset(cfg), cfg, device="cpu")
    expected = _polars_aggregate(out.query_results)
    for got in (out.run_metrics, pl.from_arrow(aggregate(out.arrow.query_results))):
        assert got.drop("value").equals(expected.drop("value"))
        assert np.allclose(got["value"].to_numpy(), expected["value"].to_numpy(),
                           rtol=1e-12, atol=0)
