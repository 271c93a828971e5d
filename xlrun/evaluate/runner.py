"""Evaluate one encoder on one dataset split: encode once, search every setting, score.

Settings (``EvalSection.settings``):

- ``mono``: queries in X against X's candidates (``doc_lang = X``);
- ``cross``: queries in X against Y's candidates for every ordered pair X ≠ Y — only for
  parallel datasets (``EvalData.parallel``); silently skipped otherwise. A dataset may list
  its pairs and what each searches (``EvalData.cross``: a Tatoeba pair searches its own
  sentences only), and ``[[eval]] pairs`` keeps only the pairs it names;
- ``multi``: queries in X against the pool of every language's candidates
  (``doc_lang = "all"``), with the language-bias measures of :mod:`xlrun.evaluate.bias`.

A setting the dataset does not define (``EvalData.settings``) is skipped. A query with no
relevant document in the searched collection is skipped in that setting
(it has no defined AP); it still counts where it has one. Candidates and queries are
encoded once (per language and side) and reused by every setting.

Equal scores rank by document id, descending (trec_eval's order: score descending, then
docno descending), in the top-k and in the ranks of the relevant documents alike, so every
measure equals trec_eval's on a run file of the same scores. The measures an ``[[eval]]``
table names (``measures``, by ir_measures names; :mod:`xlrun.evaluate.measures`) are
computed from the ranks and grades of every relevant document and stored per query in
``query_measures`` and as means in ``run_metrics``.

The output frames have exactly the columns of the ``query_results``, ``query_measures``,
``retrieved`` and ``run_metrics`` tables, minus ``run_id``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

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
from xlrun.evaluate.measures import Measure, compute, parse_measures
from xlrun.evaluate.search import Backend, exact_search, pad_relevant
from xlrun.evaluate.types import POOL, SETTINGS, EvalData
from xlrun.spec.schema import EvalSection

QUERY_RESULTS_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("split", pa.string()), ("setting", pa.string()),
    ("query_id", pa.string()), ("query_lang", pa.string()), ("doc_lang", pa.string()),
    ("n_relevant", pa.int64()), ("ap", pa.float64()), ("ndcg_at_10", pa.float64()),
    ("mrr_at_10", pa.float64()), ("recall_at_100", pa.float64()),
    ("first_relevant_rank", pa.int64()), ("rank_distance", pa.float64()),
    ("same_lang_at_10", pa.float64()), ("same_lang_expected", pa.float64()),
])
RETRIEVED_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("split", pa.string()), ("setting", pa.string()),
    ("query_lang", pa.string()), ("doc_lang", pa.string()), ("query_id", pa.string()),
    ("rank", pa.int64()), ("doc_id", pa.string()), ("score", pa.float64()),
    ("is_relevant", pa.bool_()),
])
QUERY_MEASURES_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("split", pa.string()), ("measure", pa.string()),
    ("setting", pa.string()), ("query_lang", pa.string()), ("doc_lang", pa.string()),
    ("query_id", pa.string()), ("value", pa.float64()),
])
RUN_METRICS_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("split", pa.string()), ("setting", pa.string()),
    ("query_lang", pa.string()), ("doc_lang", pa.string()), ("metric", pa.string()),
    ("value", pa.float64()),
])
_METRIC_COLUMNS = {"map": "ap", "ndcg@10": "ndcg_at_10", "mrr@10": "mrr_at_10",
                   "recall@100": "recall_at_100"}
_BIAS_COLUMNS = {"rank_distance": "rank_distance", "same_lang_at_10": "same_lang_at_10"}
_BIAS_NAMES = ("rank_distance", "same_lang_at_10", "same_lang_expected")


@dataclass(frozen=True)
class EvalOutput:
    """The three result tables of one dataset evaluation (DB columns minus ``run_id``), as
    pyarrow Tables (``polars.from_arrow`` turns one into a polars frame at no cost).

    ``info`` holds counts and the seconds spent per stage (``encode_s``, ``search_s``,
    ``metrics_s``; CPU seconds of this process: ``encode_cpu_s``, …). ``query_measures``
    holds the ``[[eval]] measures`` per query (empty when the section names none).
    """

    query_results: pa.Table
    retrieved: pa.Table
    run_metrics: pa.Table
    info: dict[str, Any] = field(default_factory=dict, compare=False)
    query_measures: pa.Table = field(default_factory=QUERY_MEASURES_SCHEMA.empty_table)

    def tables(self) -> dict[str, pa.Table]:
        """The result tables by database table name (what ``write_results`` stores)."""
        return {"query_results": self.query_results, "query_measures": self.query_measures,
                "retrieved": self.retrieved, "run_metrics": self.run_metrics}

    def metric(self, setting: str, metric: str = "map", query_lang: str = POOL,
               doc_lang: str = POOL) -> float:
        """One aggregate value from ``run_metrics`` (KeyError when absent)."""
        cols = self.run_metrics.to_pydict()
        for s, m, q, d, v in zip(cols["setting"], cols["metric"], cols["query_lang"],
                                 cols["doc_lang"], cols["value"], strict=True):
            if (s, m, q, d) == (setting, metric, query_lang, doc_lang):
                return float(v)
        raise KeyError((setting, metric, query_lang, doc_lang))


@dataclass
class Collection:
    """The candidates of one language (or of the pool): vectors and ids."""

    vectors: np.ndarray
    group: np.ndarray | None  # chunk row → document index (chunked documents)
    ids: np.ndarray  # object array of document ids
    langs: np.ndarray  # object array of document languages
    _ids_arrow: pa.Array | None = None
    _tie: np.ndarray | None = None

    def id_array(self) -> pa.Array:
        """The document ids as an Arrow array (built once)."""
        if self._ids_arrow is None:
            self._ids_arrow = pa.array(self.ids.tolist(), type=pa.string())
        return self._ids_arrow

    def tie_break(self) -> np.ndarray:
        """Each document's position in descending id order (built once): equal scores rank
        by it, as trec_eval ranks them (docno descending, compared as UTF-8 bytes, which is
        Python's code-point order)."""
        if self._tie is None:
            self._tie = trec_tie_break(self.ids)
        return self._tie


def trec_tie_break(ids: Sequence[str] | np.ndarray) -> np.ndarray:
    """Position of each id in descending order (ids unique): the ``tie_break`` of
    :func:`~xlrun.evaluate.search.exact_search` that ranks equal scores as trec_eval does."""
    values = list(ids)
    order = sorted(range(len(values)), key=values.__getitem__, reverse=True)
    tie = np.empty(len(values), dtype=np.int64)
    tie[np.asarray(order, dtype=np.int64)] = np.arange(len(values), dtype=np.int64)
    return tie


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


def _encode_all(encoder: Any, data: EvalData, cfg: EvalSection, cache: EmbeddingCache,
                model_key: str | None, progress: Progress | None
                ) -> tuple[dict[str, np.ndarray], dict[str, Collection]]:
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

    collections: dict[str, Collection] = {}
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
            collections[lang] = Collection(
                vecs, group, np.array([d.id for d in docs], dtype=object),
                np.array([d.lang for d in docs], dtype=object))
    return queries, collections


def _pool(collections: dict[str, Collection]) -> Collection:
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
    return Collection(np.concatenate([c.vectors for c in parts]),
                      np.concatenate(groups) if chunked else None,
                      np.concatenate([c.ids for c in parts]),
                      np.concatenate([c.langs for c in parts]))


class ResultFrames:
    """Accumulates column chunks for the ``query_results``, ``query_measures`` and
    ``retrieved`` tables of one dataset, one (setting, query language, document language)
    cell at a time (:meth:`add`), and their means for ``run_metrics``."""

    def __init__(self, data: EvalData, measures: Sequence[Measure] = ()) -> None:
        self.data = data
        self.measures = list(measures)
        self.qr: dict[str, list[Any]] = {name: [] for name in QUERY_RESULTS_SCHEMA.names}
        self.qm: list[pa.Table] = []
        self.rt: list[pa.Table] = []
        self.groups: list[tuple[str, str, str, dict[str, np.ndarray]]] = []

    def add(self, setting: str, qlang: str, dlang: str, qids: np.ndarray, ranks: np.ndarray,
            top_idx: np.ndarray, top_scores: np.ndarray, col: Collection,
            rel_idx: np.ndarray, top_k: int, bias_cols: dict[str, np.ndarray] | None,
            grades: np.ndarray | None = None) -> None:
        """One cell: ``ranks`` (n, m) of the relevant documents ``rel_idx`` (indices into
        ``col``, -1 padding) with their ``grades`` (default: 1 for every real entry; a
        relevant document an imported run did not rank has rank ``inf`` and grade > 0),
        the top-k (``top_idx``/``top_scores``) and the multi setting's bias columns."""
        n = len(qids)
        if grades is None:
            grades = (np.asarray(rel_idx) >= 0).astype(np.float64)
        grades = np.asarray(grades, dtype=np.float64)
        relevant_ranks = np.where(grades > 0, ranks, np.inf)
        first = M.first_relevant_rank(relevant_ranks)
        first = np.where(np.isfinite(first), first, 0)  # 0: no relevant document ranked
        values: dict[str, np.ndarray] = {"n_relevant": (grades > 0).sum(axis=1),
                                         **M.query_metrics(ranks, grades)}
        for name in _BIAS_NAMES:
            values[name] = (np.asarray(bias_cols[name], dtype=np.float64) if bias_cols
                            is not None else np.full(n, np.nan))
        self.groups.append((setting, qlang, dlang, values))
        qr = self.qr
        for name, value in (("dataset", self.data.dataset), ("split", self.data.split),
                            ("setting", setting), ("query_lang", qlang), ("doc_lang", dlang)):
            qr[name].append([value] * n)
        qr["query_id"].append([str(q) for q in qids.tolist()])
        for name, v in values.items():
            qr[name].append(v)
        qr["first_relevant_rank"].append(first)
        if self.measures:
            measured = compute(self.measures, ranks, grades)
            values.update(measured)
            self._add_measures(setting, qlang, dlang, qids, measured)
        k = min(top_k, top_idx.shape[1])
        if k <= 0:
            return
        idx = top_idx[:, :k]
        relevant = (idx[:, :, None] == rel_idx[:, None, :]).any(-1)
        consts = {"dataset": self.data.dataset, "split": self.data.split, "setting": setting,
                  "query_lang": qlang, "doc_lang": dlang}
        qid_arr = pa.array([str(q) for q in qids.tolist()], type=pa.string())
        cols = {c: pa.array([v] * (n * k), type=pa.string()) for c, v in consts.items()}
        cols.update({
            "query_id": qid_arr.take(pa.array(np.repeat(np.arange(n), k))),
            "rank": pa.array(np.tile(np.arange(1, k + 1, dtype=np.int64), n)),
            "doc_id": col.id_array().take(pa.array(idx.ravel())),
            "score": pa.array(top_scores[:, :k].ravel().astype(np.float64)),
            "is_relevant": pa.array(relevant.ravel()),
        })
        self.rt.append(pa.table([cols[c] for c in RETRIEVED_SCHEMA.names],
                                schema=RETRIEVED_SCHEMA))

    def _add_measures(self, setting: str, qlang: str, dlang: str, qids: np.ndarray,
                      measured: dict[str, np.ndarray]) -> None:
        n, names = len(qids), list(measured)
        qid_arr = pa.array([str(q) for q in qids.tolist()], type=pa.string())
        consts = {"dataset": self.data.dataset, "split": self.data.split, "setting": setting,
                  "query_lang": qlang, "doc_lang": dlang}
        cols = {c: pa.array([v] * (n * len(names)), type=pa.string()) for c, v in consts.items()}
        cols.update({
            "measure": pa.array([m for m in names for _ in range(n)], type=pa.string()),
            "query_id": qid_arr.take(pa.array(np.tile(np.arange(n), len(names)))),
            "value": pa.array(np.concatenate([measured[m] for m in names]).astype(np.float64)),
        })
        self.qm.append(pa.table([cols[c] for c in QUERY_MEASURES_SCHEMA.names],
                                schema=QUERY_MEASURES_SCHEMA))

    def query_measures(self) -> pa.Table:
        """The ``query_measures`` rows of the cells added so far."""
        return pa.concat_tables(self.qm) if self.qm else _empty(QUERY_MEASURES_SCHEMA)

    def query_results(self) -> pa.Table:
        if not self.qr["query_id"]:
            return _empty(QUERY_RESULTS_SCHEMA)
        arrays = []
        for f in QUERY_RESULTS_SCHEMA:
            parts = self.qr[f.name]
            if pa.types.is_string(f.type):
                arrays.append(pa.array([v for p in parts for v in p], type=f.type))
            elif pa.types.is_integer(f.type):
                arrays.append(pa.array(np.concatenate(parts).astype(np.int64)))
            else:  # float: NaN (a bias measure that does not apply) is stored as NULL
                arrays.append(pa.array(np.concatenate(parts).astype(np.float64),
                                       from_pandas=True))
        return pa.table(arrays, schema=QUERY_RESULTS_SCHEMA)

    def retrieved(self) -> pa.Table:
        return pa.concat_tables(self.rt) if self.rt else _empty(RETRIEVED_SCHEMA)

    def run_metrics(self) -> pa.Table:
        """Means per (setting, query_lang, doc_lang) and per setting (``all``/``all``);
        bias measures in the ``multi`` setting only; undefined means are left out."""
        rows = _aggregate_groups(self.data.dataset, self.data.split, self.groups,
                                 [m.name for m in self.measures])
        return _metrics_table(rows)

    def output(self, info: dict[str, Any] | None = None) -> EvalOutput:
        """The four tables as an :class:`EvalOutput`."""
        return EvalOutput(self.query_results(), self.retrieved(), self.run_metrics(),
                          info=dict(info or {}), query_measures=self.query_measures())


def _mean(values: list[np.ndarray]) -> float | None:
    v = np.concatenate(values) if len(values) > 1 else values[0]
    v = v[~np.isnan(v)]
    return float(v.mean()) if v.size else None


def _aggregate_groups(dataset: str, split: str,
                      groups: Sequence[tuple[str, str, str, dict[str, np.ndarray]]],
                      measures: Sequence[str] = ()
                      ) -> list[tuple[str, str, str, str, str, str, float]]:
    per_pair: dict[tuple[str, str, str], dict[str, list[np.ndarray]]] = {}
    per_setting: dict[str, dict[str, list[np.ndarray]]] = {}
    named = {**_METRIC_COLUMNS, **_BIAS_COLUMNS, **{m: m for m in measures}}
    for setting, qlang, dlang, values in groups:
        for target in (per_pair.setdefault((setting, qlang, dlang), {}),
                       per_setting.setdefault(setting, {})):
            for column in named.values():
                target.setdefault(column, []).append(np.asarray(values[column], np.float64))
    cells = [*per_pair.items(), *(((s, POOL, POOL), v) for s, v in per_setting.items())]
    rows = []
    for (setting, qlang, dlang), cols in cells:
        for metric, column in named.items():
            if metric in _BIAS_COLUMNS and setting != "multi":
                continue
            value = _mean(cols[column])
            if value is not None:
                rows.append((dataset, split, setting, qlang, dlang, metric, value))
    order = {s: i for i, s in enumerate(SETTINGS)}
    rows.sort(key=lambda r: (order.get(r[2], 99), r[3], r[4], r[5]))
    return rows


def _metrics_table(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    columns = list(zip(*rows, strict=True)) if rows else [[] for _ in RUN_METRICS_SCHEMA]
    return pa.table([pa.array(list(c), type=f.type)
                     for c, f in zip(columns, RUN_METRICS_SCHEMA, strict=True)],
                    schema=RUN_METRICS_SCHEMA)


def aggregate(query_results: pa.Table) -> pa.Table:
    """``run_metrics`` rows of a ``query_results`` table: means per (setting, query_lang,
    doc_lang) and per setting ("all"); bias measures in the ``multi`` setting only."""
    if query_results.num_rows == 0:
        return _empty(RUN_METRICS_SCHEMA)
    d = query_results.to_pydict()
    groups: dict[tuple[str, str, str, str, str], list[int]] = {}
    for i, key in enumerate(zip(d["dataset"], d["split"], d["setting"], d["query_lang"],
                                d["doc_lang"], strict=True)):
        groups.setdefault(key, []).append(i)
    rows: list[tuple[Any, ...]] = []
    by_dataset: dict[tuple[str, str], list[tuple[str, str, str, dict[str, np.ndarray]]]] = {}
    columns = {c: np.array([np.nan if v is None else v for v in d[c]], dtype=np.float64)
               for c in {**_METRIC_COLUMNS, **_BIAS_COLUMNS}.values()}
    for (ds, sp, st, q, dl), idx in groups.items():
        ix = np.asarray(idx)
        by_dataset.setdefault((ds, sp), []).append(
            (st, q, dl, {c: v[ix] for c, v in columns.items()}))
    for (ds, sp), gs in sorted(by_dataset.items()):
        rows.extend(_aggregate_groups(ds, sp, gs))
    return _metrics_table(rows)


def wanted_pair(x: str, y: str, pairs: Sequence[Sequence[str]]) -> bool:
    """Whether the cross pair ``x → y`` is one ``[[eval]] pairs`` asks for (``*`` matches
    any language; no pairs: every pair)."""
    return not pairs or any(a in ("*", x) and b in ("*", y) for a, b in pairs)


def setting_cells(settings: Sequence[str], qlangs: list[str], dlangs: list[str],
                  data: EvalData, wanted: Sequence[Sequence[str]] = ()
                  ) -> list[tuple[str, str, str]]:
    """The ``(setting, query_lang, doc_lang)`` cells an evaluation searches, in order: the
    settings both ``settings`` and the dataset define, the dataset's cross pairs (every
    ordered pair when it lists none) that ``wanted`` (``[[eval]] pairs``) asks for."""
    out: list[tuple[str, str, str]] = []
    for setting in SETTINGS:
        if setting not in settings or setting not in data.settings:
            continue
        for x in qlangs:
            if setting == "mono" and x in dlangs:
                out.append((setting, x, x))
            elif setting == "cross" and data.parallel:
                out.extend((setting, x, y) for y in dlangs
                           if y != x and (data.cross is None or (x, y) in data.cross)
                           and wanted_pair(x, y, wanted))
            elif setting == "multi":
                out.append((setting, x, POOL))
    return out


def _grades(data: EvalData, queries: Sequence[Any], rel_arr: np.ndarray, col: Collection
            ) -> np.ndarray:
    """The grade of each entry of ``rel_arr`` (0 for padding)."""
    out = (rel_arr >= 0).astype(np.float64)
    if data.grades:
        for i, q in enumerate(queries):
            graded = data.grades.get((q.lang, q.id))
            if graded:
                for j, d in enumerate(rel_arr[i]):
                    if d >= 0:
                        out[i, j] = graded.get(str(col.ids[d]), 1)
    return out


def _subset(col: Collection, doc_ids: frozenset[str]) -> Collection:
    """The documents of ``col`` whose ids are in ``doc_ids`` (their chunks, if chunked)."""
    keep = np.fromiter((d in doc_ids for d in col.ids), dtype=bool, count=len(col.ids))
    idx = np.flatnonzero(keep)
    if col.group is None:
        return Collection(col.vectors[idx], None, col.ids[idx], col.langs[idx])
    new_index = np.full(len(col.ids), -1, dtype=np.int64)
    new_index[idx] = np.arange(len(idx))
    rows = np.flatnonzero(keep[col.group])
    return Collection(col.vectors[rows], new_index[col.group[rows]], col.ids[idx],
                       col.langs[idx])


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
    t0, c0 = time.perf_counter(), time.process_time()
    queries, collections = _encode_all(encoder, data, cfg, cache, model_key, progress)
    encode_s, encode_cpu = time.perf_counter() - t0, time.process_time() - c0
    search_s = search_cpu = 0.0
    qlangs = sorted(queries)
    dlangs = sorted(collections)
    pool = (_pool(collections) if collections and "multi" in cfg.settings
            and "multi" in data.settings else None)
    frames = ResultFrames(data, parse_measures(cfg.measures, "eval.measures"))
    pairs = setting_cells(cfg.settings, qlangs, dlangs, data, cfg.pairs)
    index_of: dict[str, dict[str, int]] = {
        lang: {d: i for i, d in enumerate(c.ids)} for lang, c in collections.items()}
    scoped: dict[tuple[str, str], tuple[Collection, dict[str, int]]] = {}
    pool_index = ({d: i for i, d in enumerate(pool.ids)} if pool is not None else {})
    pool_counts = ({lang: float(np.mean(pool.langs == lang)) for lang in qlangs}
                   if pool is not None else {})
    for step, (setting, x, y) in enumerate(pairs, start=1):
        col = pool if y == POOL else collections[y]
        where = pool_index if y == POOL else index_of[y]
        qs = data.queries[x]
        qvecs = queries[x]
        scope = data.cross.get((x, y)) if setting == "cross" and data.cross else None
        if scope is not None and scope.doc_ids is not None:
            if (x, y) not in scoped:
                sub = _subset(col, scope.doc_ids)
                scoped[(x, y)] = (sub, {d: i for i, d in enumerate(sub.ids)})
            col, where = scoped[(x, y)]
        if scope is not None and scope.query_ids is not None:
            mine = np.array([q.id in scope.query_ids for q in qs], dtype=bool)
            qs = [q for q, m in zip(qs, mine, strict=True) if m]
            qvecs = qvecs[mine]
        rel = [sorted(where[d] for d in data.relevant(q) if d in where) for q in qs]
        keep = np.array([bool(r) for r in rel], dtype=bool)
        if keep.any():
            rel_arr = pad_relevant([r for r in rel if r])
            grades = _grades(data, [q for q, r in zip(qs, rel, strict=True) if r], rel_arr,
                             col)
            k = max(cfg.top_k, 10 if setting == "multi" else 0)
            ts, cs = time.perf_counter(), time.process_time()
            res = exact_search(qvecs[keep], col.vectors, k, rel_arr, doc_group=col.group,
                               n_docs=len(col.ids), device=device, backend=backend,
                               tie_break=col.tie_break())
            search_s += time.perf_counter() - ts
            search_cpu += time.process_time() - cs
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
                       col, rel_arr, cfg.top_k, bias_cols, grades)
        if progress is not None:
            progress("search", step, len(pairs))
    out = frames.output({"n_pairs": len(pairs), "cache_hits": cache.hits,
                         "cache_misses": cache.misses, "encode_s": encode_s,
                         "search_s": search_s, "encode_cpu_s": encode_cpu,
                         "search_cpu_s": search_cpu})
    out.info["metrics_s"] = time.perf_counter() - t0 - encode_s - search_s
    out.info["metrics_cpu_s"] = time.process_time() - c0 - encode_cpu - search_cpu
    return out
