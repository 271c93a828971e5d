"""A whole report: read the results, compute the requested view, describe it.

:func:`build_report` is what ``xlrun report`` runs; it returns the frame to render plus a
title and metadata, so the CLI only parses flags, renders and plots.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine

from xlrun.errors import UsageError
from xlrun.report import stats
from xlrun.report.query import (
    BIAS_COLUMNS,
    ReportFilter,
    load_clusters,
    load_distances,
    load_report_frame,
    metric_column,
)


@dataclass(frozen=True)
class ReportRequest:
    """What ``xlrun report`` was asked for."""

    by: str = "language-pair"
    filter: ReportFilter = field(default_factory=ReportFilter)
    metric: str = "map"
    compare: str | None = None
    baseline: str | None = None
    regress: bool = False
    bias: bool = False
    distance_source: str | None = None
    tests: stats.InferenceConfig = field(default_factory=stats.InferenceConfig)


@dataclass(frozen=True)
class Report:
    """A computed report: ``frame`` to render, its ``kind`` (summary, compare, regress,
    bias), a one-line ``title`` and JSON-ready ``meta``."""

    kind: str
    frame: pl.DataFrame
    title: str
    meta: dict[str, Any]
    request: ReportRequest


def build_report(conn: Connection | Engine, req: ReportRequest) -> Report:
    """Compute the report ``req`` describes from the results database.

    Raises:
        UsageError: bad ``by``/metric/baseline/compare key, unknown experiment, no data.
    """
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return build_report(c, req)
    cells = stats.cell_columns(req.by)
    value = metric_column(req.metric)
    if req.regress and req.bias:
        raise UsageError("--regress and --bias are different views; choose one")
    columns = list(BIAS_COLUMNS) if req.bias else [value]
    df = load_report_frame(conn, req.filter, columns, req.compare)
    meta: dict[str, Any] = {"by": req.by, "metric": req.metric, "compare": req.compare,
                            **{k: v for k, v in vars(req.filter).items() if v is not None}}
    scope = ", ".join(f"{k}={v}" for k, v in vars(req.filter).items() if v is not None)
    scope = f" [{scope}]" if scope else ""
    if req.bias:
        frame = stats.bias_table(df, cells)
        return Report("bias", frame, f"language bias (multi setting) by {req.by}{scope}",
                      meta, req)
    if df[value].drop_nulls().len() == 0:
        raise UsageError(f"no values of {req.metric} in the selected results"
                         + (" (rank_distance exists only for the 'multi' setting)"
                            if value == "rank_distance" else ""))
    if req.regress:
        run_ids = df["run_id"].unique().sort().to_list()
        source, distances = load_distances(conn, run_ids, req.distance_source)
        if source is None:
            raise UsageError("--regress needs language distances; language_distances has no "
                             "rows for these runs")
        clusters = load_clusters(conn, run_ids)
        arms = stats.arm_order(df["arm"].unique().to_list(), req.baseline) \
            if "arm" in df.columns else ["all"]
        frame = stats.regress(df, value, distances, clusters, baseline=arms[0])
        meta.update({"distance_source": source, "baseline": arms[0]})
        title = (f"{req.metric} ~ arm × distance ({source}) + same_cluster + language fixed "
                 f"effects; baseline arm {arms[0]}{scope}")
        return Report("regress", frame, title, meta, req)
    if req.compare is None:
        frame = stats.summarize(df, cells, value)
        return Report("summary", frame, f"{req.metric} by {req.by}{scope}", meta, req)
    arms = stats.arm_order(df["arm"].unique().to_list(), req.baseline)
    frame = stats.compare_arms(df, cells, value, arms[0], req.tests)
    meta.update({"baseline": arms[0], "arms": arms, "holm_on": req.tests.holm_on,
                 "n_permutations": req.tests.n_permutations,
                 "n_bootstrap": req.tests.n_bootstrap, "seed": req.tests.seed})
    title = (f"{req.metric} by {req.by}, {req.compare} vs baseline {arms[0]}: mean, delta "
             f"[95% bootstrap CI], paired t / sign-flip p, Holm over cells{scope}")
    return Report("compare", frame, title, meta, req)


def plot_report(report: Report, path: str | Path) -> Path:
    """Plot ``report``: a heatmap for language pairs (the delta with significance marks when
    comparing arms), otherwise a bar chart per cell."""
    from xlrun.report import plots

    frame, req = report.frame, report.request
    if report.kind == "regress":
        ols = frame.filter(pl.col("model") == "ols_cluster", pl.col("term") != "intercept")
        return plots.bar_chart(ols, path, "term", "coef", title=report.title)
    value = "rank_distance" if report.kind == "bias" else "mean"
    if req.by == "language-pair":
        if report.kind == "compare":
            arms = report.meta["arms"]
            part = frame.filter(pl.col("arm") == arms[1])
            return plots.heatmap(part, path, "delta", marks="mark", diverging=True,
                                 title=f"{req.metric}: {arms[1]} − {arms[0]}")
        if "arm" in frame.columns:
            frame = frame.filter(pl.col("arm") == frame["arm"].sort()[0])
        return plots.heatmap(frame, path, value, title=report.title)
    category = stats.cell_columns(req.by)[0]
    group = "arm" if "arm" in frame.columns else None
    return plots.bar_chart(frame, path, category, value, group=group, title=report.title)
