"""Workers: processes that claim queued runs from a shared database and execute them.

Any number of workers (on any number of machines) can share one Postgres database, or one
SQLite file on a local disk. Each claim is atomic (see :func:`xlrun.db.store.claim_run`), a
running run sends heartbeats, and a worker first puts back runs whose worker stopped
heartbeating (crashed, killed, lost its node), so every run completes exactly once; a
reclaimed run resumes from its last checkpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.execute.local import worker_name
from xlrun.execute.pipeline import RunOutcome, execute_run
from xlrun.execute.progress import NullProgress, Progress


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker behaves."""

    device: str = "auto"
    max_runs: int = 0  # 0 = no limit
    run_ids: tuple[int, ...] | None = None  # only these runs
    heartbeat_s: float = 30.0
    stale_after_s: float = 300.0
    max_attempts: int = 3  # a run whose worker died this often is marked failed
    wait: bool = False  # keep polling when the queue is empty
    poll_s: float = 10.0
    tag: str = "worker"
    claim_for_s: float = 0.0  # > 0: claim no new run after this many seconds (time-limited jobs)


def run_worker(engine: Engine, options: WorkerOptions, progress: Progress | None = None,
               clock: Callable[[], float] = time.monotonic) -> list[RunOutcome]:
    """Claim and execute runs until the queue is empty, ``max_runs`` is reached, or
    ``claim_for_s`` has passed (the run in progress then finishes; nothing new starts)."""
    progress = progress or NullProgress()
    name = worker_name(options.tag)
    outcomes: list[RunOutcome] = []
    no_claims_after = (clock() + options.claim_for_s if options.claim_for_s > 0
                       else float("inf"))
    while not options.max_runs or len(outcomes) < options.max_runs:
        if clock() >= no_claims_after:
            progress.log(f"{name}: claim time ({options.claim_for_s:.0f} s) spent; "
                         "leaving the rest queued")
            break
        reclaimed = store.reclaim_dead_local(engine) + store.reclaim_stale(
            engine, options.stale_after_s, options.max_attempts)
        for rid in reclaimed:
            progress.log(f"reclaimed run {rid} (its worker stopped heartbeating)")
        run_id = store.claim_run(engine, name, options.run_ids, device=options.device)
        if run_id is None:
            if options.wait and clock() + options.poll_s < no_claims_after:
                time.sleep(options.poll_s)
                continue
            break
        progress.log(f"{name}: running run {run_id}")
        outcome = execute_run(engine, run_id, worker=name, device=options.device,
                              progress=progress, heartbeat_s=options.heartbeat_s)
        progress.log(f"run {run_id}: {outcome.status} in {outcome.seconds:.1f}s")
        outcomes.append(outcome)
    return outcomes
