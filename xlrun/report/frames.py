"""The frames a report is computed from: runs (filtered by ``--where``), per-query results,
language distances and clusters, read from the results database into polars.

Everything is read through SQLAlchemy Core ``select`` statements (bound parameters only, never
SQL assembled from user strings). The big table, ``query_results``, is fetched with only the
columns a report needs and joined to the (small) ``runs`` table in polars; a ``--compare``
config key such as ``train.lr`` is extracted from ``runs.config_json`` in Python, and so are
the ``--where KEY=VALUE`` filters (user strings never become SQL).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Connection, Engine, Integer, Select, Text, case, cast, func, literal, select

from xlrun.db.engine import get_engine
from xlrun.db.models import (
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryMeasure,
    QueryResult,
    Run,
)
from xlrun.errors import UsageError
from xlrun.report import choices
from xlrun.spec.schema import arm_label

METRICS = choices.METRICS
"""CLI metric name → ``query_results`` column."""

ARM_COLUMNS: tuple[str, ...] = ("model", "sampler", "language_sampling", "clustering")
"""``runs`` columns that name an arm directly (``--compare`` may also name a config key)."""

WHOLE_ARM = "arm"
"""``--compare arm``: the whole arm, ``sampler/language_sampling[clustering]`` (see
:func:`arm_label`)."""

WHERE_COLUMNS: tuple[str, ...] = ("sampler", "language_sampling", "clustering", "model", "seed")
"""``runs`` columns ``--where`` may name (any other key is a dotted config key)."""

NULL_VALUE = "null"
"""``--where KEY=null`` matches runs where KEY is null or absent."""

BIAS_COLUMNS: tuple[str, ...] = ("rank_distance", "same_lang_at_10", "same_lang_expected")

UNIT_KEY: tuple[str, ...] = ("dataset", "split", "query_id")
"""A question: the unit that paired tests resample. Parallel datasets (XQuAD-R, MLQA-R) give
every translation of a question the same ``query_id``, so a question's translations (query
languages), settings and document languages within a cell are averaged into one value first:
they are not independent observations."""


@dataclass(frozen=True)
class ReportFilter:
    """Which results a report reads (``None`` means: all)."""

    experiment: str | None = None
    dataset: str | None = None
    setting: str | None = None
    split: str | None = None
    where: tuple[WhereClause, ...] = ()


@dataclass(frozen=True)
class WhereClause:
    """One ``--where KEY=VALUE`` (or ``KEY!=VALUE``) filter on runs."""

    key: str
    value: str
    negate: bool = False

    def __str__(self) -> str:
        return f"{self.key}{'!=' if self.negate else '='}{self.value}"


def describe_where(where: Sequence[WhereClause]) -> str:
    """The clauses as one condition: ``seed=1 and train.lr in (1e-5, 2e-5) and sampler!=none``
    (repeated ``=`` clauses on a key are alternatives)."""
    by_key: dict[str, list[WhereClause]] = {}
    for clause in where:
        by_key.setdefault(clause.key, []).append(clause)
    parts = []
    for key, clauses in by_key.items():
        values = [c.value for c in clauses if not c.negate]
        if len(values) == 1:
            parts.append(f"{key}={values[0]}")
        elif values:
            parts.append(f"{key} in ({', '.join(values)})")
        parts += [str(c) for c in clauses if c.negate]
    return " and ".join(parts)


def parse_where(items: Sequence[str]) -> tuple[WhereClause, ...]:
    """Parse ``KEY=VALUE`` / ``KEY!=VALUE`` strings.

    Raises:
        UsageError: an item has no ``=`` or an empty key.
    """
    out: list[WhereClause] = []
    for item in items:
        key, sep, value = item.partition("=")
        negate = key.endswith("!")
        key = key[:-1] if negate else key
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--where {item!r}: expected KEY=VALUE (or KEY!=VALUE), e.g. "
                             "sampler=hybrid or train.lr=2e-5")
        out.append(WhereClause(key, value.strip(), negate))
    return tuple(out)


MEASURE_COLUMNS: dict[str, str] = {"AP": "ap", "RR@10": "mrr_at_10", "R@100": "recall_at_100"}
"""ir_measures names that equal a ``query_results`` column by definition (whatever the
grades): a report reads the column where ``query_measures`` does not hold the measure."""


def metric_column(metric: str) -> str:
    """The ``query_results`` column of a CLI metric name (``map`` → ``ap``), or the canonical
    ir_measures name of a measure (``ndcg_cut.10`` → ``nDCG@10``), read from
    ``query_measures`` (:func:`load_query_results`)."""
    if metric in METRICS:
        return METRICS[metric]
    if metric in METRICS.values():
        return metric
    from xlrun.evaluate.measures import SUPPORTED, MeasureError, measures_of

    try:
        parsed = measures_of(metric)
    except MeasureError as e:
        raise UsageError(f"--metric {metric!r} is neither one of {', '.join(METRICS)} nor a "
                         f"measure xlrun computes: {e} (measures: {', '.join(SUPPORTED)}, "
                         "by ir_measures names)") from None
    if len(parsed) != 1:
        raise UsageError(f"--metric {metric!r} names {len(parsed)} measures "
                         f"({', '.join(m.name for m in parsed)}); name one")
    return parsed[0].name


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


def _as_number(text: str) -> float | None:
    """``text`` as a number if it is a JSON number (``2e-5``, ``150``), else ``None``."""
    try:
        v = json.loads(text)
    except ValueError:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


def value_matches(stored: Any, wanted: str) -> bool:
    """Whether a run's value equals a ``--where``/``--baseline`` string.

    Numbers compare as numbers (``2e-5`` matches a stored ``2e-05``, ``150`` matches
    ``150.0``); everything else compares as its label (:func:`_arm_label`, so ``true`` matches
    a JSON true and a list matches its compact JSON). ``null`` matches a null or absent value.
    """
    if stored is None or stored is _MISSING:
        return wanted == NULL_VALUE
    if isinstance(stored, (int, float)) and not isinstance(stored, bool):
        number = _as_number(wanted)
        if number is not None:
            return float(stored) == number
    elif isinstance(stored, str):
        number = _as_number(stored)
        if number is not None and _as_number(wanted) is not None:
            return number == _as_number(wanted)
    return _arm_label(stored) == wanted


def _where_values(runs: pl.DataFrame, key: str) -> list[Any]:
    """Each run's value of a ``--where`` key (``_MISSING`` for a config key it lacks)."""
    if key in WHERE_COLUMNS:
        return runs[key].to_list()
    return [_config_value(c, key) for c in runs["config_json"]]


def apply_where(runs: pl.DataFrame, where: Sequence[WhereClause]) -> pl.DataFrame:
    """Keep the runs (a :func:`load_runs` frame with ``config_json``) matching every clause.

    Clauses on different keys must all hold; several ``KEY=VALUE`` clauses on the same key
    keep a run matching any of those values (``KEY!=VALUE`` clauses all must hold).

    Raises:
        UsageError: a key is neither a runs arm column nor a config key of any run, or no run
            is left (the message lists the values the key has).
    """
    by_key: dict[str, list[WhereClause]] = {}
    for clause in where:
        by_key.setdefault(clause.key, []).append(clause)
    for key, clauses in by_key.items():
        values = _where_values(runs, key)
        if key not in WHERE_COLUMNS and runs.height and all(v is _MISSING for v in values):
            raise UsageError(f"unknown --where key {key!r}: neither a runs arm column "
                             f"({', '.join(WHERE_COLUMNS)}) nor a config key of any run "
                             "(use a dotted key such as train.lr or sampling.pairing)")
        wanted = [c.value for c in clauses if not c.negate]
        unwanted = [c.value for c in clauses if c.negate]
        keep = [(not wanted or any(value_matches(v, w) for w in wanted))
                and not any(value_matches(v, u) for u in unwanted) for v in values]
        if runs.height and not any(keep):
            seen = sorted({NULL_VALUE if v is None or v is _MISSING else _arm_label(v)
                           for v in values})
            shown = " ".join(f"--where {c}" for c in clauses)
            raise UsageError(f"no finished run matches {shown}; values of {key} among the "
                             f"selected runs: {', '.join(seen)}")
        runs = runs.filter(pl.Series(keep, dtype=pl.Boolean))
    return runs


def load_runs(conn: Connection, filt: ReportFilter, compare: str | None = None) -> pl.DataFrame:
    """Done runs matching ``filt`` (experiment and ``--where`` clauses) with their arm
    columns, and ``arm`` if ``compare`` is set (``arm`` for the whole arm, a runs column or a
    dotted config key).

    Raises:
        UsageError: the experiment does not exist, a ``--where`` clause is bad or matches no
            run, or ``compare`` names a config key that no run has.
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
    runs = apply_where(runs, filt.where)
    if compare is None:
        return runs.drop("config_json")
    if compare == WHOLE_ARM:
        arm = pl.Series("arm", [arm_label(*r) for r in runs.select(
            "sampler", "language_sampling", "clustering").iter_rows()], dtype=pl.String)
    elif compare in ARM_COLUMNS:
        arm = runs[compare]
    else:
        values = [_config_value(c, compare) for c in runs["config_json"]]
        if runs.height and all(v is _MISSING for v in values):
            raise UsageError(f"--compare {compare!r}: neither {WHOLE_ARM!r}, a runs column "
                             f"({', '.join(ARM_COLUMNS)}) nor a config key of any run "
                             "(use a dotted key such as train.lr or sampling.pairing)")
        arm = pl.Series("arm", [None if v is _MISSING else _arm_label(v) for v in values],
                        dtype=pl.String)
    return runs.drop("config_json").with_columns(arm.fill_null("(none)").alias("arm"))


def load_unfinished_runs(conn: Connection, filt: ReportFilter) -> dict[str, list[int]]:
    """The runs matching ``filt``'s experiment and ``--where`` clauses whose status is not
    ``done`` (``failed``, ``running``, ``queued``), their ids by status. Reports leave them
    out; this says which."""
    stmt = (select(Run.id, Run.status, Run.seed, Run.model, Run.sampler, Run.language_sampling,
                   Run.clustering, Run.config_json)
            .join(Experiment, Experiment.id == Run.experiment_id)
            .where(Run.status != "done").order_by(Run.id))
    if filt.experiment is not None:
        stmt = stmt.where(Experiment.name == filt.experiment)
    rows = conn.execute(stmt).all()
    runs = pl.DataFrame([tuple(r) for r in rows], orient="row", schema={
        "run_id": pl.Int64, "status": pl.String, "seed": pl.Int64, "model": pl.String,
        "sampler": pl.String, "language_sampling": pl.String, "clustering": pl.String,
        "config_json": pl.String})
    if filt.where and runs.height:
        try:
            runs = apply_where(runs, filt.where)
        except UsageError:  # no unfinished run matches: nothing to say
            return {}
    out: dict[str, list[int]] = {}
    for run_id, status in runs.select("run_id", "status").iter_rows():
        out.setdefault(status, []).append(int(run_id))
    return out


def load_query_results(
    conn: Connection,
    filt: ReportFilter,
    columns: Sequence[str],
    run_ids: Sequence[int] | None = None,
) -> pl.DataFrame:
    """Per-query rows of ``query_results`` (key columns plus ``columns``) for ``run_ids``.

    A column may also be a measure's canonical ir_measures name (one, alone): its values come
    from ``query_measures`` (or, for :data:`MEASURE_COLUMNS`, from the equal ``query_results``
    column when ``query_measures`` holds none of it for these runs).

    Raises:
        UsageError: an unknown column, or a measure stored for none of these runs (the
            message lists the measures that are).
    """
    wanted = [c for c in columns if c in QueryResult.__table__.c]
    unknown = sorted(set(columns) - set(wanted))
    if unknown and len(columns) == 1 and _is_measure(columns[0]):
        return _load_measure(conn, filt, columns[0], run_ids)
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
    schema.update(dict.fromkeys(key[1:], pl.String))
    schema.update({c: pl.Int64 if isinstance(table.c[c].type, Integer) else pl.Float64
                   for c in wanted})  # counts and ranks stay integers
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


def _is_measure(name: str) -> bool:
    """Whether ``name`` is the canonical name of a measure xlrun computes."""
    from xlrun.evaluate.measures import MeasureError, measures_of

    try:
        return [m.name for m in measures_of(name)] == [name]
    except MeasureError:
        return False


def _load_measure(conn: Connection, filt: ReportFilter, measure: str,
                  run_ids: Sequence[int] | None) -> pl.DataFrame:
    """:func:`load_query_results` for one measure of ``query_measures``."""
    table = QueryMeasure.__table__
    key = ["run_id", "dataset", "split", "setting", "query_lang", "doc_lang", "query_id"]
    scope = []
    if filt.dataset is not None:
        scope.append(table.c.dataset == filt.dataset)
    if filt.split is not None:
        scope.append(table.c.split == filt.split)
    if run_ids is not None:
        scope.append(table.c.run_id.in_(list(run_ids)))
    stored = conn.execute(select(table.c.measure).where(*scope, table.c.measure == measure)
                          .limit(1)).first()
    if stored is None:
        if measure in MEASURE_COLUMNS:
            column = MEASURE_COLUMNS[measure]
            return load_query_results(conn, filt, [column], run_ids).rename({column: measure})
        names = sorted(conn.execute(select(table.c.measure).where(*scope).distinct()).scalars())
        raise UsageError(
            f"measure {measure} is not stored for the selected runs; stored: "
            f"{', '.join(names) or '(none)'} (a run stores the measures its [[eval]] table lists "
            f"in measures = [...]); the query_results metrics are always there: "
            f"{', '.join(METRICS)}")
    stmt = select(*[table.c[k] for k in key], table.c.value.label(measure)).where(
        *scope, table.c.measure == measure)
    if filt.setting is not None:
        stmt = stmt.where(table.c.setting == filt.setting)
    schema: dict[str, Any] = {"run_id": pl.Int64}
    schema.update(dict.fromkeys(key[1:], pl.String))
    schema[measure] = pl.Float64
    fast = _fetch_grouped(conn, stmt, [measure], schema)
    if fast is not None:
        return fast
    rows = conn.execute(stmt).all()
    return pl.DataFrame(rows, schema=schema, orient="row")


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
        cols.append(text.replace("", None).cast(pl.Float64).cast(schema[v]).alias(v))
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
    # Filter by run id in SQL only when it narrows the scan (an experiment or --where).
    narrowed = filt.experiment is not None or bool(filt.where)
    ids = runs["run_id"].to_list() if narrowed else None
    rows = load_query_results(conn, filt, metric_columns, ids)
    df = rows.join(runs, on="run_id", how="inner")
    if df.height == 0:
        raise UsageError(f"no query results{where}")
    return df


def _describe(filt: ReportFilter) -> str:
    parts = [f"{k}={v!r}" for k, v in (("experiment", filt.experiment),
                                        ("dataset", filt.dataset), ("setting", filt.setting),
                                        ("split", filt.split)) if v is not None]
    if filt.where:
        parts.append(f"where {describe_where(filt.where)}")
    return f" for {', '.join(parts)}" if parts else ""


@dataclass(frozen=True)
class Distances:
    """Language distances for ``--regress``.

    ``frame`` is symmetric (``query_lang, doc_lang, distance``: the mean over ``from_runs``,
    both orders, 0 for a language with itself). ``borrowed`` is true when none of the analysed
    runs stored distances of ``source`` and they come from other runs of the same experiment.
    ``sources`` lists every source stored for the analysed runs' experiments.
    """

    source: str | None
    frame: pl.DataFrame
    from_runs: tuple[int, ...] = ()
    borrowed: bool = False
    sources: tuple[str, ...] = ()


_DIST_SCHEMA = {"query_lang": pl.String, "doc_lang": pl.String, "distance": pl.Float64}


def _experiment_runs(conn: Connection, run_ids: Sequence[int]) -> list[int]:
    """Every run (any status) of the experiments ``run_ids`` belong to."""
    exps = select(Run.experiment_id).where(Run.id.in_(list(run_ids))).distinct()
    return list(conn.execute(select(Run.id).where(Run.experiment_id.in_(exps))
                             .order_by(Run.id)).scalars())


def load_distances(conn: Connection, run_ids: Sequence[int],
                   source: str | None = None) -> Distances:
    """Language distances of ``source`` for the runs ``run_ids``.

    Distances describe languages, not runs, and only runs of a similarity-clustered arm store
    them. So when none of ``run_ids`` stored ``source``, the distances of the other runs of the
    same experiment(s) are used (``borrowed``). The default source is the first in sorted
    order among those the analysed runs stored, else among the experiment's.

    Raises:
        UsageError: ``source`` is given but no run of these experiments stored it.
    """
    t = LanguageDistance.__table__
    own = sorted(conn.execute(select(t.c.source).where(t.c.run_id.in_(list(run_ids)))
                              .distinct()).scalars())
    siblings = _experiment_runs(conn, run_ids)
    stored = sorted(conn.execute(select(t.c.source).where(t.c.run_id.in_(siblings))
                                 .distinct()).scalars())
    if source is None:
        source = own[0] if own else (stored[0] if stored else None)
    elif source not in stored:
        raise UsageError(f"unknown --distance-source {source!r}; stored for these runs' "
                         f"experiments: {', '.join(stored) or '(none)'}")
    if source is None:
        return Distances(None, pl.DataFrame(schema=_DIST_SCHEMA))
    borrowed = source not in own
    pool = siblings if borrowed else list(run_ids)
    rows = conn.execute(select(t.c.run_id, t.c.lang_a, t.c.lang_b, t.c.distance)
                        .where(t.c.run_id.in_(pool), t.c.source == source)).all()
    d = pl.DataFrame(rows, schema={"run_id": pl.Int64, **_DIST_SCHEMA}, orient="row")
    from_runs = tuple(sorted(d["run_id"].unique().to_list()))
    d = d.drop("run_id")
    swapped = d.select(pl.col("doc_lang").alias("query_lang"),
                       pl.col("query_lang").alias("doc_lang"), "distance")
    langs = pl.concat([d["query_lang"], d["doc_lang"]]).unique()
    diag = pl.DataFrame({"query_lang": langs, "doc_lang": langs,
                         "distance": [0.0] * len(langs)})
    both = pl.concat([d, swapped, diag])
    frame = both.group_by("query_lang", "doc_lang").agg(pl.col("distance").mean())
    return Distances(source, frame, from_runs, borrowed, tuple(stored))


def load_clusters(conn: Connection, run_ids: Sequence[int],
                  borrow: bool = False) -> pl.DataFrame:
    """``run_id, lang, cluster`` of the given runs; with ``borrow``, if none of them stored
    clusters, those of the other runs of the same experiment(s)."""
    t = LanguageCluster.__table__
    schema = {"run_id": pl.Int64, "lang": pl.String, "cluster": pl.Int64}

    def fetch(ids: Sequence[int]) -> pl.DataFrame:
        rows = conn.execute(select(t.c.run_id, t.c.lang, t.c.cluster)
                            .where(t.c.run_id.in_(list(ids)))).all()
        return pl.DataFrame(rows, schema=schema, orient="row")

    out = fetch(run_ids)
    if out.height == 0 and borrow and run_ids:
        out = fetch(_experiment_runs(conn, run_ids))
    return out


def load_run_configs(conn: Connection, run_ids: Sequence[int]) -> dict[int, str]:
    """``runs.config_json`` of the given runs (``--bias`` reads the evaluation sections to
    size the multilingual pool)."""
    rows = conn.execute(select(Run.id, Run.config_json).where(Run.id.in_(list(run_ids)))).all()
    return {int(r[0]): r[1] for r in rows}


def engine_for(url: str | None = None) -> Engine:
    """The results database engine (``--db`` / ``XLRUN_DB`` / ``sqlite:///xlrun.db``); a
    missing SQLite file is an error (reports never create one)."""
    return get_engine(url, create=False)
