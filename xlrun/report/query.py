"""Loading per-query results for reports.

Everything is read through SQLAlchemy Core ``select`` statements (bound parameters only, never
SQL assembled from user strings). The big table, ``query_results``, is fetched with only the
columns a report needs and joined to the (small) ``runs`` table in polars; a ``--compare``
config key such as ``train.lr`` is extracted from ``runs.config_json`` in Python.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection, Engine, Select, Text, case, cast, func, literal, select

from xlrun.db.models import (
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryResult,
    Run,
)
from xlrun.errors import UsageError
from xlrun.report import choices

METRICS = choices.METRICS
"""CLI metric name → ``query_results`` column."""

ARM_COLUMNS: tuple[str, ...] = ("model", "sampler", "language_sampling", "clustering")
"""``runs`` columns that name an arm directly (``--compare`` may also name a config key)."""

BIAS_COLUMNS: tuple[str, ...] = ("rank_distance", "same_lang_at_10", "same_lang_expected")

UNIT_KEY: tuple[str, ...] = ("dataset", "split", "setting", "query_lang", "query_id")
"""A query: the unit that paired tests resample (its seeds are averaged first)."""


@dataclass(frozen=True)
class ReportFilter:
    """Which results a report reads (``None`` means: all)."""

    experiment: str | None = None
    dataset: str | None = None
    setting: str | None = None
    split: str | None = None


def metric_column(metric: str) -> str:
    """The ``query_results`` column of a CLI metric name (``map`` → ``ap``)."""
    if metric in METRICS:
        return METRICS[metric]
    if metric in METRICS.values():
        return metric
    raise UsageError(f"unknown metric {metric!r}; allowed: {', '.join(METRICS)}")


def _config_value(config_json: str, key: str) -> Any:
    """The value at dotted ``key`` in a run's config JSON (``_MISSING`` if absent)."""
    node: Any = json.loads(config_json)
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _arm_label(value: Any) -> str | None:
    """A stable string label of an arm value (JSON for lists/dicts, ``None`` stays null)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def load_runs(conn: Connection, filt: ReportFilter, compare: str | None = None) -> pl.DataFrame:
    """Done runs matching ``filt`` with their arm columns (and ``arm`` if ``compare`` is set).

    Raises:
        UsageError: the experiment does not exist, or ``compare`` names a config key that no
            run has.
    """
    stmt = select(Run.id.label("run_id"), Run.run_key, Run.seed, Run.model, Run.sampler,
                  Run.language_sampling, Run.clustering, Run.config_json,
                  Experiment.name.label("experiment")
                  ).join(Experiment, Experiment.id == Run.experiment_id
                         ).where(Run.status == "done").order_by(Run.id)
    if filt.experiment is not None:
        exists = conn.execute(select(Experiment.id).where(Experiment.name == filt.experiment)
                              ).first()
        if exists is None:
            names = conn.execute(select(Experiment.name).order_by(Experiment.name)).scalars()
            known = ", ".join(names) or "(none)"
            raise UsageError(f"unknown experiment {filt.experiment!r}; known: {known}")
        stmt = stmt.where(Experiment.name == filt.experiment)
    rows = conn.execute(stmt).all()
    schema = {"run_id": pl.Int64, "run_key": pl.String, "seed": pl.Int64, "model": pl.String,
              "sampler": pl.String, "language_sampling": pl.String, "clustering": pl.String,
              "config_json": pl.String, "experiment": pl.String}
    runs = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
    if compare is None:
        return runs.drop("config_json")
    if compare in ARM_COLUMNS:
        arm = runs[compare]
    else:
        values = [_config_value(c, compare) for c in runs["config_json"]]
        if runs.height and all(v is _MISSING for v in values):
            raise UsageError(f"--compare {compare!r}: neither a runs column "
                             f"({', '.join(ARM_COLUMNS)}) nor a config key of any run "
                             "(use a dotted key such as train.lr or sampling.pairing)")
        arm = pl.Series("arm", [None if v is _MISSING else _arm_label(v) for v in values],
                        dtype=pl.String)
    return runs.drop("config_json").with_columns(arm.fill_null("(none)").alias("arm"))


def load_query_results(
    conn: Connection,
    filt: ReportFilter,
    columns: Sequence[str],
    run_ids: Sequence[int] | None = None,
) -> pl.DataFrame:
    """Per-query rows of ``query_results`` (key columns plus ``columns``) for ``run_ids``."""
    wanted = [c for c in columns if c in QueryResult.__table__.c]
    unknown = sorted(set(columns) - set(wanted))
    if unknown:
        raise UsageError(f"unknown query_results column(s): {', '.join(unknown)}")
    key = ["run_id", "dataset", "split", "setting", "query_lang", "doc_lang", "query_id"]
    table = QueryResult.__table__
    stmt = select(*[table.c[k] for k in key], *[table.c[c] for c in wanted])
    if filt.dataset is not None:
        stmt = stmt.where(table.c.dataset == filt.dataset)
    if filt.setting is not None:
        stmt = stmt.where(table.c.setting == filt.setting)
    if filt.split is not None:
        stmt = stmt.where(table.c.split == filt.split)
    if run_ids is not None:
        stmt = stmt.where(table.c.run_id.in_(list(run_ids)))
    schema: dict[str, Any] = {"run_id": pl.Int64}
    schema.update({k: pl.String for k in key[1:]})
    schema.update({c: pl.Float64 for c in wanted})
    fast = _fetch_grouped(conn, stmt, wanted, schema)
    if fast is not None:
        return fast
    result = conn.execute(stmt)
    chunks = []
    while True:
        rows = result.fetchmany(200_000)
        if not rows:
            break
        chunks.append(pl.DataFrame(rows, schema=schema, orient="row"))
    if not chunks:
        return pl.DataFrame(schema=schema)
    return pl.concat(chunks, rechunk=True)


_ID_SEP = "\x1f"
_GROUP_KEY = ("run_id", "dataset", "split", "setting", "query_lang", "doc_lang")


def _fetch_grouped(conn: Connection, stmt: Select, values: Sequence[str],
                   schema: dict[str, Any]) -> pl.DataFrame | None:
    """Fast path (SQLite, Postgres): one row per run × language pair with the query ids and
    values concatenated by the database, split again in polars.

    Fetching a million rows as Python tuples costs seconds; this sends ~1,000 rows. Floats
    travel as exact round-trip text. Returns ``None`` when the dialect has no string
    aggregate or a query id contains the separator (the caller then fetches rows).
    """
    dialect = conn.dialect.name
    if dialect == "sqlite":
        def agg(expr: Any, sep: str) -> Any:
            return func.group_concat(expr, literal(sep))

        def as_text(col: Any) -> Any:
            return func.printf(literal("%!.17g"), col)
    elif dialect == "postgresql":
        def agg(expr: Any, sep: str) -> Any:
            return func.string_agg(expr, literal(sep))

        def as_text(col: Any) -> Any:
            return cast(col, Text)
    else:
        return None
    sub = stmt.subquery()
    keys = [sub.c[k] for k in _GROUP_KEY]
    aggs = [agg(cast(sub.c.query_id, Text), _ID_SEP).label("ids")]
    aggs += [agg(case((sub.c[v].is_(None), literal("")), else_=as_text(sub.c[v])), ",")
             .label(f"v{i}") for i, v in enumerate(values)]
    grouped = select(*keys, *aggs, func.count().label("n")).group_by(*keys)
    rows = conn.execute(grouped).all()
    if not rows:
        return pl.DataFrame(schema=schema)
    names = [*_GROUP_KEY, "ids", *[f"v{i}" for i in range(len(values))], "n"]
    g = pl.DataFrame(rows, schema=names, orient="row")
    counts = g["n"].to_numpy()
    ids = g["ids"].str.split(_ID_SEP).explode()
    if ids.len() != int(counts.sum()):
        return None
    repeat = pl.Series(np.repeat(np.arange(g.height), counts))
    out = g.select(list(_GROUP_KEY)).cast({"run_id": pl.Int64}).gather(repeat)
    cols = [ids.alias("query_id")]
    for i, v in enumerate(values):
        text = g[f"v{i}"].str.split(",").explode()
        cols.append(text.replace("", None).cast(pl.Float64).alias(v))
    return out.with_columns(cols).select(list(schema))


def load_report_frame(
    conn: Connection | Engine,
    filt: ReportFilter,
    metric_columns: Sequence[str],
    compare: str | None = None,
) -> pl.DataFrame:
    """Per-query rows joined with their run's arm columns (done runs only).

    Columns: ``run_id, run_key, seed, model, sampler, language_sampling, clustering,
    experiment, [arm], dataset, split, setting, query_lang, doc_lang, query_id`` and
    ``metric_columns``.

    Raises:
        UsageError: unknown experiment or compare key, or no results match.
    """
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return load_report_frame(c, filt, metric_columns, compare)
    runs = load_runs(conn, filt, compare)
    where = _describe(filt)
    if runs.height == 0:
        raise UsageError(f"no finished runs{where}")
    # Filter by run id in SQL only when it narrows the scan (an experiment was named).
    ids = runs["run_id"].to_list() if filt.experiment is not None else None
    rows = load_query_results(conn, filt, metric_columns, ids)
    df = rows.join(runs, on="run_id", how="inner")
    if df.height == 0:
        raise UsageError(f"no query results{where}")
    return df


def _describe(filt: ReportFilter) -> str:
    parts = [f"{k}={v!r}" for k, v in (("experiment", filt.experiment),
                                        ("dataset", filt.dataset), ("setting", filt.setting),
                                        ("split", filt.split)) if v is not None]
    return f" for {', '.join(parts)}" if parts else ""


def load_distances(conn: Connection, run_ids: Sequence[int],
                   source: str | None = None) -> tuple[str | None, pl.DataFrame]:
    """Language distances of ``source`` (default: the first source in sorted order).

    Returns the source used and a symmetric frame ``query_lang, doc_lang, distance`` (the
    mean over runs, both orders, and distance 0 for a language with itself).
    """
    t = LanguageDistance.__table__
    sources = sorted(conn.execute(select(t.c.source).where(t.c.run_id.in_(list(run_ids)))
                                  .distinct()).scalars())
    empty = pl.DataFrame(schema={"query_lang": pl.String, "doc_lang": pl.String,
                                 "distance": pl.Float64})
    if not sources:
        return None, empty
    if source is None:
        source = sources[0]
    elif source not in sources:
        raise UsageError(f"unknown distance source {source!r}; allowed: {', '.join(sources)}")
    rows = conn.execute(select(t.c.lang_a, t.c.lang_b, t.c.distance)
                        .where(t.c.run_id.in_(list(run_ids)), t.c.source == source)).all()
    d = pl.DataFrame(rows, schema={"query_lang": pl.String, "doc_lang": pl.String,
                                   "distance": pl.Float64}, orient="row")
    swapped = d.select(pl.col("doc_lang").alias("query_lang"),
                       pl.col("query_lang").alias("doc_lang"), "distance")
    langs = pl.concat([d["query_lang"], d["doc_lang"]]).unique()
    diag = pl.DataFrame({"query_lang": langs, "doc_lang": langs,
                         "distance": [0.0] * len(langs)})
    both = pl.concat([d, swapped, diag])
    return source, both.group_by("query_lang", "doc_lang").agg(pl.col("distance").mean())


def load_clusters(conn: Connection, run_ids: Sequence[int]) -> pl.DataFrame:
    """``run_id, lang, cluster`` of the given runs."""
    t = LanguageCluster.__table__
    rows = conn.execute(select(t.c.run_id, t.c.lang, t.c.cluster)
                        .where(t.c.run_id.in_(list(run_ids)))).all()
    return pl.DataFrame(rows, schema={"run_id": pl.Int64, "lang": pl.String,
                                      "cluster": pl.Int64}, orient="row")


def engine_for(url: str | None = None) -> Engine:
    """The results database engine (``--db`` / ``XLRUN_DB`` / ``sqlite:///xlrun.db``)."""
    from xlrun.db.engine import get_engine

    return get_engine(url)
