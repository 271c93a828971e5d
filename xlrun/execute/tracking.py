"""A stored run's trackers, for whichever process executes it: the ``[tracking]`` of the
experiment's stored spec (its latest submission), opened as a
:class:`~xlrun.tracking.session.TrackingSession` for the run; and :func:`replay_run`, which
reports a finished run afterwards from the database (``xlrun track``).

A tracker problem here never fails the run: an unusable ``[tracking]`` section or a missing
library is a warning, and the run goes on without that tracker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.db.run_results import metric_rows, train_log_rows
from xlrun.errors import UsageError, XlrunError
from xlrun.execute.run_context import RunContext
from xlrun.spec.load import stored_tracking
from xlrun.tracking.base import TRACKERS, EvalResult, TrackedRun, run_params
from xlrun.tracking.session import TrackingSession

Warn = Callable[[str], None]


def tracked_run(ctx: RunContext, model_revision: str | None = None) -> TrackedRun:
    """What the trackers are told about the run of ``ctx``."""
    c = ctx.config
    return TrackedRun(experiment=ctx.experiment, run_id=ctx.run_id, run_key=ctx.run_key,
                      arm=c.arm, seed=c.train.seed, model=c.model.name, steps=c.train.steps,
                      output_dir=ctx.output_dir.resolve(),
                      params=run_params(c, experiment=ctx.experiment, run_id=ctx.run_id,
                                        run_key=ctx.run_key),
                      model_revision=model_revision)


def open_tracking(ctx: RunContext, warn: Warn | None = None,
                  model_revision: str | None = None) -> TrackingSession:
    """The trackers of the run of ``ctx`` (none when its spec has no ``[tracking]``)."""
    run = tracked_run(ctx, model_revision)
    notes: list[str] = []
    trackers = []
    timeout = 60.0
    try:
        section = stored_tracking(ctx.spec_toml)
    except XlrunError as e:
        notes.append(f"tracking: off for {run.name}: {e}")
    else:
        timeout = section.close_timeout_s
        for name in section.report_to:
            cls = TRACKERS.get(name)
            missing = cls.missing()
            if missing:
                notes.append(f"tracking: {name} is off for {run.name}: {' and '.join(missing)} "
                             f"is not installed here (pip install 'xlrun[{cls.extra}]')")
            else:
                trackers.append(cls(section.options[name], run))
    session = TrackingSession(trackers, run, warn, timeout)
    for note in notes:
        session.warn(note)
    return session


def model_revision(encoder: Any) -> str | None:
    """The hub commit the encoder's weights were loaded from (``None``: unknown, e.g. a
    local folder)."""
    revision = getattr(getattr(getattr(encoder, "model", None), "config", None),
                       "_commit_hash", None)
    return revision if isinstance(revision, str) and revision else None


def eval_result(dataset: str, split: str, run_metrics: Any, info: dict[str, Any],
                meta: dict[str, Any] | None = None) -> EvalResult:
    """A dataset's :class:`EvalResult` from :func:`~xlrun.evaluate.runner.evaluate_dataset`'s
    ``run_metrics`` table (pyarrow) and ``info`` (its stage seconds)."""
    seconds = sum(float(info.get(f"{s}_s", 0.0)) for s in ("encode", "search", "metrics"))
    revision = (meta or {}).get("revision")
    return EvalResult(dataset, split, tuple(run_metrics.to_pylist()), seconds,
                      revision if isinstance(revision, str) and revision else None)


def replay_train_log(session: TrackingSession, rows: Sequence[dict[str, Any]]) -> None:
    """Tell ``session`` the logged steps of ``rows`` (``train_log``): for training that ran
    in other processes (a multi-GPU run under ``torchrun``)."""
    for r in rows:
        session.on_log(int(r["step"]), float(r["loss"]), float(r["lr"]), r["examples_per_s"])


def replay_run(engine: Engine, run_id: int, report_to: Sequence[str],
               warn: Warn | None = None) -> TrackingSession:
    """Report a stored run to ``report_to`` afterwards, from the database: its logged steps
    (``train_log``), its hyperparameters and its measures per dataset split
    (``run_metrics``) — for runs made before a tracker was configured, or whose tracker
    failed. Each tracker takes its options from the run's stored ``[tracking]`` when that
    names it, else its defaults. Returns the closed session (its ``warnings``).

    Raises:
        UsageError: an unknown tracker, one whose library is not installed, or a run that is
            queued or running (its trackers are fed as it runs).
    """
    status = store.get_run(engine, run_id)["status"]
    if status in ("queued", "running"):
        raise UsageError(f"run {run_id} is {status}: it reports to its [tracking] as it runs; "
                         "track it afterwards once it is done or failed")
    ctx = RunContext.load(engine, run_id)
    trackers_options: dict[str, Any] = {}
    try:
        trackers_options = stored_tracking(ctx.spec_toml).options
    except XlrunError:
        trackers_options = {}
    run = tracked_run(ctx)
    trackers = []
    for name in report_to:
        cls = TRACKERS.get(name, "--report-to")
        missing = cls.missing()
        if missing:
            raise UsageError(f"{name} needs {' and '.join(missing)}, which is not installed: "
                             f"pip install 'xlrun[{cls.extra}]'")
        trackers.append(cls(trackers_options.get(name) or cls.Options(), run))
    session = TrackingSession(trackers, run, warn)
    replay_train_log(session, train_log_rows(engine, run_id))
    by_split: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in metric_rows(engine, run_id):
        by_split.setdefault((r["dataset"], r["split"]), []).append(r)
    for (dataset, split), rows in by_split.items():
        session.log_eval(EvalResult(dataset, split, tuple(rows)))
    session.close("done" if status == "done" else "failed")
    return session
