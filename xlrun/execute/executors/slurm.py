"""The SLURM executor: one submitit job per run, each running ``xlrun worker --run ID``
against the shared database (so a job that dies is reclaimed like any crashed worker).

``cluster="local"`` uses submitit's local executor (the same code path without SLURM), which
is how the tests exercise it.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from xlrun.db.store import get_run
from xlrun.errors import UsageError
from xlrun.execute.executors.base import EXECUTORS, Dispatch, Executor
from xlrun.execute.progress import Progress
from xlrun.secrets import has_secret
from xlrun.spec.schema import ExecutorSection


def _submitit() -> Any:
    """The ``submitit`` module (an optional dependency: ``pip install 'xlrun[slurm]'``)."""
    try:
        import submitit  # deferred on purpose: optional, and only this executor needs it
    except ImportError as e:
        raise UsageError("the SLURM executor needs submitit: pip install 'xlrun[slurm]'") from e
    return submitit


def _has_password(url: str) -> bool:
    """Whether a database URL holds a password, in its user information or its query."""
    return bool(make_url(url).password) or has_secret(url)


@EXECUTORS.register("slurm")
@dataclass(frozen=True)
class SlurmExecutor(Executor):
    """Submits runs as SLURM jobs through submitit."""

    db_url: str
    folder: Path = Path("xlrun-out/slurm")
    partition: str = ""
    gpus_per_node: int = 1
    time_limit_min: int = 240
    cpus_per_task: int = 8
    cluster: str | None = None  # None: auto-detect SLURM; "local": submitit's local executor
    device: str = "auto"

    @classmethod
    def from_spec(cls, section: ExecutorSection, *, db_url: str, device: str = "auto",
                  folder: Path = Path("xlrun-out/slurm"), **overrides: Any) -> SlurmExecutor:
        """Settings from the spec's ``[executor]`` table, overridden by CLI values
        (``partition``, ``gpus_per_node``, ``time_limit_min``, ``cluster``; ``None``: not
        given)."""
        values = {"partition": section.partition, "gpus_per_node": section.gpus_per_node,
                  "time_limit_min": section.time_limit_min}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(db_url=db_url, device=device, folder=Path(folder), **values)

    def dispatch(self, engine: Engine, run_ids: Sequence[int], progress: Progress) -> Dispatch:
        """:meth:`submit`: one job per queued run."""
        return Dispatch(f"submitted {len(self.submit(engine, run_ids))} SLURM jobs")

    def _executor(self) -> Any:
        """A ``submitit.AutoExecutor`` with this executor's settings."""
        ex = _submitit().AutoExecutor(folder=str(self.folder), cluster=self.cluster)
        params: dict[str, Any] = {"timeout_min": self.time_limit_min, "name": "xlrun",
                                  "cpus_per_task": self.cpus_per_task}
        if ex.cluster == "slurm":
            params["gpus_per_node"] = self.gpus_per_node
            if self.partition:
                params["slurm_partition"] = self.partition
        ex.update_parameters(**params)
        return ex

    def command(self, run_id: int) -> list[str]:
        """The command a job runs.

        A URL with a password (in any form: ``user:pw@``, ``?password=``, a libpq
        ``password=`` string) is not put on the command line (where ``ps``, the submitit folder
        and its pickles would show it): jobs then read it from ``XLRUN_DB``, which SLURM passes
        on from the submitting shell.
        """
        exe = shutil.which("xlrun")
        base = [exe] if exe else [sys.executable, "-m", "xlrun"]
        db = [] if _has_password(self.db_url) else ["--db", self.db_url]
        return [*base, "worker", "--run", str(run_id), *db, "--device", self.device,
                "--max-runs", "1"]

    def submit(self, engine: Engine, run_ids: Sequence[int]) -> list[Any]:
        """Submit one job per queued run; returns the submitit jobs."""
        if _has_password(self.db_url) and os.environ.get("XLRUN_DB") != self.db_url:
            raise UsageError("the database URL holds a password: export it as XLRUN_DB (jobs "
                             "inherit it) instead of passing --db, so that it stays off "
                             "command lines")
        ex = self._executor()
        jobs = []
        for rid in run_ids:
            if get_run(engine, rid)["status"] != "queued":
                continue
            jobs.append(ex.submit(_submitit().helpers.CommandFunction(self.command(rid))))
        return jobs
