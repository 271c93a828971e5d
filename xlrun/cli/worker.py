"""``xlrun worker``: claim queued runs from a shared database and execute them.

The worker imports the run path inside the command, after it has set the thread variables:
deferred on purpose, because PyTorch and the BLAS libraries size their thread pools when they
first load."""

from __future__ import annotations

import os
import sys

import click

from xlrun.cli.common import db_option, handle_errors, sigterm_as_interrupt
from xlrun.execute.threads import (
    ThreadBudget,
    WorkerRegistry,
    limit_threads,
    share_of_cores,
    thread_env,
)


@click.command("worker")
@db_option
@click.option("--max-runs", default=0, show_default=True, help="Stop after N runs (0: no limit).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--run", "run_ids", multiple=True, type=int,
              help="Only this run id (repeatable); used by SLURM jobs.")
@click.option("--heartbeat", "heartbeat_s", default=30.0, show_default=True,
              help="Seconds between heartbeats.")
@click.option("--stale-after", "stale_after_s", default=300.0, show_default=True,
              help="Reclaim running runs whose heartbeat is older than this (seconds).")
@click.option("--max-attempts", default=3, show_default=True,
              help="Mark a run failed once its worker has died this many times.")
@click.option("--wait/--exit-when-empty", default=False, show_default=True,
              help="Keep polling for new runs when the queue is empty.")
@click.option("--poll", "poll_s", default=10.0, show_default=True, help="Seconds between polls.")
@click.option("--claim-for", "claim_for_s", default=0.0, show_default=True,
              help="Claim no new run after this many seconds; the run in progress finishes "
                   "(0: no limit). For time-limited jobs: set it to the job's time minus one run.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0),
              help="Compute threads (PyTorch, BLAS, tokenizers) of this worker and of each "
                   "lane; 0: an equal share of the cores among the workers running on this "
                   "machine.")
@click.option("--lanes", default=1, show_default=True, type=click.IntRange(min=1),
              help="Runs in flight at once: N worker processes on the same device, each "
                   "keeping its model and data warm.")
@click.option("--deadline", "deadline", default=0.0, show_default=True,
              help="Epoch seconds by which every run must have finished (0: none): a run is "
                   "claimed only while the time left is at least this worker's p90 run time. "
                   "For time-limited jobs whose lanes share one deadline.")
@click.option("--run-estimate", "run_estimate_s", default=0.0, show_default=True,
              help="With --deadline: the seconds a run is assumed to take until this worker "
                   "has finished one.")
@click.option("--max-device-errors", default=2, show_default=True,
              help="Stop once this many runs in a row failed with a device error (CUDA, out "
                   "of memory, a lost context); they go back to the queue. 0: never stop. "
                   "Exit code 75.")
@click.option("--tag", default="worker", hidden=True, help="Worker name suffix (lanes).")
@handle_errors
def worker(db_url: str | None, max_runs: int, device: str, run_ids: tuple[int, ...],
           heartbeat_s: float, stale_after_s: float, max_attempts: int, wait: bool,
           poll_s: float, claim_for_s: float, threads: int, lanes: int, deadline: float,
           run_estimate_s: float, max_device_errors: int, tag: str) -> None:
    """Claim queued runs atomically and execute them (many workers may share one database).

    A worker keeps the model, tokenizer and data of its runs loaded between runs, and uses
    only its share of the machine's cores. No run stops it: a run that cannot be loaded or
    fails is marked failed (a device error puts it back in the queue), and a run written by
    a newer xlrun is left queued.
    """
    from xlrun.execute.worker_options import EXIT_DEVICE, WorkerOptions

    options = WorkerOptions(device=device, max_runs=max_runs, run_ids=run_ids or None,
                            heartbeat_s=heartbeat_s, stale_after_s=stale_after_s,
                            max_attempts=max_attempts, wait=wait, poll_s=poll_s,
                            claim_for_s=claim_for_s, threads=threads, deadline=deadline,
                            run_estimate_s=run_estimate_s,
                            max_device_errors=max_device_errors, tag=tag)
    registry = WorkerRegistry()
    if lanes > 1:
        from xlrun.db.engine import get_engine, resolve_url
        from xlrun.execute.worker import run_lanes

        url = resolve_url(db_url)
        get_engine(url).dispose()  # migrate once here, not in every lane at the same time
        code = run_lanes(url, options, lanes, log=lambda m: click.echo(m, err=True))
        if code:
            sys.exit(code)
        return
    registry.register()
    # before PyTorch and the BLAS libraries are imported: their pools read these variables
    os.environ.update(thread_env(threads or share_of_cores(registry.count())))
    from xlrun.db.engine import get_engine
    from xlrun.execute.progress import RichProgress
    from xlrun.execute.worker import run_worker

    limit_threads(threads or share_of_cores(registry.count()))
    sigterm_as_interrupt()
    engine = get_engine(db_url)
    budget = ThreadBudget(threads, registry)
    with RichProgress() as progress:
        try:
            outcomes = run_worker(engine, options, progress, budget=budget)
        except KeyboardInterrupt:
            click.echo("interrupted: the current run is back in the queue", err=True)
            sys.exit(130)
        finally:
            registry.unregister()
    failed = sum(o.status == "failed" for o in outcomes)
    if outcomes.device_stop:
        click.echo(f"worker stopped: {outcomes.stop_reason}", err=True)
        sys.exit(EXIT_DEVICE)
    click.echo(f"worker finished: {len(outcomes)} runs, {failed} failed")
    if failed:
        sys.exit(1)
