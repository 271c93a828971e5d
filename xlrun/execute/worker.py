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

No run can stop a worker: every run it claims ends marked (see
:func:`~xlrun.execute.pipeline.execute_run`) and the worker goes on; it skips runs written by
a newer xlrun (they stay queued for a newer worker). Only its device can stop it: after
``max_device_errors`` runs in a row fail with a device error (each goes back to the queue),
the worker stops and says why, so one broken device cannot fail a whole queue that healthy
workers are draining. With a ``deadline`` (epoch seconds, shared by every lane of a
time-limited job) it claims a run only while the time left is at least its own p90 run time
(:func:`run_time_estimate`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.errors import DatabaseUnavailable
from xlrun.execute.cache import WarmCache
from xlrun.execute.executors.local import worker_name
from xlrun.execute.pipeline import execute_run
from xlrun.execute.progress import NullProgress, Progress
from xlrun.execute.run_context import RunOutcome
from xlrun.execute.threads import ThreadBudget, WorkerRegistry, share_of_cores, thread_env
from xlrun.execute.worker_options import EXIT_DEVICE, WorkerOptions

__all__ = ["EXIT_DEVICE", "WorkerOptions", "WorkerOutcomes", "lane_command", "run_lanes",
           "run_time_estimate", "run_worker"]


class WorkerOutcomes(list):
    """The outcomes of a worker's runs, in order (a list), and why it stopped claiming:
    ``stop_reason`` (``""`` when the queue was empty or ``max_runs`` reached) and
    ``device_stop`` (True when its device failed ``max_device_errors`` runs in a row)."""

    stop_reason: str = ""
    device_stop: bool = False


def run_time_estimate(seconds: Sequence[float], first_guess: float) -> float:
    """The run time a worker plans with: the 90th percentile of its finished runs' seconds
    (``first_guess`` before it has finished one). From the third run on, the worker's first run
    is left out: it carries the cold start (loading the model and data, first kernels), which
    later runs do not pay."""
    xs = sorted(seconds[1:] if len(seconds) >= 3 else seconds)
    if not xs:
        return float(first_guess)
    pos = 0.9 * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def _last_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[-1][:300] if lines else ""


def run_worker(engine: Engine, options: WorkerOptions, progress: Progress | None = None,
               clock: Callable[[], float] = time.monotonic, cache: WarmCache | None = None,
               budget: ThreadBudget | None = None,
               wall: Callable[[], float] = time.time) -> WorkerOutcomes:
    """Claim and execute runs until the queue is empty, ``max_runs`` is reached,
    ``claim_for_s`` has passed, the ``deadline`` leaves less than this worker's p90 run time
    (the run in progress then finishes; nothing new starts), or the device failed
    ``max_device_errors`` runs in a row.

    ``cache`` (default: a new one) is shared by the runs; ``budget`` (default: from
    ``options.threads`` alone) sets the compute threads before each run. ``clock`` measures
    ``claim_for_s``; ``wall`` (epoch seconds) is compared with ``deadline``.
    """
    progress = progress or NullProgress()
    cache = cache if cache is not None else WarmCache()
    budget = budget if budget is not None else ThreadBudget(options.threads)
    name = worker_name(options.tag)
    outcomes = WorkerOutcomes()
    skip: set[int] = set()  # runs written by a newer xlrun: left queued for a newer worker
    retry_later: set[int] = set()  # runs given back after a device error: others first
    run_seconds: list[float] = []
    device_errors = 0
    no_claims_after = (clock() + options.claim_for_s if options.claim_for_s > 0
                       else float("inf"))
    while not options.max_runs or len(outcomes) < options.max_runs:
        if clock() >= no_claims_after:
            progress.log(f"{name}: claim time ({options.claim_for_s:.0f} s) spent; "
                         "leaving the rest queued")
            outcomes.stop_reason = "claim time spent"
            break
        if options.deadline > 0:
            left = options.deadline - wall()
            need = run_time_estimate(run_seconds, options.run_estimate_s)
            if left < need:
                outcomes.stop_reason = (f"{max(left, 0):.0f}s left before the deadline, less "
                                        f"than a run takes here (p90 {need:.0f}s)")
                progress.log(f"{name}: stops claiming: {outcomes.stop_reason}; leaving the "
                             "rest queued")
                break
        reclaimed = store.reclaim_dead_local(engine, options.max_attempts) + store.reclaim_stale(
            engine, options.stale_after_s, options.max_attempts)
        for rid in reclaimed:
            progress.log(f"reclaimed run {rid} (its worker stopped heartbeating)")
        run_id = store.claim_run(engine, name, options.run_ids, device=options.device,
                                 exclude=skip | retry_later)
        if run_id is None and retry_later:
            retry_later.clear()  # nothing else is left: try them again here
            continue
        if run_id is None:
            if options.wait and clock() + options.poll_s < no_claims_after:
                time.sleep(options.poll_s)
                continue
            break
        threads = budget.apply()
        progress.log(f"{name}: running run {run_id} ({threads} thread{'s' * (threads > 1)})")
        outcome = _execute(engine, run_id, name, options, progress, cache)
        if outcome.fault == "newer":
            skip.add(run_id)
            progress.log(f"run {run_id}: {outcome.error}")
            continue
        tail = f" — {_last_line(outcome.error)}" if outcome.status != "done" and outcome.error \
            else ""
        progress.log(f"run {run_id}: {outcome.status} in {outcome.seconds:.1f}s{tail}")
        outcomes.append(outcome)
        if outcome.status == "done":
            run_seconds.append(outcome.seconds)
        device_errors = device_errors + 1 if outcome.fault == "device" else 0
        if outcome.fault == "device" and outcome.status == "queued":
            retry_later.add(run_id)
        if options.max_device_errors and device_errors >= options.max_device_errors:
            outcomes.device_stop = True
            outcomes.stop_reason = (f"{device_errors} runs in a row hit device errors (last: "
                                    f"{_last_line(outcome.error)}); they are back in the "
                                    "queue for other workers")
            progress.log(f"{name}: stops: {outcomes.stop_reason}")
            break
    if skip:
        progress.log(f"{name}: left {len(skip)} run(s) queued that a newer xlrun wrote "
                     f"(ids {', '.join(map(str, sorted(skip)))}): run them with a newer worker")
    return outcomes


def _execute(engine: Engine, run_id: int, name: str, options: WorkerOptions,
             progress: Progress, cache: WarmCache) -> RunOutcome:
    """:func:`execute_run`, and should anything still escape it (a bug), the run is marked
    failed with the error and the worker goes on."""
    try:
        return execute_run(engine, run_id, worker=name, device=options.device,
                           progress=progress, heartbeat_s=options.heartbeat_s, cache=cache,
                           max_attempts=options.max_attempts)
    except (KeyboardInterrupt, DatabaseUnavailable):
        raise
    except Exception as e:  # noqa: BLE001 - no run may stop the worker
        msg = f"worker error on run {run_id}: {type(e).__name__}: {e}"
        with contextlib.suppress(Exception):
            store.finish_run(engine, run_id, "failed", error=msg, worker=name)
        return RunOutcome(run_id, "failed", 0.0, msg)


def lane_command(options: WorkerOptions, lane: int) -> list[str]:
    """The command line of one lane (a ``python -m xlrun worker`` process; the database URL
    travels in ``XLRUN_DB``, never on a command line)."""
    argv = [sys.executable, "-m", "xlrun", "worker", "--lanes", "1",
            "--device", options.device, "--max-runs", str(options.max_runs),
            "--heartbeat", str(options.heartbeat_s), "--stale-after", str(options.stale_after_s),
            "--max-attempts", str(options.max_attempts),
            "--wait" if options.wait else "--exit-when-empty", "--poll", str(options.poll_s),
            "--claim-for", str(options.claim_for_s), "--threads", str(options.threads),
            "--deadline", repr(float(options.deadline)),
            "--run-estimate", str(options.run_estimate_s),
            "--max-device-errors", str(options.max_device_errors),
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
