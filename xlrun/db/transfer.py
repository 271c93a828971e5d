"""Export a results database to compact Parquet files, and import such an export back.

An export is a folder: one zstd-compressed Parquet file per table plus ``manifest.json``
(format, schema revision, xlrun version, creation time, row counts). It holds
``experiments``, ``runs``, ``train_log``, ``batch_languages``, ``query_results`` (metrics
rounded to :data:`DIGITS` decimals), ``run_metrics``, ``language_clusters`` and
``language_distances``; ``retrieved`` (the top-k lists, by far the largest table) is left out.

Import merges an export into a database that may already hold other experiments, in ONE
transaction:

* experiments are matched by name, runs by ``(experiment name, run_key)``;
* a new experiment or run keeps its exported id when that id is free, otherwise it gets a
  new one, and every child row follows its run's id;
* a run the database already has is left alone, except that an unfinished run there
  (queued, running, failed) is replaced by a ``done`` run from the export (its rows too);
* so importing the same export twice adds nothing.

An export whose schema revision is unknown to this xlrun (made by a newer version) is
refused; an older revision is accepted (columns it lacks are left NULL).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import (
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    Select,
    Table,
    delete,
    func,
    select,
    text,
    update,
)

from xlrun import __version__
from xlrun.db.models import (
    BatchLanguages,
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryResult,
    Run,
    RunMetric,
    TrainLog,
)
from xlrun.errors import UsageError

FORMAT = "xlrun-db-export"
FORMAT_VERSION = 2
"""1: plain tables. 2: adds ``derived`` (metrics left out where they follow from the rank)."""
DIGITS = 4
"""Decimals kept for the metric columns of ``query_results``."""

EXPERIMENTS: Table = Experiment.__table__  # type: ignore[assignment]
RUNS: Table = Run.__table__  # type: ignore[assignment]
RUN_TABLES: tuple[Table, ...] = tuple(t.__table__ for t in (  # type: ignore[misc]
    TrainLog, BatchLanguages, QueryResult, RunMetric, LanguageCluster, LanguageDistance))
"""Tables whose rows belong to a run (``run_id``), in export order."""
TABLES: tuple[str, ...] = ("experiments", "runs", *(t.name for t in RUN_TABLES))
OMITTED: tuple[str, ...] = ("retrieved",)
ROUNDED: dict[str, tuple[str, ...]] = {
    "query_results": ("ap", "ndcg_at_10", "mrr_at_10", "recall_at_100", "rank_distance",
                      "same_lang_at_10", "same_lang_expected"),
}
EXPORT_ORDER: dict[str, tuple[str, ...]] = {
    "query_results": ("dataset", "split", "setting", "query_lang", "doc_lang", "query_id",
                      "run_id"),
    "run_metrics": ("dataset", "split", "setting", "query_lang", "doc_lang", "metric",
                    "run_id"),
}
"""Row order of the big tables in an export: one query's rows of every run side by side, so
the (strongly correlated) metrics of different runs compress together (~25 % smaller)."""
DERIVED_COLUMNS: tuple[str, ...] = ("ap", "ndcg_at_10", "mrr_at_10", "recall_at_100")
"""``query_results`` metrics that follow from ``first_relevant_rank`` when a query has one
relevant document (most LAReQA rows): AP = 1/r, MRR@10 and nDCG@10 = 1/r and 1/log2(r+1)
for r ≤ 10, else 0, Recall@100 = [r ≤ 100]. An export leaves them out (NULL) on exactly the
rows where the stored values equal that derivation, and the import computes them back."""
_BATCH = 50_000
_INSERT_CHUNK = 10_000


@dataclass(frozen=True)
class ExportSummary:
    """What :func:`export_database` wrote."""

    path: Path
    rows: dict[str, int]
    bytes: int
    schema_revision: str | None
    experiments: tuple[str, ...]


@dataclass(frozen=True)
class ImportSummary:
    """What :func:`import_database` did.

    ``runs_new``: runs inserted; ``runs_replaced``: unfinished runs overwritten by a done run
    of the export; ``runs_skipped``: runs the database already had; ``remapped``: exported
    run id → new id, for runs whose id was taken; ``rows``: rows inserted per table.
    """

    experiments_new: int
    runs_new: int
    runs_replaced: int
    runs_skipped: int
    remapped: dict[int, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------- schema
def _dtype(column: Any) -> pl.DataType:
    t = column.type
    if isinstance(t, DateTime):
        return pl.Datetime("us", "UTC")
    if isinstance(t, Boolean):
        return pl.Boolean()
    if isinstance(t, Integer):
        return pl.Int64()
    if isinstance(t, Float):
        return pl.Float64()
    return pl.String()


def frame_schema(table: Table) -> dict[str, pl.DataType]:
    """The polars schema an export uses for ``table`` (datetimes as UTC)."""
    return {c.name: _dtype(c) for c in table.columns}


def _table(name: str) -> Table:
    for t in (EXPERIMENTS, RUNS, *RUN_TABLES):
        if t.name == name:
            return t
    raise KeyError(name)


def _sort_keys(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


# ----------------------------------------------------------------------------- export
def _utc_naive(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _read(conn: Connection, table: Table, stmt: Select) -> pl.DataFrame:
    """Rows of ``stmt`` as a frame with the export schema (read in batches)."""
    schema = frame_schema(table)
    naive = {k: (pl.Datetime("us") if isinstance(v, pl.Datetime) else v)
             for k, v in schema.items()}
    dt_idx = [i for i, v in enumerate(schema.values()) if isinstance(v, pl.Datetime)]
    parts = []
    result = conn.execution_options(yield_per=_BATCH).execute(stmt)
    for rows in result.partitions(_BATCH):
        if dt_idx:
            rows = [tuple(_utc_naive(v) if i in dt_idx else v for i, v in enumerate(r))
                    for r in rows]
        else:
            rows = [tuple(r) for r in rows]
        parts.append(pl.DataFrame(rows, schema=naive, orient="row"))
    frame = pl.concat(parts) if parts else pl.DataFrame(schema=naive)
    return frame.with_columns([pl.col(k).dt.replace_time_zone("UTC")
                               for k, v in schema.items() if isinstance(v, pl.Datetime)])


def _round(name: str, frame: pl.DataFrame) -> pl.DataFrame:
    cols = [c for c in ROUNDED.get(name, ()) if c in frame.columns]
    return frame.with_columns([pl.col(c).round(DIGITS) for c in cols]) if cols else frame


def _derived(frame: pl.DataFrame) -> dict[str, pl.Series]:
    """:data:`DERIVED_COLUMNS` as the evaluation computes them for one relevant document at
    ``first_relevant_rank`` (rows without a rank get placeholders; they are never used)."""
    from xlrun.evaluate.metrics import query_metrics

    rank = frame["first_relevant_rank"].cast(pl.Float64).fill_null(float("inf")).to_numpy()
    values = query_metrics(rank[:, None])
    return {c: pl.Series(c, values[c]) for c in DERIVED_COLUMNS}


_SINGLE_RELEVANT = (pl.col("n_relevant") == 1) & pl.col("first_relevant_rank").is_not_null()


def elide_derived(frame: pl.DataFrame) -> pl.DataFrame:
    """``query_results`` with :data:`DERIVED_COLUMNS` set to NULL on the rows with one
    relevant document whose (rounded) values equal the derivation from the rank."""
    derived = _derived(frame)
    same = _SINGLE_RELEVANT
    for c in DERIVED_COLUMNS:
        same = same & ((pl.col(c) - pl.lit(derived[c].round(DIGITS))).abs() < 1e-9)
    return frame.with_columns([pl.when(same).then(None).otherwise(pl.col(c)).alias(c)
                               for c in DERIVED_COLUMNS])


def restore_derived(frame: pl.DataFrame) -> pl.DataFrame:
    """Fill the metrics :func:`elide_derived` left out (exact values, not rounded)."""
    derived = _derived(frame)
    return frame.with_columns([
        pl.when(pl.col(c).is_null() & _SINGLE_RELEVANT).then(pl.lit(derived[c]))
        .otherwise(pl.col(c)).alias(c) for c in DERIVED_COLUMNS])


def export_database(engine: Engine, out_dir: str | Path,
                    experiments: Sequence[str] | None = None,
                    done_only: bool = False) -> ExportSummary:
    """Write the experiments (all, or those named) and their runs' rows to ``out_dir``.

    ``done_only`` keeps only finished runs (what a later session should not run again).

    Raises:
        UsageError: a named experiment does not exist, or ``out_dir`` holds another export.
    """
    from xlrun.db.engine import current_revision

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn:
        known = list(conn.execute(select(EXPERIMENTS.c.name).order_by(EXPERIMENTS.c.name))
                     .scalars())
        names = list(dict.fromkeys(experiments)) if experiments else known
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"unknown experiment(s) {', '.join(map(repr, missing))}; known: "
                             + (", ".join(known) or "(none)"))
        exp_ids = select(EXPERIMENTS.c.id).where(EXPERIMENTS.c.name.in_(names))
        run_ids = select(RUNS.c.id).where(RUNS.c.experiment_id.in_(exp_ids))
        if done_only:
            run_ids = run_ids.where(RUNS.c.status == "done")
        stmts: dict[str, Select] = {
            "experiments": select(EXPERIMENTS).where(EXPERIMENTS.c.id.in_(exp_ids)),
            "runs": select(RUNS).where(RUNS.c.id.in_(run_ids)),
        }
        for t in RUN_TABLES:
            stmts[t.name] = select(t).where(t.c.run_id.in_(run_ids))
        rows: dict[str, int] = {}
        total = 0
        for name in TABLES:
            table = _table(name)
            stmt = stmts[name].order_by(*[table.c[k] for k in _sort_keys(table)])
            frame = _round(name, _read(conn, table, stmt))
            if name == "query_results":
                frame = elide_derived(frame)
            if name in EXPORT_ORDER:
                frame = frame.sort(list(EXPORT_ORDER[name]))
            path = out / f"{name}.parquet"
            frame.write_parquet(path, compression="zstd", compression_level=19, statistics=False)
            rows[name] = frame.height
            total += path.stat().st_size
    revision = current_revision(engine)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "schema_revision": revision,
        "xlrun_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source_dialect": engine.dialect.name, "experiments": names, "done_only": done_only,
        "rows": rows, "omitted_tables": list(OMITTED),
        "rounded": {k: {"columns": list(v), "decimals": DIGITS} for k, v in ROUNDED.items()},
        "derived": {"query_results": {"columns": list(DERIVED_COLUMNS),
                                      "when": "n_relevant = 1, from first_relevant_rank"}},
        "files": {n: f"{n}.parquet" for n in TABLES},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total += (out / "manifest.json").stat().st_size
    return ExportSummary(path=out, rows=rows, bytes=total, schema_revision=revision,
                         experiments=tuple(names))


# ----------------------------------------------------------------------------- import
def read_manifest(in_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, checked.

    Raises:
        UsageError: no export there, or one in another format.
    """
    path = Path(in_dir) / "manifest.json"
    if not path.is_file():
        raise UsageError(f"{in_dir} is not an xlrun export (no manifest.json); make one with "
                         "`xlrun db export OUT_DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise UsageError(f"{path} is not valid JSON ({e})") from e
    if manifest.get("format") != FORMAT:
        raise UsageError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if int(manifest.get("format_version", 0)) > FORMAT_VERSION:
        raise UsageError(f"{path}: export format version {manifest.get('format_version')} is "
                         f"newer than this xlrun reads ({FORMAT_VERSION}); upgrade xlrun")
    return manifest


def _known_revisions(upto: str | None) -> list[str]:
    """Revisions from ``upto`` (default: head) down to the first, newest first."""
    from alembic.script import ScriptDirectory

    from xlrun.db.engine import alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [s.revision for s in script.walk_revisions("base", upto or "heads")]


def check_revision(export_revision: str | None, db_revision: str | None) -> None:
    """Refuse an export made at a schema revision newer than the database's.

    Raises:
        UsageError: ``export_revision`` is not ``db_revision`` or one of its ancestors.
    """
    if export_revision is None:
        return
    if export_revision not in _known_revisions(db_revision):
        raise UsageError(f"the export is at schema revision {export_revision!r}, newer than "
                         f"this database ({db_revision or 'empty'}) and this xlrun "
                         f"(head {_known_revisions(None)[0]!r}); upgrade xlrun, then "
                         "`xlrun db upgrade`, and import again")


def _read_frame(in_dir: Path, name: str, manifest: dict[str, Any]) -> pl.DataFrame:
    table = _table(name)
    path = in_dir / manifest.get("files", {}).get(name, f"{name}.parquet")
    if not path.is_file():
        raise UsageError(f"the export in {in_dir} lacks {path.name}")
    frame = pl.read_parquet(path)
    if name == "query_results" and "derived" in manifest:
        frame = restore_derived(frame)
    schema = frame_schema(table)
    unknown = [c for c in frame.columns if c not in schema]
    if unknown:
        raise UsageError(f"{path.name} has columns this database lacks: {', '.join(unknown)} "
                         "(an export from a newer xlrun?)")
    return frame


def _records(frame: pl.DataFrame) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, frame.height, _INSERT_CHUNK):
        yield frame.slice(start, _INSERT_CHUNK).to_dicts()


def _insert_frame(conn: Connection, table: Table, frame: pl.DataFrame) -> int:
    if frame.height == 0:
        return 0
    if conn.dialect.name == "sqlite":  # aware datetimes: store the UTC wall clock
        frame = frame.with_columns([pl.col(c).dt.replace_time_zone(None)
                                    for c, t in frame.schema.items()
                                    if isinstance(t, pl.Datetime) and t.time_zone])
    for chunk in _records(frame):
        conn.execute(table.insert(), chunk)
    return frame.height


def _allocate(wanted: Sequence[int], taken: set[int]) -> dict[int, int]:
    """Keep each wanted id when free; give the others new ids above every id in use."""
    out: dict[int, int] = {}
    used = set(taken)
    nxt = max([*taken, *wanted, 0]) + 1
    for old in wanted:
        if old not in used:
            out[old] = old
        else:
            out[old] = nxt
            nxt += 1
        used.add(out[old])
    return out


def _fix_sequences(conn: Connection) -> None:
    """After explicit ids, move Postgres's id sequences past the largest id."""
    if conn.dialect.name != "postgresql":
        return
    for table in ("experiments", "runs"):
        conn.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"))


def import_database(engine: Engine, in_dir: str | Path) -> ImportSummary:
    """Merge the export in ``in_dir`` into ``engine``'s database (one transaction).

    Raises:
        UsageError: not an export, or one from a newer schema revision.
    """
    from xlrun.db.engine import current_revision

    src = Path(in_dir)
    manifest = read_manifest(src)
    check_revision(manifest.get("schema_revision"), current_revision(engine))
    frames = {name: _read_frame(src, name, manifest) for name in TABLES}
    exps, runs = frames["experiments"], frames["runs"]
    rows_in: dict[str, int] = {name: 0 for name in TABLES}
    with engine.begin() as conn:
        # experiments: by name
        existing = {r.name: r.id for r in conn.execute(select(EXPERIMENTS.c.name,
                                                               EXPERIMENTS.c.id))}
        taken = set(existing.values())
        new_exps = exps.filter(~pl.col("name").is_in(list(existing)))
        exp_ids = _allocate(new_exps["id"].to_list(), taken)
        exp_map = {old: existing[name] for old, name in zip(exps["id"], exps["name"],
                                                            strict=True) if name in existing}
        exp_map.update(exp_ids)
        rows_in["experiments"] = _insert_frame(
            conn, EXPERIMENTS,
            new_exps.with_columns(pl.col("id").replace_strict(exp_ids, return_dtype=pl.Int64)))
        # runs: by (experiment, run_key)
        runs = runs.with_columns(pl.col("experiment_id").replace_strict(
            exp_map, return_dtype=pl.Int64).alias("experiment_id"))
        have = {(r.experiment_id, r.run_key): (r.id, r.status) for r in conn.execute(
            select(RUNS.c.experiment_id, RUNS.c.run_key, RUNS.c.id, RUNS.c.status))}
        new_ids: list[int] = []
        replace: dict[int, int] = {}  # exported id -> existing id
        skipped = 0
        for rid, eid, key, status in runs.select("id", "experiment_id", "run_key", "status"
                                                 ).iter_rows():
            hit = have.get((eid, key))
            if hit is None:
                new_ids.append(rid)
            elif hit[1] != "done" and status == "done":
                replace[rid] = hit[0]
            else:
                skipped += 1
        taken_runs = set(conn.execute(select(RUNS.c.id)).scalars())
        run_ids = _allocate(new_ids, taken_runs)
        run_map = {**run_ids, **replace}
        if replace:
            targets = list(replace.values())
            for t in RUN_TABLES:
                conn.execute(delete(t).where(t.c.run_id.in_(targets)))
            conn.execute(text("DELETE FROM retrieved WHERE run_id IN ("
                              + ", ".join(str(int(i)) for i in targets) + ")"))
            for row in (runs.filter(pl.col("id").is_in(list(replace)))
                        .with_columns(pl.col("id").replace_strict(replace, return_dtype=pl.Int64))
                        .to_dicts()):
                rid = row.pop("id")
                if conn.dialect.name == "sqlite":
                    row = {k: _utc_naive(v) for k, v in row.items()}
                conn.execute(update(RUNS).where(RUNS.c.id == rid).values(**row))
        rows_in["runs"] = _insert_frame(
            conn, RUNS, runs.filter(pl.col("id").is_in(new_ids))
            .with_columns(pl.col("id").replace_strict(run_ids, return_dtype=pl.Int64)))
        for t in RUN_TABLES:
            frame = frames[t.name].filter(pl.col("run_id").is_in(list(run_map)))
            frame = frame.with_columns(pl.col("run_id").replace_strict(run_map,
                                                                       return_dtype=pl.Int64))
            rows_in[t.name] = _insert_frame(conn, t, frame)
        _fix_sequences(conn)
    return ImportSummary(
        experiments_new=rows_in["experiments"], runs_new=rows_in["runs"],
        runs_replaced=len(replace), runs_skipped=skipped,
        remapped={o: n for o, n in run_ids.items() if o != n}, rows=rows_in)


def table_counts(engine: Engine) -> dict[str, int]:
    """Row counts of every exported table (for checks and messages)."""
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(_table(name)))
                          .scalar_one()) for name in TABLES}
