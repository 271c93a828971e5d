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
@handle_errors
def db_export(out_dir: Path, db_url: str | None, experiments: tuple[str, ...],
              done_only: bool) -> None:
    """Write experiments, runs and their results to OUT_DIR as zstd Parquet + manifest.json.

    Metrics in query_results are rounded to 4 decimals; the `retrieved` table (top-k lists)
    is left out. `xlrun db import OUT_DIR` loads the folder into another database.
    """
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import export_database

    engine = get_engine(db_url, create=False)
    s = export_database(engine, out_dir, experiments or None, done_only=done_only)
    counts = ", ".join(f"{k} {v}" for k, v in s.rows.items())
    click.echo(f"exported {len(s.experiments)} experiment(s) to {s.path} "
               f"({s.bytes / 1e6:.2f} MB, schema {s.schema_revision}): {counts}")


@click.command("import")
@click.argument("in_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@db_option
@handle_errors
def db_import(in_dir: Path, db_url: str | None) -> None:
    """Load an export made by `xlrun db export` into the database (one transaction).

    The export is verified first (files inside the folder, row counts, checksums, per-run
    row counts); a partial or damaged one is refused and nothing is written. Experiments
    match by name and runs by (experiment, run_key): importing twice adds nothing; ids
    already taken are given new ones; a run held incomplete is repaired.
    """
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import import_database

    engine = get_engine(db_url)
    s = import_database(engine, in_dir)
    click.echo(f"imported {s.experiments_new} new experiment(s), {s.runs_new} new run(s), "
               f"{s.runs_replaced} replaced, "
               + (f"{s.runs_repaired} repaired, " if s.runs_repaired else "")
               + f"{s.runs_skipped} already present"
               + (f"; {len(s.remapped)} run id(s) remapped" if s.remapped else ""))
    rows = {k: v for k, v in s.rows.items() if v}
    if rows:
        click.echo("rows: " + ", ".join(f"{k} {v}" for k, v in rows.items()))
