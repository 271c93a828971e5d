"""The local executor: runs the queued runs of a submission one after another here."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.execute.executors.base import EXECUTORS, Dispatch, Executor
from xlrun.execute.progress import NullProgress, Progress
from xlrun.execute.run_context import RunOutcome
from xlrun.spec.schema import ExecutorSection


def worker_name(tag: str = "local") -> str:
    """``host:pid:tag``: who holds a run, as shown by ``xlrun status``."""
    return f"{socket.gethostname()}:{os.getpid()}:{tag}"


@EXECUTORS.register("local")
class LocalExecutor(Executor):
    """Claims the given runs one at a time and executes them in this process.

    A failed run is recorded and the loop goes on; Ctrl-C puts the current run back to
    ``queued`` (see :func:`~xlrun.execute.pipeline.execute_run`) and stops. A run given back
    after a device error stays queued (for a later call or a worker), and after
    ``max_device_errors`` of those in a row the loop stops: a broken device does not fail
    every run of the submission.
    """

    max_device_errors = 2

    name = "local"
    runs_here = True

    def __init__(self, device: str = "auto", heartbeat_s: float = 30.0) -> None:
        self.device = device
        self.heartbeat_s = heartbeat_s
        self.cache: Any = None  # a WarmCache from the first run on: the runs share it

    @classmethod
    def from_spec(cls, section: ExecutorSection, *, db_url: str, device: str, folder: Path,
                  **overrides: Any) -> LocalExecutor:
        """Runs here on ``device``, heartbeating every ``section.heartbeat_s`` seconds."""
        return cls(device=device, heartbeat_s=section.heartbeat_s)

    def dispatch(self, engine: Engine, run_ids: Sequence[int], progress: Progress) -> Dispatch:
        """:meth:`run`, summed up."""
        outcomes = self.run(engine, run_ids, progress)
        failed = sum(o.status == "failed" for o in outcomes)
        return Dispatch(f"executed {len(outcomes)} runs: {len(outcomes) - failed} done, "
                        f"{failed} failed", tuple(outcomes))

    def run(self, engine: Engine, run_ids: Sequence[int],
            progress: Progress | None = None) -> list[RunOutcome]:
        """Execute every still-queued run among ``run_ids``; their outcomes in order."""
        # deferred on purpose: the run path loads PyTorch and transformers, which reading a
        # spec (that names this executor) must not
        from xlrun.execute.cache import WarmCache
        from xlrun.execute.pipeline import execute_run

        if self.cache is None:
            self.cache = WarmCache()  # runs of a submission share model and data
        progress = progress or NullProgress()
        worker = worker_name()
        outcomes: list[RunOutcome] = []
        given_back: set[int] = set()  # after a device error, or written by a newer xlrun
        device_errors = 0
        for rid in store.reclaim_dead_local(engine):
            progress.log(f"run {rid}: its worker on this machine is gone; resuming it")
        with progress.task("runs", len(run_ids)) as bar:
            while True:
                run_id = store.claim_run(engine, worker, run_ids, device=self.device,
                                         exclude=given_back)
                if run_id is None:
                    break
                outcome = execute_run(engine, run_id, worker=worker, device=self.device,
                                      progress=progress, heartbeat_s=self.heartbeat_s,
                                      cache=self.cache)
                outcomes.append(outcome)
                lines = (outcome.error or "").strip().splitlines()
                progress.log(f"run {run_id}: {outcome.status} in {outcome.seconds:.1f}s"
                             + (f" — {lines[-1]}" if lines else ""))
                bar.advance(1)
                if outcome.status == "queued" and outcome.fault:
                    given_back.add(run_id)
                device_errors = device_errors + 1 if outcome.fault == "device" else 0
                if self.max_device_errors and device_errors >= self.max_device_errors:
                    progress.log(f"stopping: {device_errors} runs in a row hit device errors; "
                                 "the rest stay queued (run them again when the device works)")
                    break
        return outcomes
