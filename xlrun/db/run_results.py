"""One run's stored results read back as plain rows: its training log and measures (what
``xlrun evaluate`` prints, and what trackers and MTEB files are fed from), which (dataset,
split) it evaluated, its queries per setting and languages and its top-k lists
(``retrieved``) — what ``xlrun export-trec`` writes as TREC files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from xlrun.db.models import QueryMeasure, QueryResult, Retrieved, RunMetric, TrainLog

POOL = "all"
BIAS_MEASURES = ("rank_distance", "same_lang_at_10", "same_lang_expected")
"""Stored with the measures in the ``multi`` setting, but not retrieval measures."""
SETTING_ORDER = {"mono": 0, "cross": 1, "multi": 2}


@dataclass(frozen=True)
class MeasuresTable:
    """A printable table of a run's measures per setting and language."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    notes: list[str]


def train_log_rows(engine: Engine, run_id: int) -> list[dict[str, Any]]:
    """``train_log`` of a run in step order (``step``, ``loss``, ``lr``, ``examples_per_s``)."""
    t = TrainLog.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.step, t.c.loss, t.c.lr, t.c.examples_per_s)
                            .where(t.c.run_id == run_id).order_by(t.c.step)).mappings().all()
    return [dict(r) for r in rows]


def metric_rows(engine: Engine, run_id: int) -> list[dict[str, Any]]:
    """``run_metrics`` of a run (``dataset``, ``split``, ``setting``, ``query_lang``,
    ``doc_lang``, ``metric``, ``value``), ordered by dataset, split, setting, languages."""
    t = RunMetric.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.dataset, t.c.split, t.c.setting, t.c.query_lang,
                                   t.c.doc_lang, t.c.metric, t.c.value)
                            .where(t.c.run_id == run_id)).mappings().all()
    out = [dict(r) for r in rows]
    out.sort(key=lambda r: (r["dataset"], r["split"], SETTING_ORDER.get(r["setting"], 9),
                            r["query_lang"] == POOL, r["query_lang"], r["doc_lang"],
                            r["metric"]))
    return out


def measures_table(engine: Engine, run_id: int) -> MeasuresTable:
    """A run's retrieval measures (bias measures left out) per dataset, split, setting and
    query language, each setting's mean over all its queries last (language ``all``).

    ``cross`` rows give, per query language, the mean over its target languages of the
    pair means (``de→*``); the pairs themselves are in ``run_metrics`` and
    ``xlrun report --by language-pair``.
    """
    rows = [r for r in metric_rows(engine, run_id) if r["metric"] not in BIAS_MEASURES]
    measures = list(dict.fromkeys(r["metric"] for r in rows))
    cells: dict[tuple[str, str, str, str], dict[str, list[float]]] = {}
    for r in rows:
        q = r["query_lang"]
        lang = (POOL if q == POOL else f"{q}→*" if r["setting"] == "cross" else q)
        cells.setdefault((r["dataset"], r["split"], r["setting"], lang), {}).setdefault(
            r["metric"], []).append(float(r["value"]))
    table = [[ds, sp, st, lang, *[_mean(v.get(m)) for m in measures]]
             for (ds, sp, st, lang), v in cells.items()]
    notes = []
    if any(r[2] == "cross" and r[3] != POOL for r in table):
        notes.append("cross: per query language, the mean over target languages of each "
                     "pair's mean (pairs: xlrun report --by language-pair)")
    return MeasuresTable(f"run {run_id}: measures per setting and query language (mean over "
                         "queries; 'all' = every query of the setting)",
                         ["dataset", "split", "setting", "language", *measures], table, notes)


def _mean(values: list[float] | None) -> float | None:
    return sum(values) / len(values) if values else None



@dataclass(frozen=True)
class ResultSet:
    """One (dataset, split) a run has results for: its query count and the deepest top-k
    list it kept (0: none)."""

    dataset: str
    split: str
    n_queries: int
    top_k: int


def result_sets(engine: Engine, run_id: int) -> list[ResultSet]:
    """The (dataset, split) pairs of ``run_id``'s ``query_results``, sorted."""
    qr, rt = QueryResult.__table__, Retrieved.__table__
    with engine.connect() as conn:
        counts = conn.execute(select(qr.c.dataset, qr.c.split, func.count())
                              .where(qr.c.run_id == run_id)
                              .group_by(qr.c.dataset, qr.c.split)).all()
        depth = {(d, s): int(k or 0) for d, s, k in conn.execute(
            select(rt.c.dataset, rt.c.split, func.max(rt.c.rank)).where(rt.c.run_id == run_id)
            .group_by(rt.c.dataset, rt.c.split))}
    return sorted(ResultSet(d, s, int(n), depth.get((d, s), 0)) for d, s, n in counts)


def query_keys(engine: Engine, run_id: int, dataset: str, split: str
               ) -> list[tuple[str, str, str, str]]:
    """``(setting, query_lang, doc_lang, query_id)`` of every query the run evaluated."""
    qr = QueryResult.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(qr.c.setting, qr.c.query_lang, qr.c.doc_lang, qr.c.query_id)
                            .where(qr.c.run_id == run_id, qr.c.dataset == dataset,
                                   qr.c.split == split)).all()
    return sorted((str(a), str(b), str(c), str(d)) for a, b, c, d in rows)


def top_lists(engine: Engine, run_id: int, dataset: str, split: str, k: int
              ) -> Iterator[tuple[str, str, str, str, int, str, float]]:
    """``(setting, query_lang, doc_lang, query_id, rank, doc_id, score)`` of the stored top
    ``k`` of every query, in key and rank order (streamed)."""
    rt = Retrieved.__table__
    stmt = (select(rt.c.setting, rt.c.query_lang, rt.c.doc_lang, rt.c.query_id, rt.c.rank,
                   rt.c.doc_id, rt.c.score)
            .where(rt.c.run_id == run_id, rt.c.dataset == dataset, rt.c.split == split,
                   rt.c.rank <= k)
            .order_by(rt.c.setting, rt.c.query_lang, rt.c.doc_lang, rt.c.query_id, rt.c.rank))
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=50_000).execute(stmt)
        for row in result:
            yield (str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]),
                   str(row[5]), float(row[6]))


def stored_measures(engine: Engine, run_id: int, dataset: str, split: str) -> list[str]:
    """The measures ``query_measures`` holds for the run's (dataset, split), sorted."""
    qm = QueryMeasure.__table__
    with engine.connect() as conn:
        return sorted(conn.execute(select(qm.c.measure).where(
            qm.c.run_id == run_id, qm.c.dataset == dataset, qm.c.split == split)
            .distinct()).scalars())


def stored_ap(engine: Engine, run_id: int, dataset: str, split: str
              ) -> dict[tuple[str, str, str, str], float]:
    """``query_results.ap`` by ``(setting, query_lang, doc_lang, query_id)``."""
    qr = QueryResult.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(qr.c.setting, qr.c.query_lang, qr.c.doc_lang, qr.c.query_id,
                                   qr.c.ap).where(qr.c.run_id == run_id,
                                                  qr.c.dataset == dataset,
                                                  qr.c.split == split)).all()
    return {(str(a), str(b), str(c), str(d)): float(v) for a, b, c, d, v in rows}
