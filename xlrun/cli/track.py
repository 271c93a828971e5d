"""``xlrun track RUN_ID… --report-to TRACKERS``: report stored runs to trackers afterwards.

The command imports the run path inside its body: deferred on purpose, so that the CLI starts
without SQLAlchemy."""

from __future__ import annotations

import click

from xlrun.cli.common import db_option, handle_errors


@click.command("track")
@click.argument("run_ids", nargs=-1, type=int, required=True)
@click.option("--report-to", "report_to", required=True, metavar="TRACKERS",
              help="Comma-separated: tensorboard, mlflow, wandb, mteb.")
@db_option
@handle_errors
def track(run_ids: tuple[int, ...], report_to: str, db_url: str | None) -> None:
    """Report stored runs (their logged steps, hyperparameters and measures, from the
    database) to trackers: for runs made before [tracking] named them, or whose tracker
    failed. Options come from each run's stored [tracking] table, else the defaults."""
    from xlrun.db.engine import get_engine
    from xlrun.execute.tracking import replay_run

    names = [x.strip() for x in report_to.split(",") if x.strip()]
    engine = get_engine(db_url, create=False)
    for run_id in run_ids:
        session = replay_run(engine, run_id, names, warn=lambda m: click.echo(m, err=True))
        state = "with warnings" if session.warnings else "done"
        click.echo(f"run {run_id}: reported to {', '.join(names)} ({state})")
