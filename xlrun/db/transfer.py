"""Export a results database to compact Parquet files, and import such an export back.

An export is a folder: one zstd-compressed Parquet file per table plus ``manifest.json``
(format, schema revision, xlrun version, creation time, row counts per file and per run,
SHA-256 of every file). It holds ``experiments``, ``runs``, ``train_log``,
``batch_languages``, ``query_results`` (metrics rounded to :data:`DIGITS` decimals),
``query_measures`` (likewise), ``run_metrics``, ``language_clusters``, ``language_distances`` and ``sampling_plan``;
``retrieved`` (the top-k lists, by far the largest table) only when asked
(``with_retrieved``, scores at full precision). Only pyarrow is needed, not polars. An export
goes into a new or empty folder, never through a symbolic link: it is written into a
temporary folder beside it and renamed into place, so a failed export leaves nothing.
Passwords in free text (``spec_toml``, ``config_json``, ``error``) are masked.

Import first **verifies** the export and writes nothing unless all of it holds: the format
and its version, every file named by the manifest inside the folder, readable, with the
columns and types of its table, the row count, the SHA-256 and the per-run row counts the
manifest records (an export without checksums — format 1 or 2, or a file whose entry is
missing — only with ``allow_unverified``); every value fits its column (32-bit integers,
finite numbers, lengths, no control characters); every row belongs to a run of the export
and every run to an experiment of it; no key appears twice. It then **validates** what the
export says as a submitted spec is validated (:func:`check_contents`): experiment names,
run keys that are folder names of their own, every run config through the spec schema.
A partial, inconsistent or untrusted export is refused with a message naming the file and
the mismatch. Then it merges the export into the database in ONE transaction (imports into
one database are serialised, so the second of two concurrent imports skips what the first
added):

* experiments are matched by name, runs by ``(experiment name, run_key)``;
* new experiments and runs get ids from the database (never the export's), and every child
  row follows its run's new id;
* a run the database already has is left alone, except that a queued or failed run here is
  replaced by a ``done`` run from the export (its rows too); a done run here is never
  replaced: when the export's done run holds other results that is a **conflict** naming
  the runs, and nothing is imported — unless ``replace`` is given, which takes the export's
  version and keeps the database's ``retrieved`` rows (the export's own, if it has them);
* an export's runs that did not finish are imported as ``failed`` (no worker claims them)
  without the other machine's ``output_dir``; submitting their spec here requeues them with
  the config compiled here;
* so importing the same export twice adds nothing.

An export whose schema revision is unknown to this xlrun (made by a newer version) is
refused; an older revision is accepted (columns it lacks are left NULL).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import unicodedata
import uuid
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
from sqlalchemy.exc import DataError, IntegrityError

from xlrun import __version__
from xlrun.db.engine import alembic_config, current_revision
from xlrun.db.models import (
    BatchLanguages,
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryMeasure,
    QueryResult,
    Retrieved,
    Run,
    RunMetric,
    SamplingPlan,
    TrainLog,
)
from xlrun.errors import UsageError
from xlrun.evaluate.metrics import query_metrics
from xlrun.secrets import mask

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
RETRIEVED: Table = Retrieved.__table__  # type: ignore[assignment]
OPTIONAL: tuple[str, ...] = ("retrieved",)
"""Tables exported only when asked (``db export --with-retrieved``): the top-k lists are by
far the largest table. An import reads them when the export holds them."""
OMITTED = OPTIONAL
MASKED: dict[str, tuple[str, ...]] = {"experiments": ("spec_toml",),
                                      "runs": ("config_json", "error")}
"""Free-text columns written with passwords masked (:func:`xlrun.secrets.mask`)."""
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

    ``runs_new``: runs inserted (with ids the database gave them); ``runs_replaced``: queued
    or failed runs here replaced by a done run of the export; ``runs_overwritten``: done runs
    here replaced by a different done run of the export (only with ``replace``);
    ``runs_skipped``: runs the database already had (the same results, or unfinished in the
    export); ``runs_unfinished``: new runs that were not done in the export, imported as
    ``failed`` (inert until their spec is submitted here); ``retrieved_added``: done runs here
    that had no ``retrieved`` rows and got the export's; ``remapped``: exported run id → id
    here, where they differ; ``rows``: rows inserted per table.
    """

    experiments_new: int
    runs_new: int
    runs_replaced: int
    runs_skipped: int
    remapped: dict[int, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    runs_overwritten: int = 0
    runs_unfinished: int = 0
    retrieved_added: int = 0


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
    for t in (EXPERIMENTS, RUNS, *RUN_TABLES, RETRIEVED):
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
    result = conn.execute(stmt.execution_options(yield_per=_BATCH))  # not the connection's
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


def _check_target(out: Path) -> None:
    """An export goes into a new or empty folder of its own: never through a symbolic link,
    never over files that are there already.

    Raises:
        UsageError: ``out`` is a symbolic link, a file, or a folder that holds anything.
    """
    if out.is_symlink():
        raise UsageError(f"{out} is a symbolic link; an export writes only into a new or empty "
                         "folder of its own (name the real folder)")
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"{out} exists and is not a folder")
        if any(out.iterdir()):
            raise UsageError(f"{out} is not empty; an export writes only into a new or empty "
                             "folder (choose another name, or remove what is there)")


def _masked(name: str, frame: pa.Table) -> pa.Table:
    """Free-text columns that could quote a database URL, with passwords masked."""
    for column in MASKED.get(name, ()):
        if column in frame.column_names and frame.num_rows:
            values = [None if v is None else mask(v) for v in frame[column].to_pylist()]
            frame = _with_column(frame, column, pa.array(values, type=pa.string()))
    return frame


def export_database(engine: Engine, out_dir: str | Path,
                    experiments: Sequence[str] | None = None,
                    done_only: bool = False, with_retrieved: bool = False) -> ExportSummary:
    """Write the experiments (all, or those named) and their runs' rows to ``out_dir``.

    ``done_only`` keeps only finished runs (what a later session should not run again);
    ``with_retrieved`` adds the ``retrieved`` top-k lists (full precision scores).
    The files are written into a temporary folder beside ``out_dir`` and renamed into place
    when all of them are written: a failed export leaves nothing.

    Raises:
        UsageError: a named experiment does not exist; ``out_dir`` is a symbolic link, a file
            or a folder that is not empty; the files cannot be written (nothing is left).
    """
    out = Path(out_dir)
    _check_target(out)
    names = _export_names(engine, experiments)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.xlrun-export-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
    except OSError as e:
        raise UsageError(f"cannot write the export {out}: {e.strerror or e}") from e
    try:
        summary = _write_export(engine, tmp, names, done_only, with_retrieved)
        os.rename(tmp, out)
    except (OSError, pa.ArrowException) as e:
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip()[:200]
        raise UsageError(f"cannot write the export {out}: {why}; nothing was written") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dataclasses.replace(summary, path=out)


def _export_names(engine: Engine, experiments: Sequence[str] | None) -> list[str]:
    with engine.connect() as conn:
        known = list(conn.execute(select(EXPERIMENTS.c.name).order_by(EXPERIMENTS.c.name))
                     .scalars())
    names = list(dict.fromkeys(experiments)) if experiments else known
    missing = [n for n in names if n not in known]
    if missing:
        raise UsageError(f"unknown experiment(s) {', '.join(map(repr, missing))}; known: "
                         + (", ".join(known) or "(none)"))
    return names


def _write_export(engine: Engine, out: Path, names: list[str], done_only: bool,
                  with_retrieved: bool) -> ExportSummary:
    tables = (*TABLES, *OPTIONAL) if with_retrieved else TABLES
    with engine.connect() as conn:
        exp_ids = select(EXPERIMENTS.c.id).where(EXPERIMENTS.c.name.in_(names))
        run_ids = select(RUNS.c.id).where(RUNS.c.experiment_id.in_(exp_ids))
        if done_only:
            run_ids = run_ids.where(RUNS.c.status == "done")
        stmts: dict[str, Select] = {
            "experiments": select(EXPERIMENTS).where(EXPERIMENTS.c.id.in_(exp_ids)),
            "runs": select(RUNS).where(RUNS.c.id.in_(run_ids)),
        }
        for t in (*RUN_TABLES, RETRIEVED):
            stmts[t.name] = select(t).where(t.c.run_id.in_(run_ids))
        rows: dict[str, int] = {}
        sha: dict[str, str] = {}
        run_rows: dict[str, dict[str, int]] = {}
        total = 0
        for name in tables:
            table = _table(name)
            stmt = stmts[name].order_by(*[table.c[k] for k in _sort_keys(table)])
            frame = _masked(name, _round(name, _read(conn, table, stmt)))
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
    per_run_tables = [t for t in tables if t not in ("experiments", "runs")]
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "schema_revision": revision,
        "xlrun_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source_dialect": engine.dialect.name, "experiments": names, "done_only": done_only,
        "rows": rows, "omitted_tables": [t for t in OPTIONAL if t not in tables],
        "rounded": {k: {"columns": list(v), "decimals": DIGITS} for k, v in ROUNDED.items()},
        "derived": {"query_results": {"columns": list(DERIVED_COLUMNS),
                                      "when": "n_relevant = 1, from first_relevant_rank"}},
        "files": {n: f"{n}.parquet" for n in tables},
        "sha256": sha,
        "run_rows": {rid: {t: counts.get(t, 0) for t in per_run_tables}
                     for rid, counts in run_rows.items()},
    }
    path = out / "manifest.json"
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    total += path.stat().st_size
    return ExportSummary(path=out, rows=rows, bytes=total, schema_revision=revision,
                         experiments=tuple(names))


# ----------------------------------------------------------------------------- verify
class ExportError(UsageError):
    """An export that is partial, inconsistent, unverifiable or not an export, or that
    conflicts with the database; nothing was written."""


MAX_MANIFEST_BYTES = 64 * 2**20
"""Largest ``manifest.json`` read (one of a study is a few kB per hundred runs)."""
MAX_NESTING = 32
"""Deepest nesting a manifest or a stored config may have."""


def _too_deep(value: Any, limit: int = MAX_NESTING) -> bool:
    """Whether a parsed JSON value nests deeper than ``limit`` (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
    return False


def read_manifest(in_dir: str | Path) -> dict[str, Any]:
    """The manifest of an export folder, checked (format, version, field types).

    Raises:
        ExportError: no export there, or one in another format or a newer version.
    """
    path = Path(in_dir) / "manifest.json"
    if not path.is_file():
        raise ExportError(f"{in_dir} is not an xlrun export (no manifest.json); make one with "
                          "`xlrun db export OUT_DIR`")
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ExportError(f"{path} is larger than a manifest may be "
                          f"({MAX_MANIFEST_BYTES // 2**20} MiB)")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ExportError(f"{path} is not valid JSON ({e})") from e
    except RecursionError as e:
        raise ExportError(f"{path}: nested more than {MAX_NESTING} levels deep") from e
    if not isinstance(manifest, dict):
        raise ExportError(f"{path}: expected a JSON object, got {type(manifest).__name__}")
    if _too_deep(manifest):
        raise ExportError(f"{path}: nested more than {MAX_NESTING} levels deep")
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


def _read_file(path: Path, name: str, manifest: dict[str, Any],
               allow_unverified: bool = False) -> pa.Table:
    """One table of the export, checked against its schema and the manifest's row count and
    SHA-256 (required unless ``allow_unverified``)."""
    table = _table(name)
    want = manifest["rows"].get(name)
    if want is None:
        raise ExportError(f"manifest.json: 'rows' has no count for {name}")
    sha = (manifest.get("sha256") or {}).get(name)
    if sha is None and not allow_unverified:
        raise ExportError(f"manifest.json records no SHA-256 for {path.name}, so the file "
                          "cannot be verified (an export of an older xlrun, or an edited "
                          "one); import it with --allow-unverified if you trust its source")
    try:
        meta = pq.read_metadata(path)
        if meta.num_rows != want:
            raise ExportError(f"{path.name}: holds {meta.num_rows} rows, the manifest says "
                              f"{want}; the export is partial or was changed")
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
    _check_values(path.name, table, frame)
    return frame


INT_RANGE = (-(2**31), 2**31 - 1)
"""The database's INTEGER columns (32 bits on Postgres)."""
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"


def _check_values(where: str, table: Table, frame: pa.Table) -> None:
    """Values every database accepts: integers within 32 bits, finite floats, strings within
    their column's length and without control characters (free-text columns may hold line
    breaks and tabs), timestamps within what Python and Postgres represent.

    Raises:
        ExportError: naming the file, the column and the fault.
    """
    for c in frame.column_names:
        col, column = frame[c], table.c[c]
        if frame.num_rows == 0 or col.null_count == frame.num_rows:
            continue
        kind = _kind(frame.schema.field(c).type)
        if kind == "int" and c not in ("id", "run_id", "experiment_id"):  # ids are remapped
            lo, hi = (v.as_py() for v in pc.min_max(col).values())
            if lo < INT_RANGE[0] or hi > INT_RANGE[1]:
                bad = hi if hi > INT_RANGE[1] else lo
                raise ExportError(f"{where}: column {c} holds {bad}, outside the 32-bit "
                                  "integers a database column holds; the export is damaged or "
                                  "edited")
        elif kind == "float":
            values = _float_numpy(col)
            bad = ~np.isfinite(values) & ~pc.is_null(col).to_numpy(zero_copy_only=False)
            if bad.any():
                raise ExportError(f"{where}: column {c} holds {int(bad.sum())} value(s) that "
                                  f"are not finite numbers ({values[bad][0]}); metrics are "
                                  "numbers between 0 and 1, never NaN or infinite")
        elif kind == "str":
            length = getattr(column.type, "length", None)
            if length is not None:
                longest = pc.max(pc.utf8_length(col)).as_py()
                if longest is not None and longest > length:
                    raise ExportError(f"{where}: column {c} holds a value of {longest} "
                                      f"characters, more than its {length}")
            pattern = _CONTROL if length is not None else r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
            hits = pc.sum(pc.cast(pc.match_substring_regex(col, pattern), pa.int64())).as_py()
            if hits:
                raise ExportError(f"{where}: column {c} holds {hits} value(s) with control "
                                  "characters (terminal escapes?); the export is damaged or "
                                  "edited")
        elif kind == "ts":
            try:
                col.to_pylist()
            except (ValueError, OverflowError) as e:
                raise ExportError(f"{where}: column {c} holds a timestamp out of range "
                                  f"({e})") from e


def _unique(frame: pa.Table, keys: Sequence[str], where: str) -> None:
    if frame.num_rows == 0:
        return
    n = frame.group_by(list(keys)).aggregate([]).num_rows
    if n != frame.num_rows:
        raise ExportError(f"{where}: {frame.num_rows - n} row(s) repeat the key "
                          f"({', '.join(keys)}); the export is inconsistent")


def verify_export(src: Path, manifest: dict[str, Any],
                  allow_unverified: bool = False) -> dict[str, pa.Table]:
    """Read every table of the export in ``src`` and check it against the manifest.

    Checks: each file lies inside ``src``, is readable Parquet with its table's columns and
    types, holds the manifest's row count and SHA-256 (a format older than 3, or a file
    without a checksum, only with ``allow_unverified``); every value fits its column
    (:func:`_check_values`); every row belongs to an exported run, every run to an exported
    experiment; keys are unique; per-run row counts (format 3) match. ``retrieved`` is read
    when the export holds it (``db export --with-retrieved``).

    Raises:
        ExportError: naming the file and the mismatch.
    """
    version = manifest.get("format_version", 0)
    if version < 3 and not allow_unverified:
        raise ExportError(f"the export in {src} is format {version}, which carries no "
                          "checksums, so it cannot be verified; import it with "
                          "--allow-unverified if you trust its source")
    listed = manifest.get("files") or {}
    frames = {name: (arrow_schema(_table(name)).empty_table()
                     if name in ADDED_LATER and name not in listed
                     else _read_file(_file_of(src, name, manifest), name, manifest,
                                     allow_unverified))
              for name in TABLES}
    for name in OPTIONAL:
        if name in listed:
            frames[name] = _read_file(_file_of(src, name, manifest), name, manifest,
                                      allow_unverified)
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
    for name in [t.name for t in RUN_TABLES] + [n for n in OPTIONAL if n in frames]:
        counts = _run_counts(frames[name])
        stray = sorted(set(counts) - run_ids)
        if stray:
            raise ExportError(f"{name}.parquet: {sum(counts[i] for i in stray)} row(s) of run "
                              f"id(s) {stray[:5]} that runs.parquet lacks; the export is "
                              "inconsistent")
        if name in ("query_results", "run_metrics", "train_log", "batch_languages",
                    "retrieved", "query_measures"):
            _unique(frames[name], _sort_keys(_table(name)), f"{name}.parquet")
        if per_run is None:
            continue
        for rid in sorted(run_ids):
            want = per_run[str(rid)].get(name, 0) if isinstance(per_run[str(rid)], dict) \
                else None
            have = counts.get(rid, 0)
            if want != have:
                raise ExportError(f"{name}.parquet: run {rid} ({keys[rid]}) has {have} "
                                  f"rows, the manifest says {want}; the export is partial")
    check_contents(frames)
    return frames


# ----------------------------------------------------------------------------- trust
RUN_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""What a run key may be: it names the run's folder under ``output_dir/<experiment>/``
(xlrun's own keys are 16 hex digits)."""
STATUSES = ("queued", "running", "done", "failed")
CONFIG_EXTRAS = ("output_dir", "model_resolved", "env")
"""``runs.config_json`` keys beside the run config's sections: where the run kept its files,
how its model was loaded, what the spec's ``${VAR}`` expanded."""
MAX_CONFIG_CHARS = 1_000_000
_NAME_COLUMNS = ("model", "sampler", "language_sampling", "clustering", "device", "host",
                 "worker")


def check_contents(frames: dict[str, pa.Table]) -> None:
    """Validate what an export says about experiments and runs as a submitted spec is
    validated: experiment names (:func:`~xlrun.spec.load.check_name`: folder names without
    control or invisible characters), run keys (:data:`RUN_KEY`), statuses, and every run's
    config through the spec schema (sections, keys, types, ranges, registered names).

    Raises:
        ExportError: naming the experiment or run and the fault.
    """
    from xlrun.errors import SpecError
    from xlrun.spec.load import check_name  # deferred: the spec loader imports the registries

    for name in frames["experiments"]["name"].to_pylist():
        try:
            check_name(name, "experiments.name")
        except SpecError as e:
            raise ExportError(f"experiments.parquet: {_printable(e)}; refused (an import "
                              "accepts what a spec may name)") from e
    runs = frames["runs"]
    for row in runs.select(["run_key", "status", "config_json", *_NAME_COLUMNS]).to_pylist():
        key = row["run_key"]
        if not RUN_KEY.fullmatch(key) or ".." in key:
            raise ExportError(f"runs.parquet: run key {key!r} is not a folder name of its own "
                              "(letters, digits, _ . -; xlrun's keys are 16 hex digits); "
                              "refused")
        if row["status"] not in STATUSES:
            raise ExportError(f"runs.parquet: run {key}: status {row['status']!r} is not one "
                              f"of {', '.join(STATUSES)}")
        for c in _NAME_COLUMNS:
            value = row[c]
            if value is not None and any(unicodedata.category(ch) in ("Cc", "Cf")
                                         for ch in value):
                raise ExportError(f"runs.parquet: run {key}: {c} {value!r} holds control or "
                                  "invisible characters; refused")
        check_config(row["config_json"], f"runs.parquet: run {key}")


def _printable(e: Exception) -> str:
    return str(e).encode("unicode_escape").decode("ascii") if not str(e).isprintable() \
        else str(e)


def _set(section: Any) -> Any:
    """A stored section without its unset (``null``) fields, as a spec table would be."""
    return {k: v for k, v in section.items() if v is not None} if isinstance(section, dict) \
        else section


def check_config(text_: str, where: str) -> dict[str, Any]:
    """A stored run config (``runs.config_json``) parsed and checked through the spec schema;
    returns it.

    Raises:
        ExportError: not JSON, too large or deep, unknown keys, or a section the spec loader
            refuses.
    """
    from xlrun.errors import SpecError
    from xlrun.spec.load import RUN_SECTIONS, build_section
    from xlrun.spec.schema import EvalSection, RunConfig

    if len(text_) > MAX_CONFIG_CHARS:
        raise ExportError(f"{where}: its config is {len(text_)} characters, more than "
                          f"{MAX_CONFIG_CHARS}")
    try:
        config = json.loads(text_)
    except (json.JSONDecodeError, RecursionError) as e:
        raise ExportError(f"{where}: its config is not valid JSON") from e
    if not isinstance(config, dict) or _too_deep(config):
        raise ExportError(f"{where}: its config is not a JSON object of at most "
                          f"{MAX_NESTING} levels")
    sections = [f.name for f in dataclasses.fields(RunConfig)]
    unknown = sorted(set(config) - set(sections) - set(CONFIG_EXTRAS))
    if unknown:
        raise ExportError(f"{where}: its config has keys this xlrun does not know "
                          f"({', '.join(unknown)}); an export from a newer xlrun?")
    try:
        for name in sections:
            if name not in config:
                raise SpecError(name, "required section is missing", has_value=False)
            if name == "eval":
                if not isinstance(config["eval"], list) or not config["eval"]:
                    raise SpecError("eval", "expected a list of [[eval]] tables",
                                    value=config["eval"])
                for i, e in enumerate(config["eval"]):
                    build_section(EvalSection, _set(e), f"eval[{i}]")
            elif name in RUN_SECTIONS:
                build_section(RUN_SECTIONS[name], _set(config[name]), name)
        out = config.get("output_dir")
        if out is not None and not isinstance(out, str):
            raise SpecError("output_dir", "expected a string", value=out)
    except SpecError as e:
        raise ExportError(f"{where}: its config is not one a spec could give "
                          f"({_printable(e)}); refused") from e
    return config


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


def _only(frame: pa.Table, column: str, ids: Sequence[int]) -> pa.Table:
    if not ids:
        return frame.slice(0, 0)
    return frame.filter(pc.is_in(frame[column], value_set=pa.array(list(ids), pa.int64())))


_IMPORT_LOCK_KEY = 7_242_100_532
"""Postgres advisory lock id that serialises imports (migrations use ...531)."""


def _lock(conn: Connection) -> None:
    """Serialise imports into one database: the second of two concurrent imports waits, then
    sees the first one's rows and skips them (instead of failing on their keys)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _IMPORT_LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock before the first read


def _local_frames(conn: Connection, names: Sequence[str], run_ids: Sequence[int]
                  ) -> dict[str, pa.Table]:
    """The database's rows of ``run_ids`` as an export would hold them (rounded)."""
    out = {}
    for name in names:
        table = _table(name)
        stmt = select(table).where(table.c.run_id.in_(list(run_ids))) if run_ids else \
            select(table).where(text("1 = 0"))
        out[name] = _round(name, _read(conn, table, stmt))
    return out


def _same_rows(name: str, ours: pa.Table, theirs: pa.Table) -> str | None:
    """``None`` when two runs' rows of table ``name`` (``run_id`` left out) hold the same
    values — metrics compared at the export's precision — else what differs."""
    if ours.num_rows != theirs.num_rows:
        return f"{name}: {ours.num_rows} rows here, {theirs.num_rows} in the export"
    if ours.num_rows == 0:
        return None
    keys = [k for k in _sort_keys(_table(name)) if k != "run_id"]
    common = [c for c in ours.column_names if c in theirs.column_names and c != "run_id"]
    a = ours.select(common).sort_by([(k, "ascending") for k in keys])
    b = theirs.select(common).sort_by([(k, "ascending") for k in keys])
    rounded = set(ROUNDED.get(name, ()))
    for c in a.column_names:
        x, y = a[c], b[c]
        if _kind(a.schema.field(c).type) == "float":
            u, v = _float_numpy(x), _float_numpy(y)
            if c in rounded:
                u, v = np.round(u, DIGITS), np.round(v, DIGITS)
            if not np.allclose(u, v, rtol=1e-12, atol=1e-12, equal_nan=True):
                return f"{name}.{c}: values differ"
        elif x.to_pylist() != pc.cast(y, x.type).to_pylist():
            return f"{name}.{c}: values differ"
    return None


def import_database(engine: Engine, in_dir: str | Path, *, replace: bool = False,
                    allow_unverified: bool = False) -> ImportSummary:
    """Merge the export in ``in_dir`` into ``engine``'s database (one transaction), after
    verifying all of it (:func:`verify_export`, :func:`check_contents`).

    ``replace``: a done run that differs from the database's done run of the same key takes
    its place (without it that is a conflict); the database's ``retrieved`` rows of the run
    are kept unless the export holds the run's own. ``allow_unverified``: accept an export
    without checksums (older formats).

    Raises:
        UsageError: not an export, a partial, damaged, unverifiable or inconsistent one, one
            from a newer schema revision, or one whose done runs differ from the database's
            (the message names them) — nothing is written.
    """
    src = Path(in_dir)
    manifest = read_manifest(src)
    check_revision(manifest.get("schema_revision"), current_revision(engine))
    frames = verify_export(src, manifest, allow_unverified=allow_unverified)
    try:
        try:
            return _merge(engine, frames, replace)
        except IntegrityError:
            # a submit created the same experiment or run meanwhile: merge against it
            return _merge(engine, frames, replace)
    except (IntegrityError, DataError) as e:
        raise ExportError(f"the export conflicts with the database or itself "
                          f"({mask(str(e.orig).strip().splitlines()[0])}); nothing was "
                          "imported") from e


def _merge(engine: Engine, frames: dict[str, pa.Table], replace: bool) -> ImportSummary:
    exps, runs = frames["experiments"], frames["runs"]
    has_retrieved = "retrieved" in frames
    run_tables = [t.name for t in RUN_TABLES]
    export_counts = {n: _run_counts(frames[n]) for n in [*run_tables, *OPTIONAL]
                     if n in frames}
    rows_in: dict[str, int] = dict.fromkeys([*TABLES, *OPTIONAL], 0)
    with engine.begin() as conn:
        _lock(conn)
        # experiments: by name; new ones get ids from the database
        existing = {r.name: r.id for r in conn.execute(select(EXPERIMENTS.c.name,
                                                               EXPERIMENTS.c.id))}
        new_exps = exps.filter(pc.invert(pc.is_in(
            exps["name"], value_set=pa.array(list(existing), pa.string()))))
        rows_in["experiments"] = _insert_frame(conn, EXPERIMENTS, new_exps.drop(["id"]))
        by_name = {r.name: r.id for r in conn.execute(select(EXPERIMENTS.c.name,
                                                              EXPERIMENTS.c.id))}
        exp_map = {r["id"]: by_name[r["name"]] for r in exps.select(["id", "name"]).to_pylist()}
        exp_names = {v: k for k, v in by_name.items()}
        runs = _remap(runs, "experiment_id", exp_map)
        # runs: by (experiment, run_key)
        have = {(r.experiment_id, r.run_key): (r.id, r.status) for r in conn.execute(
            select(RUNS.c.experiment_id, RUNS.c.run_key, RUNS.c.id, RUNS.c.status))}
        new: list[int] = []
        replace_unfinished: dict[int, int] = {}  # exported id -> database id
        done_both: dict[int, int] = {}
        skipped = 0
        export_runs = runs.select(["id", "experiment_id", "run_key", "status"]).to_pylist()
        label = {r["id"]: f"{exp_names[r['experiment_id']]}/{r['run_key']}"
                 for r in export_runs}
        for r in export_runs:
            hit = have.get((r["experiment_id"], r["run_key"]))
            if hit is None:
                new.append(r["id"])
            elif hit[1] in ("queued", "failed") and r["status"] == "done":
                replace_unfinished[r["id"]] = hit[0]
            elif hit[1] == "done" and r["status"] == "done":
                done_both[r["id"]] = hit[0]
            else:
                skipped += 1
        # done here and there: the same results are skipped, different ones are a conflict
        compared = [*run_tables, *(OPTIONAL if has_retrieved else ())]
        local = _local_frames(conn, compared, list(done_both.values()))
        conflicts: dict[int, str] = {}
        fill_retrieved: list[int] = []
        for rid, target in done_both.items():
            for name in run_tables:
                why = _same_rows(name, _only(local[name], "run_id", [target]),
                                 _only(frames[name], "run_id", [rid]))
                if why:
                    conflicts[rid] = why
                    break
            else:
                if has_retrieved and export_counts["retrieved"].get(rid):
                    ours = _only(local["retrieved"], "run_id", [target])
                    if ours.num_rows == 0:
                        fill_retrieved.append(rid)  # only adds what the database lacks
                    elif why := _same_rows("retrieved", ours,
                                           _only(frames["retrieved"], "run_id", [rid])):
                        conflicts[rid] = why
                        continue
                skipped += 1
        if conflicts and not replace:
            shown = "; ".join(f"{label[rid]} ({why})" for rid, why in
                              list(conflicts.items())[:3])
            more = f" and {len(conflicts) - 3} more" if len(conflicts) > 3 else ""
            raise ExportError(f"{len(conflicts)} done run(s) of the export differ from the "
                              f"done runs this database holds under the same key: {shown}"
                              f"{more}; nothing was imported (`xlrun db import --replace` "
                              "takes the export's version and keeps the database's retrieved "
                              "rows)")
        overwrite = {rid: done_both[rid] for rid in conflicts}
        replaced = {**replace_unfinished, **overwrite}
        # new runs: ids from the database, never the export's
        new_runs = _only(runs, "id", new)
        new_runs = _unfinished_as_failed(new_runs)
        rows_in["runs"] = _insert_frame(conn, RUNS, new_runs.drop(["id"]))
        ids_now = {(r.experiment_id, r.run_key): r.id for r in conn.execute(
            select(RUNS.c.experiment_id, RUNS.c.run_key, RUNS.c.id))}
        new_map = {r["id"]: ids_now[(r["experiment_id"], r["run_key"])]
                   for r in new_runs.select(["id", "experiment_id", "run_key"]).to_pylist()}
        if replaced:
            targets = list(replaced.values())
            for t in RUN_TABLES:
                conn.execute(delete(t).where(t.c.run_id.in_(targets)))
            # the database's top-k lists go only where the export brings the run's own (or
            # where the run there never finished)
            drop_retrieved = list(replace_unfinished.values()) + [
                target for rid, target in overwrite.items()
                if has_retrieved and export_counts["retrieved"].get(rid)]
            if drop_retrieved:
                conn.execute(delete(RETRIEVED).where(RETRIEVED.c.run_id.in_(drop_retrieved)))
            for row in _remap(runs, "id", replaced).to_pylist():
                rid = row.pop("id")
                values = ({k: _utc_naive(v) for k, v in row.items()}
                          if conn.dialect.name == "sqlite" else row)
                conn.execute(update(RUNS).where(RUNS.c.id == rid).values(**values))
        run_map = {**new_map, **replaced}
        for t in RUN_TABLES:
            rows_in[t.name] = _insert_frame(conn, t, _remap(frames[t.name], "run_id", run_map))
        if has_retrieved:
            keep = {rid: t for rid, t in replaced.items()
                    if rid in replace_unfinished or export_counts["retrieved"].get(rid)}
            retrieved_map = {**new_map, **keep,
                             **{rid: done_both[rid] for rid in fill_retrieved}}
            rows_in["retrieved"] = _insert_frame(conn, RETRIEVED, _remap(
                frames["retrieved"], "run_id", retrieved_map))
    unfinished = sum(1 for r in export_runs if r["id"] in new and r["status"] != "done")
    return ImportSummary(
        experiments_new=rows_in["experiments"], runs_new=rows_in["runs"],
        runs_replaced=len(replace_unfinished), runs_skipped=skipped,
        remapped={o: n for o, n in new_map.items() if o != n}, rows=rows_in,
        runs_overwritten=len(overwrite), runs_unfinished=unfinished,
        retrieved_added=len(fill_retrieved))


def _unfinished_as_failed(runs: pa.Table) -> pa.Table:
    """An export's runs that did not finish, made inert: status ``failed`` (no worker claims
    them) with a note, and no ``output_dir`` of the machine they came from. ``xlrun submit``
    of their spec here requeues them with the config it compiles (never the imported one)."""
    if runs.num_rows == 0:
        return runs
    rows = runs.to_pylist()
    for r in rows:
        if r["status"] == "done":
            continue
        config = json.loads(r["config_json"])
        config.pop("output_dir", None)
        r.update(status="failed", worker=None, heartbeat_at=None,
                 config_json=json.dumps(config, sort_keys=True),
                 error=f"imported from an export where it was {r['status']}; submit its "
                       "spec here to run it")
    return pa.Table.from_pylist(rows, schema=runs.schema)


def table_counts(engine: Engine) -> dict[str, int]:
    """Row counts of every exported table (for checks and messages)."""
    with engine.connect() as conn:
        return {name: int(conn.execute(select(func.count()).select_from(_table(name)))
                          .scalar_one()) for name in TABLES}
