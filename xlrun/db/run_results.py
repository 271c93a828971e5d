"""Read one run's stored results back: which (dataset, split) it evaluated, its queries per
setting and languages, its top-k lists (``retrieved``) and measures — what
``xlrun export-trec`` writes as TREC files."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Engine, func, select

from xlrun.db.models import QueryMeasure, QueryResult, Retrieved


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
