"""One run's stored results as plain rows: its training log and its measures (what
``xlrun evaluate`` prints, and what trackers and MTEB files are fed from)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, select

from xlrun.db.models import RunMetric, TrainLog

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
