"""Evaluate one encoder on one dataset split: encode once, search every setting, score.

Settings (``EvalSection.settings``):

- ``mono``: queries in X against X's candidates (``doc_lang = X``);
- ``cross``: queries in X against Y's candidates for every ordered pair X ≠ Y — only for
  parallel datasets (``EvalData.parallel``); silently skipped otherwise;
- ``multi``: queries in X against the pool of every language's candidates
  (``doc_lang = "all"``), with the language-bias measures of :mod:`xlrun.evaluate.bias`.

A query with no relevant document in the searched collection is skipped in that setting
(it has no defined AP); it still counts where it has one. Candidates and queries are
encoded once (per language and side) and reused by every setting.

The output frames have exactly the columns of the ``query_results``, ``retrieved`` and
``run_metrics`` tables, minus ``run_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from xlrun.evaluate import bias
from xlrun.evaluate import metrics as M
from xlrun.evaluate.encode import (
    CacheKey,
    EmbeddingCache,
    Progress,
    chunk_budget,
    chunk_texts,
    encode,
    model_fingerprint,
    passage_max_length,
    texts_digest,
)
from xlrun.evaluate.search import Backend, exact_search, pad_relevant
from xlrun.evaluate.types import POOL, SETTINGS, EvalData
from xlrun.spec.schema import EvalSection

QUERY_RESULTS_SCHEMA: dict[str, Any] = {
    "dataset": pl.String, "split": pl.String, "setting": pl.String, "query_id": pl.String,
    "query_lang": pl.String, "doc_lang": pl.String, "n_relevant": pl.Int64, "ap": pl.Float64,
    "ndcg_at_10": pl.Float64, "mrr_at_10": pl.Float64, "recall_at_100": pl.Float64,
    "first_relevant_rank": pl.Int64, "rank_distance": pl.Float64,
    "same_lang_at_10": pl.Float64, "same_lang_expected": pl.Float64,
}
RETRIEVED_SCHEMA: dict[str, Any] = {
    "dataset": pl.String, "split": pl.String, "setting": pl.String, "query_lang": pl.String,
    "doc_lang": pl.String, "query_id": pl.String, "rank": pl.Int64, "doc_id": pl.String,
    "score": pl.Float64, "is_relevant": pl.Boolean,
}
RUN_METRICS_SCHEMA: dict[str, Any] = {
    "dataset": pl.String, "split": pl.String, "setting": pl.String, "query_lang": pl.String,
    "doc_lang": pl.String, "metric": pl.String, "value": pl.Float64,
}
_METRIC_COLUMNS = {"map": "ap", "ndcg@10": "ndcg_at_10", "mrr@10": "mrr_at_10",
                   "recall@100": "recall_at_100"}
_BIAS_COLUMNS = {"rank_distance": "rank_distance", "same_lang_at_10": "same_lang_at_10"}


@dataclass(frozen=True)
class EvalOutput:
    """The three result frames of one dataset evaluation (DB columns minus ``run_id``)."""

    query_results: pl.DataFrame
    retrieved: pl.DataFrame
    run_metrics: pl.DataFrame
    info: dict[str, Any] = field(default_factory=dict, compare=False)

    def metric(self, setting: str, metric: str = "map", query_lang: str = POOL,
               doc_lang: str = POOL) -> float:
        """One aggregate value from ``run_metrics`` (KeyError when absent)."""
        rows = self.run_metrics.filter(
            (pl.col("setting") == setting) & (pl.col("metric") == metric)
            & (pl.col("query_lang") == query_lang) & (pl.col("doc_lang") == doc_lang))
        if rows.height == 0:
            raise KeyError((setting, metric, query_lang, doc_lang))
        return float(rows["value"][0])


@dataclass
class _Collection:
    """The encoded candidates of one language (or of the pool)."""

    vectors: np.ndarray
    group: np.ndarray | None  # chunk row → document index (chunked documents)
    ids: np.ndarray  # object array of document ids
    langs: np.ndarray  # object array of document languages
    _series: pl.Series | None = None

    def id_series(self) -> pl.Series:
        """The document ids as a polars Series (built once)."""
        if self._series is None:
            self._series = pl.Series("doc_id", self.ids.tolist(), dtype=pl.String)
        return self._series


def _empty(schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def _encode_all(encoder: Any, data: EvalData, cfg: EvalSection, cache: EmbeddingCache,
                model_key: str | None, progress: Progress | None
                ) -> tuple[dict[str, np.ndarray], dict[str, _Collection]]:
    model, stable = model_fingerprint(encoder, model_key)

    def run(stage: str, lang: str, side: str, variant: str, texts: list[str],
            done: list[int], total: int) -> np.ndarray:
        def tick(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(stage, done[0], total)

        key = CacheKey(model, data.dataset, data.split, lang, side, variant, texts_digest(texts))
        return cache.get_or_compute(
            key, lambda: encode(encoder, texts, side, cfg.batch_size, tick), persist=stable)

    queries: dict[str, np.ndarray] = {}
    total_q = sum(len(v) for v in data.queries.values())
    done_q = [0]
    for lang, qs in sorted(data.queries.items()):
        if qs:
            queries[lang] = run("encode queries", lang, "query", "q", [q.text for q in qs],
                                done_q, total_q)

    collections: dict[str, _Collection] = {}
    budget = chunk_budget(encoder, cfg.max_length) if cfg.chunk_long_documents else 0
    variant = f"max_length={cfg.max_length};chunk={budget}"
    texts_by_lang: dict[str, tuple[list[str], np.ndarray | None]] = {}
    for lang, docs in sorted(data.corpus.items()):
        if not docs:
            continue
        texts = [d.text for d in docs]
        if cfg.chunk_long_documents:
            chunks, group = chunk_texts(texts, budget, getattr(encoder, "tokenizer", None))
            texts_by_lang[lang] = (chunks, None if len(chunks) == len(texts) else group)
        else:
            texts_by_lang[lang] = (texts, None)
    total_d = sum(len(t) for t, _ in texts_by_lang.values())
    done_d = [0]
    with passage_max_length(encoder, cfg.max_length):
        for lang, (texts, group) in texts_by_lang.items():
            docs = data.corpus[lang]
            vecs = run("encode passages", lang, "passage", variant, texts, done_d, total_d)
            collections[lang] = _Collection(
                vecs, group, np.array([d.id for d in docs], dtype=object),
                np.array([d.lang for d in docs], dtype=object))
    return queries, collections


def _pool(collections: dict[str, _Collection]) -> _Collection:
    parts = [collections[lang] for lang in sorted(collections)]
    chunked = any(c.group is not None for c in parts)
    groups: list[np.ndarray] = []
    offset = 0
    for c in parts:
        n = len(c.ids)
        if chunked:
            g = c.group if c.group is not None else np.arange(n, dtype=np.int64)
            groups.append(g + offset)
        offset += n
    return _Collection(np.concatenate([c.vectors for c in parts]),
                       np.concatenate(groups) if chunked else None,
                       np.concatenate([c.ids for c in parts]),
                       np.concatenate([c.langs for c in parts]))


class _Frames:
    """Accumulates column chunks for the three frames."""

    def __init__(self, data: EvalData) -> None:
        self.data = data
        self.qr: list[pl.DataFrame] = []
        self.rt: list[pl.DataFrame] = []

    def add(self, setting: str, qlang: str, dlang: str, qids: np.ndarray, ranks: np.ndarray,
            top_idx: np.ndarray, top_scores: np.ndarray, col: _Collection,
            rel_idx: np.ndarray, top_k: int, bias_cols: dict[str, np.ndarray] | None) -> None:
        n = len(qids)
        first = M.first_relevant_rank(ranks)
        cols: dict[str, Any] = {
            "dataset": pl.repeat(self.data.dataset, n, eager=True),
            "split": pl.repeat(self.data.split, n, eager=True),
            "setting": pl.repeat(setting, n, eager=True), "query_id": qids.tolist(),
            "query_lang": pl.repeat(qlang, n, eager=True),
            "doc_lang": pl.repeat(dlang, n, eager=True),
            "n_relevant": M.n_relevant(ranks), **M.query_metrics(ranks),
            "first_relevant_rank": first.astype(np.int64),
        }
        for name in ("rank_distance", "same_lang_at_10", "same_lang_expected"):
            cols[name] = (bias_cols[name] if bias_cols is not None
                          else pl.repeat(None, n, dtype=pl.Float64, eager=True))
        bias_names = ["rank_distance", "same_lang_at_10", "same_lang_expected"]
        self.qr.append(pl.DataFrame(cols, schema=QUERY_RESULTS_SCHEMA)
                       .with_columns(pl.col(bias_names).fill_nan(None)))
        k = min(top_k, top_idx.shape[1])
        if k <= 0:
            return
        idx = top_idx[:, :k]
        relevant = (idx[:, :, None] == rel_idx[:, None, :]).any(-1)
        consts = {"dataset": self.data.dataset, "split": self.data.split, "setting": setting,
                  "query_lang": qlang, "doc_lang": dlang}
        frame = pl.DataFrame({
            "query_id": pl.Series(qids.tolist(), dtype=pl.String).gather(
                np.repeat(np.arange(n), k)),
            "rank": np.tile(np.arange(1, k + 1, dtype=np.int64), n),
            "doc_id": col.id_series().gather(idx.ravel()),
            "score": top_scores[:, :k].ravel().astype(np.float64),
            "is_relevant": relevant.ravel(),
        }).with_columns(*[pl.lit(v, dtype=pl.String).alias(c) for c, v in consts.items()])
        self.rt.append(frame.select(list(RETRIEVED_SCHEMA)).cast(RETRIEVED_SCHEMA))

    def query_results(self) -> pl.DataFrame:
        return pl.concat(self.qr) if self.qr else _empty(QUERY_RESULTS_SCHEMA)

    def retrieved(self) -> pl.DataFrame:
        return pl.concat(self.rt) if self.rt else _empty(RETRIEVED_SCHEMA)


def aggregate(query_results: pl.DataFrame) -> pl.DataFrame:
    """``run_metrics`` rows: means per (setting, query_lang, doc_lang) and per setting ("all")."""
    if query_results.height == 0:
        return _empty(RUN_METRICS_SCHEMA)
    keys = ["dataset", "split", "setting", "query_lang", "doc_lang"]
    exprs = [pl.col(c).mean().alias(m) for m, c in {**_METRIC_COLUMNS, **_BIAS_COLUMNS}.items()]
    per_pair = query_results.group_by(keys).agg(exprs)
    overall = (query_results.group_by(["dataset", "split", "setting"]).agg(exprs)
               .with_columns(pl.lit(POOL).alias("query_lang"), pl.lit(POOL).alias("doc_lang")))
    wide = pl.concat([per_pair, overall.select(per_pair.columns)])
    long = wide.unpivot(index=keys, variable_name="metric", value_name="value")
    is_bias = pl.col("metric").is_in(list(_BIAS_COLUMNS))
    long = long.filter(~is_bias | (pl.col("setting") == "multi")).drop_nulls("value")
    order = {s: i for i, s in enumerate(SETTINGS)}
    return (long.with_columns(pl.col("setting").replace_strict(order, default=99).alias("_o"))
            .sort(["_o", "query_lang", "doc_lang", "metric"]).drop("_o")
            .select(list(RUN_METRICS_SCHEMA)).cast(RUN_METRICS_SCHEMA))


def _pairs(settings: Sequence[str], qlangs: list[str], dlangs: list[str], parallel: bool
           ) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for setting in SETTINGS:
        if setting not in settings:
            continue
        for x in qlangs:
            if setting == "mono" and x in dlangs:
                out.append((setting, x, x))
            elif setting == "cross" and parallel:
                out.extend((setting, x, y) for y in dlangs if y != x)
            elif setting == "multi":
                out.append((setting, x, POOL))
    return out


def evaluate_dataset(encoder: Any, data: EvalData, cfg: EvalSection,
                     progress: Progress | None = None, *, cache: EmbeddingCache | None = None,
                     model_key: str | None = None, device: Any = None,
                     backend: Backend = "torch") -> EvalOutput:
    """Encode, search and score ``data`` in every setting of ``cfg``.

    Args:
        encoder: anything with ``encode(texts, side, batch_size=, progress=)`` returning
            L2-normalised vectors (see :mod:`xlrun.evaluate.encode`).
        data: the loaded dataset (languages already filtered by the loader).
        cfg: the ``[[eval]]`` section (settings, top_k, batch_size, max_length, chunking).
        progress: optional ``progress(stage, done, total)``; stages ``encode queries``,
            ``encode passages``, ``search``.
        cache: an :class:`EmbeddingCache` to share vectors across calls (default: a new one).
        model_key: a stable id of the weights (enables the on-disk cache).
        device: torch device for the search (default CUDA when available).
        backend: ``torch`` or ``faiss`` top-k (see :mod:`xlrun.evaluate.search`).
    """
    cache = cache if cache is not None else EmbeddingCache()
    queries, collections = _encode_all(encoder, data, cfg, cache, model_key, progress)
    qlangs = sorted(queries)
    dlangs = sorted(collections)
    pool = _pool(collections) if collections and "multi" in cfg.settings else None
    frames = _Frames(data)
    pairs = _pairs(cfg.settings, qlangs, dlangs, data.parallel)
    index_of: dict[str, dict[str, int]] = {
        lang: {d: i for i, d in enumerate(c.ids)} for lang, c in collections.items()}
    pool_index = ({d: i for i, d in enumerate(pool.ids)} if pool is not None else {})
    pool_counts = ({lang: float(np.mean(pool.langs == lang)) for lang in qlangs}
                   if pool is not None else {})
    for step, (setting, x, y) in enumerate(pairs, start=1):
        col = pool if y == POOL else collections[y]
        where = pool_index if y == POOL else index_of[y]
        qs = data.queries[x]
        rel = [sorted(where[d] for d in data.relevant(q) if d in where) for q in qs]
        keep = np.array([bool(r) for r in rel], dtype=bool)
        if keep.any():
            rel_arr = pad_relevant([r for r in rel if r])
            k = max(cfg.top_k, 10 if setting == "multi" else 0)
            res = exact_search(queries[x][keep], col.vectors, k, rel_arr, doc_group=col.group,
                               n_docs=len(col.ids), device=device, backend=backend)
            qids = np.array([q.id for q in qs], dtype=object)[keep]
            bias_cols = None
            if setting == "multi":
                top_langs = col.langs[res.top_idx[:, :10]]
                # rank distance compares a question's parallel answers across languages: it
                # means nothing where relevant documents are not translations of each other
                bias_cols = {
                    "rank_distance": (bias.rank_distance(res.relevant_ranks) if data.parallel
                                      else np.full(len(qids), np.nan)),
                    "same_lang_at_10": bias.same_language_share(
                        top_langs, np.full(len(qids), x, dtype=object), 10),
                    "same_lang_expected": np.full(len(qids), pool_counts[x]),
                }
            frames.add(setting, x, y, qids, res.relevant_ranks, res.top_idx, res.top_scores,
                       col, rel_arr, cfg.top_k, bias_cols)
        if progress is not None:
            progress("search", step, len(pairs))
    qr = frames.query_results()
    return EvalOutput(qr, frames.retrieved(), aggregate(qr),
                      info={"n_pairs": len(pairs), "cache_hits": cache.hits,
                            "cache_misses": cache.misses})
