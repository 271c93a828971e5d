"""Submitting a spec: compile it, check the data, enqueue the runs, then execute them where
the executor says. ``xlrun submit`` and ``xlrun evaluate`` both go through here; the CLI only
prints.

1. :func:`prepare` — grid size, compilation (every run validated), ``--only``, and
   :func:`~xlrun.execute.preflight.check_runs` (data read, every arm's sampler built): bad
   input is an error before anything is written.
2. :func:`enqueue` — the runs table (new runs, requeued unfinished ones, finished ones kept).
3. :func:`execute` — the executor (``executor.kind`` or an override) takes the queued runs
   (:func:`executor_for` builds it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xlrun.db.store import SubmitResult, submit_runs
from xlrun.errors import SpecError, UsageError
from xlrun.execute.executors import EXECUTORS, Dispatch, Executor
from xlrun.execute.preflight import ArmPlan, Log, check_runs
from xlrun.execute.progress import NullProgress, Progress
from xlrun.files import check_writable_dir
from xlrun.spec.grid import CompiledRun, check_grid_size, compile_spec
from xlrun.spec.schema import Spec


@dataclass(frozen=True)
class Submission:
    """A compiled, checked spec, ready to enqueue.

    Attributes:
        spec: the parsed spec.
        runs: its runs (after ``--only``).
        plans: the clustered arms' expected training composition (for ``--dry-run``).
        written: files the checks wrote (``--dry-run`` names them).
    """

    spec: Spec
    runs: list[CompiledRun]
    plans: list[ArmPlan]
    written: tuple[Path, ...] = ()
    """Files :func:`prepare` wrote for the runs to reuse (an embedding similarity's distance
    cache, a model built from ``quickstart:*``), under :attr:`output_dir`."""

    @property
    def output_dir(self) -> Path:
        """``experiment.output_dir``, absolute (stored with the runs)."""
        return Path(self.spec.experiment.output_dir).resolve()


def _artefacts(folders: Sequence[Path]) -> dict[Path, int]:
    """Every file under ``folders`` with its modification time (ns)."""
    out: dict[Path, int] = {}
    for folder in folders:
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file():
                    out[path] = path.stat().st_mtime_ns
    return out


def prepare(spec: Spec, *, only: Sequence[str] = (), confirmed: bool = False,
            device: str = "cpu", log: Log | None = None,
            progress: Progress | None = None) -> Submission:
    """Compile ``spec`` and check everything a run needs before anything is written.

    Args:
        spec: the parsed spec.
        only: keep only these run keys (``--only``).
        confirmed: a grid above the default limit was confirmed (``--yes``).
        device: where an embedding similarity computes its distances.
        log: progress messages (e.g. a model loading for an embedding similarity).
        progress: bars for long checks (an embedding similarity encoding its texts).

    Raises:
        SpecError: the grid is too large, or a run or the data does not fit the spec.
        UsageError: ``only`` names run keys the spec lacks, or a data file is unusable.
    """
    check_grid_size(spec, confirmed=confirmed)
    try:
        check_writable_dir(Path(spec.experiment.output_dir).resolve())
    except UsageError as e:
        raise SpecError("experiment.output_dir", f"not a folder xlrun can write ({e})",
                        value=spec.experiment.output_dir,
                        allowed="a folder that exists or can be created, and is writable"
                        ) from e
    runs = compile_spec(spec)
    if only:
        known = {r.run_key for r in runs}
        unknown = [k for k in only if k not in known]
        if unknown:
            raise UsageError(f"--only names unknown run keys {unknown}; this spec's run keys "
                             f"are: {', '.join(sorted(known))}")
        runs = [r for r in runs if r.run_key in only]
    output_dir = Path(spec.experiment.output_dir).resolve()
    # what the checks may write for the runs: distance caches and built models
    watched = [output_dir / spec.experiment.name / ".langsim", output_dir / ".models"]
    before = _artefacts(watched)
    plans = check_runs(runs, experiment=spec.experiment.name, output_dir=output_dir,
                       device=device, log=log, progress=progress)
    written = tuple(sorted(p for p, t in _artefacts(watched).items() if before.get(p) != t))
    return Submission(spec, runs, plans, written)


def enqueue(engine: Engine, submission: Submission) -> SubmitResult:
    """Write the submission's runs (idempotent: finished runs stay, unfinished are requeued)."""
    spec = submission.spec
    return submit_runs(engine, spec.experiment.name, spec.source_toml, submission.runs,
                       output_dir=str(submission.output_dir), env=spec.env)


def executor_for(engine: Engine, submission: Submission, *, executor: str | None = None,
                 device: str = "auto", **overrides: Any) -> Executor:
    """The executor that takes the submission's runs: ``executor`` (a registered name), else
    the spec's ``executor.kind``; ``overrides`` are command-line executor settings (``None``:
    not given)."""
    spec = submission.spec
    kind = executor or spec.executor.kind
    cls = EXECUTORS.get(kind, "executor.kind" if executor is None else "--executor")
    return cls.from_spec(spec.executor, db_url=engine.url.render_as_string(hide_password=False),
                         device=device, folder=Path(spec.experiment.output_dir) / "slurm",
                         **overrides)


def execute(engine: Engine, submission: Submission, run_ids: Sequence[int], *,
            executor: str | None = None, device: str = "auto",
            progress: Progress | None = None, **overrides: Any) -> Dispatch:
    """Hand the queued runs among ``run_ids`` to :func:`executor_for`'s executor."""
    runner = executor_for(engine, submission, executor=executor, device=device, **overrides)
    return runner.dispatch(engine, run_ids, progress or NullProgress())
