"""``xlrun report --curves``: the training loss per arm over steps, from ``train_log``.

A ``train_log`` row is the mean loss of one logging window (``train.log_every`` steps) of one
run. Per arm (``--compare``, default the whole arm) and logged step the curve is the mean over
the arm's runs (seeds) that logged that step, with their SD, minimum and maximum (the spread
over seeds). Only finished runs count, as in every report; untrained runs (``train.steps =
0``) log nothing and are named in a note.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, Engine, select

from xlrun.db.models import TrainLog
from xlrun.errors import UsageError
from xlrun.report import cells, plots
from xlrun.report.build import Report, ReportRequest
from xlrun.report.frames import WHOLE_ARM, describe_where, load_runs

COLUMNS: tuple[str, ...] = ("arm", "step", "runs", "loss_mean", "loss_sd", "loss_min",
                            "loss_max")
"""Columns of the curves table."""

_LOG_SCHEMA = {"run_id": pl.Int64, "step": pl.Int64, "loss": pl.Float64, "lr": pl.Float64}


def load_train_log(conn: Connection, run_ids: Sequence[int]) -> pl.DataFrame:
    """``run_id, step, loss, lr`` of the given runs' ``train_log`` rows, sorted."""
    t = TrainLog.__table__
    rows = conn.execute(select(t.c.run_id, t.c.step, t.c.loss, t.c.lr)
                        .where(t.c.run_id.in_(list(run_ids)))
                        .order_by(t.c.run_id, t.c.step)).all()
    return pl.DataFrame([tuple(r) for r in rows], schema=_LOG_SCHEMA, orient="row")


def curves_table(log: pl.DataFrame, arm_of: pl.DataFrame,
                 arms: Sequence[str] | None = None) -> pl.DataFrame:
    """Per arm and step (:data:`COLUMNS`): runs that logged the step, mean, SD (null with one
    run), min and max of their losses. ``arm_of`` maps ``run_id`` to ``arm``; ``arms`` orders
    the arms (default: sorted)."""
    per = log.join(arm_of.select("run_id", "arm"), on="run_id", how="inner")
    frame = (per.group_by("arm", "step")
             .agg(pl.col("run_id").n_unique().cast(pl.Int64).alias("runs"),
                  pl.col("loss").mean().alias("loss_mean"),
                  pl.col("loss").std().alias("loss_sd"),
                  pl.col("loss").min().alias("loss_min"),
                  pl.col("loss").max().alias("loss_max"))
             .select(COLUMNS))
    order = list(arms) if arms is not None else sorted(frame["arm"].unique().to_list())
    order += sorted(set(frame["arm"].to_list()) - set(order))
    rank = {a: i for i, a in enumerate(order)}
    return (frame.with_columns(pl.col("arm").replace_strict(rank, return_dtype=pl.Int64)
                               .alias("__rank"))
            .sort("__rank", "step").drop("__rank"))


def build_curves(conn: Connection | Engine, req: ReportRequest) -> Report:
    """The curves report of ``req``'s runs (its filter, ``--compare``, default the whole arm,
    and ``--baseline``, listed first).

    Raises:
        UsageError: unknown experiment or ``--where``/``--compare`` key, or no selected run
            logged a training step.
    """
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return build_curves(c, req)
    compare = req.compare or WHOLE_ARM
    runs = load_runs(conn, req.filter, compare)
    if runs.height == 0:
        raise UsageError("no finished runs" + _scope(req))
    log = load_train_log(conn, runs["run_id"].to_list())
    if log.height == 0:
        raise UsageError("no training logged (train_log) for the selected runs: curves exist "
                         "only for trained runs" + _scope(req))
    arms = cells.arm_order(runs["arm"].unique().to_list(), req.baseline)
    frame = curves_table(log, runs, arms)
    logged = set(frame["arm"].to_list())
    notes = []
    silent = [a for a in arms if a not in logged]
    if silent:
        notes.append(f"arm(s) {', '.join(silent)} logged no training steps (untrained runs, "
                     "train.steps = 0): no curve")
    partial = frame.group_by("arm").agg(pl.col("runs").min().alias("lo"),
                                        pl.col("runs").max().alias("hi"))
    for arm, lo, hi in partial.sort("arm").iter_rows():
        if lo != hi:
            notes.append(f"arm {arm!r}: its runs logged different steps ({lo} to {hi} runs per "
                         "step); each point is the mean of the runs that logged it")
    n_runs = dict(runs.group_by("arm").agg(pl.len()).iter_rows())
    meta = {"compare": compare, "arms": [a for a in arms if a in logged],
            "runs_per_arm": {a: int(n_runs[a]) for a in arms if a in logged},
            **({"experiment": req.filter.experiment} if req.filter.experiment else {})}
    if notes:
        meta["notes"] = list(notes)
    title = ("training loss per arm over steps (train_log: the mean loss of each logging "
             "window): mean over the arm's runs (seeds), SD, min and max" + _scope(req))
    return Report("curves", frame, title, meta, req, tuple(notes))


def _scope(req: ReportRequest) -> str:
    parts = [f"experiment={req.filter.experiment}"] if req.filter.experiment else []
    if req.filter.where:
        parts.append(f"where {describe_where(req.filter.where)}")
    return f" [{', '.join(parts)}]" if parts else ""


def plot_curves(report: Report, path: str | Path) -> Path:
    """Write the curves of ``report`` as a PNG: one line per arm (mean over its runs) with
    its min–max band over seeds."""
    return plots.line_bands(report.frame, path, x="step", y="loss_mean", low="loss_min",
                            high="loss_max", group="arm", title=report.title,
                            ylabel="training loss (mean over runs; band: min–max over seeds)")
