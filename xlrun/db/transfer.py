"""Export a results database to compact Parquet files, and import such an export back.

An export is a folder: one zstd-compressed Parquet file per table plus ``manifest.json``
(format, schema revision, xlrun version, creation time, row counts per file and per run,
SHA-256 of every file). It holds ``experiments``, ``runs``, ``train_log``,
``batch_languages``, ``query_results`` (metrics rounded to :data:`DIGITS` decimals),
``query_measures`` (likewise), ``run_metrics``, ``language_clusters``, ``language_distances``
and ``sampling_plan``; ``retrieved`` (the top-k
lists, by far the largest table) is left out. Only pyarrow is needed, not polars.

Import first **verifies** the export and writes nothing unless all of it holds: the format
and its version, every file named by the manifest inside the folder, readable, with the
columns and types of its table and the row count (and, from format 3, the SHA-256 and the
per-run row counts) the manifest records; every row belongs to a run of the export and every
run to an experiment of it; no key appears twice. A partial or inconsistent export is
refused with a message naming the file and the mismatch. Then it merges the export into the
database in ONE transaction:

* experiments are matched by name, runs by ``(experiment name, run_key)``;
* a new experiment or run keeps its exported id when that id is free, otherwise it gets a
  new one, and every child row follows its run's id;
* a run the database already has is left alone, except that an unfinished run there
  (queued, running, failed) is replaced by a ``done`` run from the export (its rows too), and
  a done run there with fewer rows than the export's in some table (an incomplete earlier
  import) is repaired: replaced by the export's run;
* so importing the same export twice adds nothing.

An export whose schema revision is unknown to this xlrun (made by a newer version) is
refused; an older revision is accepted (columns it lacks are left NULL).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from alembic.script import ScriptDirectory
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
from sqlalchemy.exc import IntegrityError

from xlrun import __version__
from xlrun.db.engine import alembic_config, current_revision
from xlrun.db.models import (
    BatchLanguages,
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryMeasure,
    QueryResult,
    Run,
    RunMetric,
    SamplingPlan,
    TrainLog,
)
from xlrun.errors import UsageError
from xlrun.evaluate.metrics import query_metrics

FORMAT = "xlrun-db-export"
FORMAT_VERSION = 3
"""1: plain tables. 2: adds ``derived`` (metrics left out where they follow from the rank).
3: adds ``sha256`` (per file) and ``run_rows`` (rows per run and table) to the manifest;
the files are the same."""
DIGITS = 4
"""Decimals kept for the metric columns of ``query_results``."""

EXPERIMENTS: Table = Experiment.__table__  # type: ignore[assignment]
RUNS: Table = Run.__table__  # type: ignore[assignment]
RUN_TABLES: tuple[Table, ...] = tuple(t.__table__ for t in (  # type: ignore[misc]
    TrainLog, BatchLanguages, QueryResult, RunMetric, LanguageCluster, LanguageDistance,
    SamplingPlan, QueryMeasure))
"""Tables whose rows belong to a run (``run_id``), in export order."""
TABLES: tuple[str, ...] = ("experiments", "runs", *(t.name for t in RUN_TABLES))

ADDED_LATER: frozenset[str] = frozenset({"sampling_plan", "query_measures"})
"""Tables exported since after format 3 first shipped: an export whose manifest does not list
one holds none of its rows (it is read as empty)."""
OMITTED: tuple[str, ...] = ("retrieved",)
ROUNDED: dict[str, tuple[str, ...]] = {
    "query_results": ("ap", "ndcg_at_10", "mrr_at_10", "recall_at_100", "rank_distance",
                      "same_lang_at_10", "same_lang_expected"),
    "query_measures": ("value",),
}
EXPORT_ORDER: dict[str, tuple[str, ...]] = {
    "query_results": ("dataset", "split", "setting", "query_lang", "doc_lang", "query_id",
                      "run_id"),
    "run_metrics": ("dataset", "split", "setting", "query_lang", "doc_lang", "metric",
                    "run_id"),
    "query_measures": ("dataset", "split", "measure", "setting", "query_lang", "doc_lang",
                       "query_id", "run_id"),
}
"""Row order of the big tables in an export: one query's rows of every run side by side, so
the (strongly correlated) metrics of different runs compress together (~25 % smaller)."""
DERIVED_COLUMNS: tuple[str, ...] = ("ap", "ndcg_at_10", "mrr_at_10", "recall_at_100")
"""``query_results`` metrics that follow from ``first_relevant_rank`` when a query has one
relevant document (most LAReQA rows): AP = 1/r, MRR@10 and nDCG@10 = 1/r and 1/log2(r+1)
for r ≤ 10, else 0, Recall@100 = [r ≤ 100]. An export leaves them out (NULL) on exactly the
rows where the stored values equal that derivation, and the import computes them back."""
PLAIN: tuple[str, ...] = ("query_id",)
"""Columns written without a dictionary: a query's id repeats in every language pair and run,
and plain strings compress those repeats better than bit-packed dictionary indices (the
pilot export: 54 kB instead of 96 kB)."""
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
    of the export; ``runs_repaired``: done runs the database held with fewer rows than the
    export (an incomplete earlier import), replaced by the export's; ``runs_skipped``: runs
    the database already had; ``remapped``: exported run id → new id, for runs whose id was
    taken; ``rows``: rows inserted per table.
    """

    experiments_new: int
    runs_new: int
    runs_replaced: int
    runs_skipped: int
    remapped: dict[int, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    runs_repaired: int = 0


# ----------------------------------------------------------------------------- schema
def _dtype(column: Any) -> pa.DataType:
    t = column.type
    if isinstance(t, DateTime):
        return pa.timestamp("us", tz="UTC")
    if isinstance(t, Boolean):
        return pa.bool_()
    if isinstance(t, Integer):
        return pa.int64()
    if isinstance(t, Float):
        return pa.float64()
    return pa.string()


def arrow_schema(table: Table) -> pa.Schema:
    """The Arrow schema an export uses for ``table`` (datetimes as UTC)."""
    return pa.schema([pa.field(c.name, _dtype(c)) for c in table.columns])


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
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _read(conn: Connection, table: Table, stmt: Select) -> pa.Table:
    """Rows of ``stmt`` as an Arrow table with the export schema (read in batches; naive
    datetimes are UTC wall clock)."""
    schema = arrow_schema(table)
    dt_idx = [i for i, f in enumerate(schema) if pa.types.is_timestamp(f.type)]
    batches = []
    result = conn.execution_options(yield_per=_BATCH).execute(stmt)
    for rows in result.partitions(_BATCH):
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
        arrays = []
        for i, (f, values) in enumerate(zip(schema, cols, strict=True)):
            column = [_utc_naive(v) for v in values] if i in dt_idx else list(values)
            arrays.append(pa.array(column, type=f.type))
        batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
    return pa.Table.from_batches(batches, schema=schema)


def _float_numpy(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A float column as numpy, nulls as NaN."""
    return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)


def _with_column(t: pa.Table, name: str, values: pa.Array) -> pa.Table:
    return t.set_column(t.schema.get_field_index(name), name, values)


def _round(name: str, t: pa.Table) -> pa.Table:
    """Metric columns rounded to :data:`DIGITS` decimals, as Python's ``round`` does."""
    for c in ROUNDED.get(name, ()):
        if c in t.column_names:
            col = t[c]
            rounded = np.round(_float_numpy(col), DIGITS)
            t = _with_column(t, c, pa.array(rounded, type=pa.float64(),
                                            mask=pc.is_null(col).to_numpy(zero_copy_only=False)))
    return t


def _derived(t: pa.Table) -> dict[str, np.ndarray]:
    """:data:`DERIVED_COLUMNS` as the evaluation computes them for one relevant document at
    ``first_relevant_rank`` (rows without a rank get placeholders; they are never used)."""
    rank = _float_numpy(t["first_relevant_rank"])
    rank = np.where(np.isnan(rank), np.inf, rank)
    values = query_metrics(rank[:, None])
    return {c: np.asarray(values[c], dtype=np.float64) for c in DERIVED_COLUMNS}


def _single_relevant(t: pa.Table) -> np.ndarray:
    n_rel = _float_numpy(t["n_relevant"])
    rank = _float_numpy(t["first_relevant_rank"])
    return (n_rel == 1) & ~np.isnan(rank)


def elide_derived(t: pa.Table) -> pa.Table:
    """``query_results`` with :data:`DERIVED_COLUMNS` set to NULL on the rows with one
    relevant document whose (rounded) values equal the derivation from the rank."""
    derived = _derived(t)
    same = _single_relevant(t)
    for c in DERIVED_COLUMNS:
        with np.errstate(invalid="ignore"):
            same &= np.abs(_float_numpy(t[c]) - np.round(derived[c], DIGITS)) < 1e-9
    for c in DERIVED_COLUMNS:
        keep = _float_numpy(t[c])
        mask = same | pc.is_null(t[c]).to_numpy(zero_copy_only=False)
        t = _with_column(t, c, pa.array(keep, type=pa.float64(), mask=mask))
    return t


def restore_derived(t: pa.Table) -> pa.Table:
    """Fill the metrics :func:`elide_derived` left out (exact values, not rounded)."""
    derived = _derived(t)
    single = _single_relevant(t)
    for c in DERIVED_COLUMNS:
        if c not in t.column_names:
            continue
        values = _float_numpy(t[c])
        null = pc.is_null(t[c]).to_numpy(zero_copy_only=False)
        fill = null & single
        out = np.where(fill, derived[c], values)
        t = _with_column(t, c, pa.array(out, type=pa.float64(), mask=null & ~single))
    return t


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run_counts(t: pa.Table) -> dict[int, int]:
    """Rows per ``run_id``."""
    if t.num_rows == 0:
        return {}
    ids, counts = np.unique(pc.fill_null(t["run_id"], -1).to_numpy(zero_copy_only=False),
                            return_counts=True)
    return {int(i): int(n) for i, n in zip(ids, counts, strict=True)}


def export_database(engine: Engine, out_dir: str | Path,
                    experiments: Sequence[str] | None = None,
                    done_only: bool = False) -> ExportSummary:
    """Write the experiments (all, or those named) and their runs' rows to ``out_dir``.

    ``done_only`` keeps only finished runs (what a later session should not run again).

    Raises:
        UsageError: a named experiment does not exist, or ``out_dir`` holds another export.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    with engine.connect() as conn:
        known = list(conn.execute(select(EXPERIMENTS.c.name).order_by(EXPERIMENTS.c.name))
                     .scalars())
        names = list(dict.fromkeys(experiments)) if experiments else known
        missing = [n for n in names if n not in known]
        if missing:
            raise UsageError(f"unknown experiment(s) {', '.join(map(repr, missing))}; known: "
                             + (", ".join(known) or "(none)"))
        out.mkdir(parents=True, exist_ok=True)
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
        sha: dict[str, str] = {}
        run_rows: dict[str, dict[str, int]] = {}
        total = 0
        for name in TABLES:
            table = _table(name)
            stmt = stmts[name].order_by(*[table.c[k] for k in _sort_keys(table)])
            frame = _round(name, _read(conn, table, stmt))
            if name == "query_results":
                frame = elide_derived(frame)
            if name in EXPORT_ORDER:
                frame = frame.sort_by([(k, "ascending") for k in EXPORT_ORDER[name]])
            if name == "runs":
                run_rows = {str(i): {} for i in frame["id"].to_pylist()}
            elif name != "experiments":
                for rid, n in _run_counts(frame).items():
                    run_rows.setdefault(str(rid), {})[name] = n
            path = out / f"{name}.parquet"
            pq.write_table(frame, path, compression="zstd", compression_level=19,
                           write_statistics=False,
                           use_dictionary=[c for c in frame.column_names if c not in PLAIN])
            rows[name] = frame.num_rows
            sha[name] = _sha256(path)
            total += path.stat().st_size
    revision = current_revision(engine)
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "schema_revision": revision,
        "xlrun_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_dialect": engine.dialect.name, "experiments": names, "done_only": done_only,
        "rows": rows, "omitted_tables": list(OMITTED),
        "rounded": {k: {"columns": list(v), "decimals": DIGITS} for k, v in ROUNDED.items()},
        "derived": {"query_results": {"columns": list(DERIVED_COLUMNS),
                                      "when": "n_relevant = 1, from first_relevant_rank"}},
        "files": {n: f"{n}.parquet" for n in TABLES},
        "sha256": sha,
        "run_rows": {rid: {t.name: counts.get(t.name, 0) for t in RUN_TABLES}
                     for rid, counts in run_rows.items()},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    total += (out / "manifest.json").stat().st_size
    return ExportSummary(path=out, rows=rows, bytes=total, schema_revision=revision,
                         experiments=tuple(names))


# ----------------------------------------------------------------------------- verify
class ExportError(UsageError):
    """An export that is partial, inconsistent or not an export; nothing was written."""


def read_manifest(in_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, checked (format, version, field types).

    Raises:
        ExportError: no export there, or one in another format or a newer version.
    """
    path = Path(in_dir) / "manifest.json"
    if not path.is_file():
        raise ExportError(f"{in_dir} is not an xlrun export (no manifest.json); make one with "
                          "`xlrun db export OUT_DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(manifest, dict):
        raise ExportError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if manifest.get("format") != FORMAT:
        raise ExportError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ExportError(f"{path}: format_version must be a positive integer, got "
                          f"{version!r}")
    if version > FORMAT_VERSION:
        raise ExportError(f"{path}: export format version {version} is newer than this xlrun "
                          f"reads ({FORMAT_VERSION}); upgrade xlrun")
    kinds: dict[str, type | tuple[type, ...]] = {
        "rows": dict, "files": dict, "sha256": dict, "run_rows": dict,
        "schema_revision": (str, type(None))}
    for key, kind in kinds.items():
        if key in manifest and not isinstance(manifest[key], kind):
            raise ExportError(f"{path}: {key!r} has the wrong type "
                              f"({type(manifest[key]).__name__})")
    if "rows" not in manifest:
        raise ExportError(f"{path}: lacks 'rows' (the row count of every file)")
    if version >= 3:
        for key in ("sha256", "run_rows"):
            if key not in manifest:
                raise ExportError(f"{path}: lacks {key!r} (format {version} records it)")
    return manifest


def _file_of(src: Path, name: str, manifest: dict[str, Any]) -> Path:
    """The file holding table ``name``, which must lie inside the export folder."""
    rel = manifest.get("files", {}).get(name, f"{name}.parquet")
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        raise ExportError(f"manifest.json: files[{name!r}] must be a relative file name inside "
                          f"the export folder, got {rel!r}")
    root = src.resolve()
    path = (src / rel).resolve()
    if root not in path.parents:
        raise ExportError(f"manifest.json: files[{name!r}] = {rel!r} points outside the export "
                          f"folder {src}")
    if not path.is_file():
        raise ExportError(f"the export in {src} lacks {rel} (table {name}); it is incomplete")
    return path


_COMPATIBLE = {
    "int": (pa.types.is_integer, pa.types.is_null),
    "float": (pa.types.is_floating, pa.types.is_integer, pa.types.is_null),
    "str": (pa.types.is_string, pa.types.is_large_string, pa.types.is_null),
    "bool": (pa.types.is_boolean, pa.types.is_null),
    "ts": (pa.types.is_timestamp, pa.types.is_null),
}


def _kind(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "ts"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    return "str"


def _read_file(path: Path, name: str, manifest: dict[str, Any]) -> pa.Table:
    """One table of the export, checked against its schema and the manifest's row count."""
    table = _table(name)
    want = manifest["rows"].get(name)
    if want is None:
        raise ExportError(f"manifest.json: 'rows' has no count for {name}")
    try:
        meta = pq.read_metadata(path)
        if meta.num_rows != want:
            raise ExportError(f"{path.name}: holds {meta.num_rows} rows, the manifest says "
                              f"{want}; the export is partial or was changed")
        sha = (manifest.get("sha256") or {}).get(name)
        if sha is not None and _sha256(path) != sha:
            raise ExportError(f"{path.name}: its SHA-256 differs from the manifest's; the file "
                              "was changed or damaged after the export")
        frame = pq.read_table(path)
    except ExportError:
        raise
    except (pa.ArrowException, OSError, ValueError) as e:
        raise ExportError(f"{path.name}: not a readable Parquet file ({str(e).strip()[:200]}); "
                          "the export is damaged") from e
    schema = arrow_schema(table)
    unknown = [c for c in frame.column_names if c not in schema.names]
    if unknown:
        raise ExportError(f"{path.name} has columns this database lacks: {', '.join(unknown)} "
                          "(an export from a newer xlrun?)")
    for c in frame.column_names:
        kind = _kind(schema.field(c).type)
        if not any(ok(frame.schema.field(c).type) for ok in _COMPATIBLE[kind]):
            raise ExportError(f"{path.name}: column {c} is {frame.schema.field(c).type}, "
                              f"expected {schema.field(c).type}")
    if name == "query_results" and "derived" in manifest:
        frame = restore_derived(frame)
    for col in table.columns:
        if col.nullable:
            continue
        if col.name not in frame.column_names:
            if col.server_default is None and col.default is None:
                raise ExportError(f"{path.name} lacks the required column {col.name}")
            continue
        nulls = frame[col.name].null_count
        if nulls:
            raise ExportError(f"{path.name}: column {col.name} has {nulls} empty value(s) but "
                              "may not be empty")
    return frame


def _unique(frame: pa.Table, keys: Sequence[str], where: str) -> None:
    if frame.num_rows == 0:
        return
    n = frame.group_by(list(keys)).aggregate([]).num_rows
    if n != frame.num_rows:
        raise ExportError(f"{where}: {frame.num_rows - n} row(s) repeat the key "
                          f"({', '.join(keys)}); the export is inconsistent")


def verify_export(src: Path, manifest: dict[str, Any]) -> dict[str, pa.Table]:
    """Read every table of the export in ``src`` and check it against the manifest.

    Checks: each file lies inside ``src``, is readable Parquet with its table's columns and
    types, holds the manifest's row count and (format 3) SHA-256; every row belongs to an
    exported run, every run to an exported experiment; keys are unique; per-run row counts
    (format 3) match.

    Raises:
        ExportError: naming the file and the mismatch.
    """
    listed = manifest.get("files") or {}
    frames = {name: (arrow_schema(_table(name)).empty_table()
                     if name in ADDED_LATER and name not in listed
                     else _read_file(_file_of(src, name, manifest), name, manifest))
              for name in TABLES}
    exps, runs = frames["experiments"], frames["runs"]
    _unique(exps, ["id"], "experiments.parquet")
    _unique(exps, ["name"], "experiments.parquet")
    _unique(runs, ["id"], "runs.parquet")
    _unique(runs, ["experiment_id", "run_key"], "runs.parquet")
    exp_ids = set(exps["id"].to_pylist())
    orphans = sorted(set(runs["experiment_id"].to_pylist()) - exp_ids)
    if orphans:
        raise ExportError(f"runs.parquet: runs of experiment id(s) {orphans[:5]} that "
                          "experiments.parquet lacks; the export is inconsistent")
    run_ids = set(runs["id"].to_pylist())
    keys = dict(zip(runs["id"].to_pylist(), runs["run_key"].to_pylist(), strict=True))
    per_run = manifest.get("run_rows")
    if per_run is not None and set(per_run) != {str(i) for i in run_ids}:
        raise ExportError("manifest.json: 'run_rows' names other runs than runs.parquet holds; "
                          "the export is inconsistent")
    for t in RUN_TABLES:
        counts = _run_counts(frames[t.name])
        stray = sorted(set(counts) - run_ids)
        if stray:
            raise ExportError(f"{t.name}.parquet: {sum(counts[i] for i in stray)} row(s) of run "
                              f"id(s) {stray[:5]} that runs.parquet lacks; the export is "
                              "inconsistent")
        if t.name in ("query_results", "run_metrics", "train_log", "batch_languages",
                      "query_measures"):
            _unique(frames[t.name], _sort_keys(t), f"{t.name}.parquet")
        if per_run is None:
            continue
        for rid in sorted(run_ids):
            want = per_run[str(rid)].get(t.name, 0) if isinstance(per_run[str(rid)], dict) \
                else None
            have = counts.get(rid, 0)
            if want != have:
                raise ExportError(f"{t.name}.parquet: run {rid} ({keys[rid]}) has {have} "
                                  f"rows, the manifest says {want}; the export is partial")
    return frames


# ----------------------------------------------------------------------------- import
def _known_revisions(upto: str | None) -> list[str]:
    """Revisions from ``upto`` (default: head) down to the first, newest first."""
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


def _records(frame: pa.Table, sqlite: bool) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, frame.num_rows, _INSERT_CHUNK):
        rows = frame.slice(start, _INSERT_CHUNK).to_pylist()
        if sqlite:  # aware datetimes: store the UTC wall clock
            rows = [{k: _utc_naive(v) for k, v in r.items()} for r in rows]
        yield rows


def _insert_frame(conn: Connection, table: Table, frame: pa.Table) -> int:
    if frame.num_rows == 0:
        return 0
    for chunk in _records(frame, conn.dialect.name == "sqlite"):
        conn.execute(table.insert(), chunk)
    return frame.num_rows


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


def _remap(frame: pa.Table, column: str, mapping: dict[int, int]) -> pa.Table:
    """Rows whose ``column`` is a key of ``mapping``, with the column mapped."""
    if not mapping:
        return frame.slice(0, 0)
    keep = pc.is_in(frame[column], value_set=pa.array(list(mapping), type=pa.int64()))
    frame = frame.filter(keep)
    if frame.num_rows == 0:
        return frame
    keys = np.array(sorted(mapping), dtype=np.int64)
    vals = np.array([mapping[k] for k in keys], dtype=np.int64)
    old = frame[column].to_numpy(zero_copy_only=False).astype(np.int64)
    return _with_column(frame, column, pa.array(vals[np.searchsorted(keys, old)],
                                                type=pa.int64()))


def _fix_sequences(conn: Connection) -> None:
    """After explicit ids, move Postgres's id sequences past the largest id."""
    if conn.dialect.name != "postgresql":
        return
    for table in ("experiments", "runs"):
        conn.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"GREATEST((SELECT COALESCE(MAX(id), 0) FROM {table}), 1))"))


def _db_counts(conn: Connection, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Rows per run and table in the database, for ``run_ids``."""
    out: dict[int, dict[str, int]] = {int(i): {} for i in run_ids}
    if not run_ids:
        return out
    for t in RUN_TABLES:
        for rid, n in conn.execute(select(t.c.run_id, func.count()).where(
                t.c.run_id.in_(list(run_ids))).group_by(t.c.run_id)):
            out[int(rid)][t.name] = int(n)
    return out


def import_database(engine: Engine, in_dir: str | Path) -> ImportSummary:
    """Merge the export in ``in_dir`` into ``engine``'s database (one transaction), after
    verifying all of it (:func:`verify_export`).

    Raises:
        UsageError: not an export, a partial, damaged or inconsistent one (nothing is
            written), or one from a newer schema revision.
    """
    src = Path(in_dir)
    manifest = read_manifest(src)
    check_revision(manifest.get("schema_revision"), current_revision(engine))
    frames = verify_export(src, manifest)
    exps, runs = frames["experiments"], frames["runs"]
    export_counts = {t.name: _run_counts(frames[t.name]) for t in RUN_TABLES}
    rows_in: dict[str, int] = dict.fromkeys(TABLES, 0)
    try:
        with engine.begin() as conn:
            # experiments: by name
            existing = {r.name: r.id for r in conn.execute(select(EXPERIMENTS.c.name,
                                                                   EXPERIMENTS.c.id))}
            taken = set(existing.values())
            exp_rows = exps.select(["id", "name"]).to_pylist()
            new_exp_ids = [r["id"] for r in exp_rows if r["name"] not in existing]
            exp_ids = _allocate(new_exp_ids, taken)
            exp_map = {r["id"]: existing[r["name"]] for r in exp_rows if r["name"] in existing}
            exp_map.update(exp_ids)
            rows_in["experiments"] = _insert_frame(conn, EXPERIMENTS,
                                                   _remap(exps, "id", exp_ids))
            # runs: by (experiment, run_key)
            runs = _remap(runs, "experiment_id", exp_map)
            have = {(r.experiment_id, r.run_key): (r.id, r.status) for r in conn.execute(
                select(RUNS.c.experiment_id, RUNS.c.run_key, RUNS.c.id, RUNS.c.status))}
            new_ids: list[int] = []
            replace: dict[int, int] = {}  # exported id -> existing id
            done_both: dict[int, int] = {}
            skipped = 0
            for r in runs.select(["id", "experiment_id", "run_key", "status"]).to_pylist():
                hit = have.get((r["experiment_id"], r["run_key"]))
                if hit is None:
                    new_ids.append(r["id"])
                elif hit[1] != "done" and r["status"] == "done":
                    replace[r["id"]] = hit[0]
                elif hit[1] == "done" and r["status"] == "done":
                    done_both[r["id"]] = hit[0]
                else:
                    skipped += 1
            # a done run the database holds with fewer rows than the export: repair it
            in_db = _db_counts(conn, list(done_both.values()))
            repaired = 0
            for rid, target in done_both.items():
                ours = [(in_db[target].get(t.name, 0), export_counts[t.name].get(rid, 0))
                        for t in RUN_TABLES]
                if all(a <= b for a, b in ours) and any(a < b for a, b in ours):
                    replace[rid] = target
                    repaired += 1
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
                for row in _remap(runs, "id", replace).to_pylist():
                    rid = row.pop("id")
                    values = ({k: _utc_naive(v) for k, v in row.items()}
                              if conn.dialect.name == "sqlite" else row)
                    conn.execute(update(RUNS).where(RUNS.c.id == rid).values(**values))
            rows_in["runs"] = _insert_frame(conn, RUNS, _remap(runs, "id", run_ids))
            for t in RUN_TABLES:
                rows_in[t.name] = _insert_frame(conn, t, _remap(frames[t.name], "run_id",
                                                                run_map))
            _fix_sequences(conn)
    except IntegrityError as e:
        raise ExportError(f"the export conflicts with the database or itself "
                          f"({str(e.orig).strip().splitlines()[0]}); nothing was imported"
                          ) from e
    return ImportSummary(
        experiments_new=rows_in["experiments"], runs_new=rows_in["runs"],
        runs_replaced=len(replace) - repaired, runs_skipped=skipped,
        remapped={o: n for o, n in run_ids.items() if o != n}, rows=rows_in,
        runs_repaired=repaired)


def table_counts(engine: Engine) -> dict[str, int]:
    """Row counts of every exported table (for checks and messages)."""
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(_table(name)))
                          .scalar_one()) for name in TABLES}
