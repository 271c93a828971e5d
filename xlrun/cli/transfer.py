"""``xlrun db export`` / ``xlrun db import``: move a results database as compact Parquet.

The commands import the database code inside their bodies: deferred on purpose, so that the
CLI starts without SQLAlchemy or pyarrow."""

from __future__ import annotations

from pathlib import Path

import click

from xlrun.cli.common import db_option, handle_errors


@click.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@db_option
@click.option("--experiment", "experiments", multiple=True, metavar="NAME",
              help="Export only this experiment (repeatable; default: all).")
@click.option("--done-only", is_flag=True,
              help="Only finished runs (leave out queued, running and failed ones).")
@click.option("--with-retrieved", is_flag=True,
              help="Also the retrieved table (each query's top-k documents, full precision "
                   "scores); by far the largest table.")
@handle_errors
def db_export(out_dir: Path, db_url: str | None, experiments: tuple[str, ...],
              done_only: bool, with_retrieved: bool) -> None:
    """Write experiments, runs and their results to OUT_DIR as zstd Parquet + manifest.json.

    OUT_DIR must be new or empty (not a symbolic link); the files are written beside it and
    renamed into place, so a failed export leaves nothing. Metrics in query_results are
    rounded to 4 decimals; the `retrieved` table (top-k lists) is left out unless
    --with-retrieved. `xlrun db import OUT_DIR` loads the folder into another database.
    """
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import export_database

    engine = get_engine(db_url, create=False)
    s = export_database(engine, out_dir, experiments or None, done_only=done_only,
                        with_retrieved=with_retrieved)
    counts = ", ".join(f"{k} {v}" for k, v in s.rows.items())
    click.echo(f"exported {len(s.experiments)} experiment(s) to {s.path} "
               f"({s.bytes / 1e6:.2f} MB, schema {s.schema_revision}): {counts}")


@click.command("import")
@click.argument("in_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@db_option
@click.option("--replace", is_flag=True,
              help="A done run here that differs from the export's done run of the same key "
                   "takes the export's results (its retrieved rows here are kept). Without "
                   "it such a run is a conflict and nothing is imported.")
@click.option("--allow-unverified", is_flag=True,
              help="Import an export without checksums (made by an older xlrun, format 1 or "
                   "2); only if you trust its source.")
@handle_errors
def db_import(in_dir: Path, db_url: str | None, replace: bool, allow_unverified: bool) -> None:
    """Load an export made by `xlrun db export` into the database (one transaction).

    The export is verified first (files inside the folder, row counts, checksums, per-run
    row counts, values that fit their columns) and validated like a submitted spec
    (experiment names, run keys, run configs); a partial, damaged or untrusted one is
    refused and nothing is written. Experiments match by name and runs by (experiment,
    run_key); new ones get ids from this database. Importing twice adds nothing; a done run
    here is never replaced unless --replace; runs the export holds unfinished come in as
    failed (submit their spec here to run them).
    """
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import import_database

    engine = get_engine(db_url)
    s = import_database(engine, in_dir, replace=replace, allow_unverified=allow_unverified)
    click.echo(f"imported {s.experiments_new} new experiment(s), {s.runs_new} new run(s), "
               f"{s.runs_replaced} replaced, "
               + (f"{s.runs_overwritten} overwritten (--replace), " if s.runs_overwritten
                  else "")
               + f"{s.runs_skipped} already present"
               + (f"; {s.runs_unfinished} unfinished there, imported as failed"
                  if s.runs_unfinished else "")
               + (f"; retrieved rows added to {s.retrieved_added} run(s)"
                  if s.retrieved_added else "")
               + (f"; {len(s.remapped)} run id(s) remapped" if s.remapped else ""))
    rows = {k: v for k, v in s.rows.items() if v}
    if rows:
        click.echo("rows: " + ", ".join(f"{k} {v}" for k, v in rows.items()))
