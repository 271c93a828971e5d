"""The local executor: runs the queued runs of a submission one after another here."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.execute.cache import WarmCache
from xlrun.execute.pipeline import RunOutcome, execute_run
from xlrun.execute.progress import NullProgress, Progress


def worker_name(tag: str = "local") -> str:
    """``host:pid:tag``: who holds a run, as shown by ``xlrun status``."""
    return f"{socket.gethostname()}:{os.getpid()}:{tag}"


class LocalExecutor:
    """Claims the given runs one at a time and executes them in this process.

    A failed run is recorded and the loop goes on; Ctrl-C puts the current run back to
    ``queued`` (see :func:`~xlrun.execute.pipeline.execute_run`) and stops.
    """

    name = "local"

    def __init__(self, device: str = "auto", heartbeat_s: float = 30.0) -> None:
        self.device = device
        self.heartbeat_s = heartbeat_s
        self.cache = WarmCache()  # runs of a submission share model and data

    def run(self, engine: Engine, run_ids: Sequence[int],
            progress: Progress | None = None) -> list[RunOutcome]:
        """Execute every still-queued run among ``run_ids``; their outcomes in order."""
        progress = progress or NullProgress()
        worker = worker_name()
        outcomes: list[RunOutcome] = []
        for rid in store.reclaim_dead_local(engine):
            progress.log(f"run {rid}: its worker on this machine is gone; resuming it")
        with progress.task("runs", len(run_ids)) as bar:
            while True:
                run_id = store.claim_run(engine, worker, run_ids, device=self.device)
                if run_id is None:
                    break
                outcome = execute_run(engine, run_id, worker=worker, device=self.device,
                                      progress=progress, heartbeat_s=self.heartbeat_s,
                                      cache=self.cache)
                outcomes.append(outcome)
                progress.log(f"run {run_id}: {outcome.status} in {outcome.seconds:.1f}s"
                             + (f" — {outcome.error.strip().splitlines()[-1]}" if outcome.error else ""))
                bar.advance(1)
        return outcomes
