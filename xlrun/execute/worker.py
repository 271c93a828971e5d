"""Workers: processes that claim queued runs from a shared database and execute them.

Any number of workers (on any number of machines) can share one Postgres database, or one
SQLite file on a local disk. Each claim is atomic (see :func:`xlrun.db.store.claim_run`), a
running run sends heartbeats, and a worker first puts back runs whose worker stopped
heartbeating (crashed, killed, lost its node), so every run completes exactly once; a
reclaimed run resumes from its last checkpoint.

A worker is *warm*: it keeps one :class:`~xlrun.execute.cache.WarmCache` for all its runs
(model and tokenizer loaded once, weights restored per run, data and tokenisations reused),
and it limits its compute threads to its share of the machine's cores before every run
(:mod:`xlrun.execute.threads`). Several runs in flight on one device are several worker
processes (``xlrun worker --lanes N`` starts N of them, see :func:`run_lanes`): each lane has
its own cache and an equal share of the cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.execute.cache import WarmCache
from xlrun.execute.executors.local import worker_name
from xlrun.execute.pipeline import execute_run
from xlrun.execute.progress import NullProgress, Progress
from xlrun.execute.run_context import RunOutcome
from xlrun.execute.threads import ThreadBudget, WorkerRegistry, share_of_cores, thread_env


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
    threads: int = 0  # compute threads; 0 = an equal share of the cores among live workers


def run_worker(engine: Engine, options: WorkerOptions, progress: Progress | None = None,
               clock: Callable[[], float] = time.monotonic, cache: WarmCache | None = None,
               budget: ThreadBudget | None = None) -> list[RunOutcome]:
    """Claim and execute runs until the queue is empty, ``max_runs`` is reached, or
    ``claim_for_s`` has passed (the run in progress then finishes; nothing new starts).

    ``cache`` (default: a new one) is shared by the runs; ``budget`` (default: from
    ``options.threads`` alone) sets the compute threads before each run.
    """
    progress = progress or NullProgress()
    cache = cache if cache is not None else WarmCache()
    budget = budget if budget is not None else ThreadBudget(options.threads)
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
        threads = budget.apply()
        progress.log(f"{name}: running run {run_id} ({threads} thread{'s' * (threads > 1)})")
        outcome = execute_run(engine, run_id, worker=name, device=options.device,
                              progress=progress, heartbeat_s=options.heartbeat_s, cache=cache)
        progress.log(f"run {run_id}: {outcome.status} in {outcome.seconds:.1f}s")
        outcomes.append(outcome)
    return outcomes


def lane_command(options: WorkerOptions, lane: int) -> list[str]:
    """The command line of one lane (a ``python -m xlrun worker`` process; the database URL
    travels in ``XLRUN_DB``, never on a command line)."""
    argv = [sys.executable, "-m", "xlrun", "worker", "--lanes", "1",
            "--device", options.device, "--max-runs", str(options.max_runs),
            "--heartbeat", str(options.heartbeat_s), "--stale-after", str(options.stale_after_s),
            "--max-attempts", str(options.max_attempts),
            "--wait" if options.wait else "--exit-when-empty", "--poll", str(options.poll_s),
            "--claim-for", str(options.claim_for_s), "--threads", str(options.threads),
            "--tag", f"{options.tag}-lane{lane}"]
    for rid in options.run_ids or ():
        argv += ["--run", str(rid)]
    return argv


def run_lanes(db_url: str, options: WorkerOptions, lanes: int,
              log: Callable[[str], None] = print) -> int:
    """Run ``lanes`` worker processes side by side (several runs in flight on one device).

    Each lane is a fresh ``xlrun worker`` process with its own warm cache; its thread share
    is ``options.threads`` or, when 0, an equal share of the cores among the live workers of
    this host (the lanes included), set in the environment before the lane imports anything.
    SIGINT/SIGTERM are passed on (each lane puts its current run back in the queue). Returns
    the worst exit code (0 when every lane finished cleanly).
    """
    first = options.threads or share_of_cores(WorkerRegistry().live() + lanes)
    env = dict(os.environ, XLRUN_DB=db_url, **thread_env(first))
    procs: list[subprocess.Popen] = []
    stopping = False

    def forward(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for lane in range(1, lanes + 1):
            procs.append(subprocess.Popen(lane_command(options, lane), env=env))
        log(f"{lanes} lanes started (pids {', '.join(str(p.pid) for p in procs)}, "
            f"{first} thread{'s' * (first > 1)} each to begin with)")
        codes = []
        for p in procs:
            while True:
                try:
                    codes.append(p.wait())
                    break
                except KeyboardInterrupt:  # pragma: no cover - the handler above takes SIGINT
                    forward(signal.SIGINT, None)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if stopping:
        return 130
    return max(codes, default=0)
