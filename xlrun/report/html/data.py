"""What the HTML page shows, computed with the report code itself.

Every table and chart of the page comes from a :class:`~xlrun.report.build.Report` that
``xlrun report`` builds for the same request (:func:`~xlrun.report.build.build_report`,
:func:`~xlrun.report.exposure.build_exposure`, :func:`~xlrun.report.curves.build_curves`),
so the page's numbers are the numbers of ``--format json``. Only two things are computed
here: the per-query drill-down (the questions whose score changed most, per arm, setting and
language pair) and, beside the regression, its stage-1 pair deltas against distance with their
least-squares line (which equals the table's ``arm[a] + arm[a]:distance × distance`` whenever
the language-pair terms include the intercept and distance: the shared pair terms absorb
everything but the within-pair contrasts).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from scipy import stats
from sqlalchemy import Connection

from xlrun.errors import UsageError
from xlrun.report import regression
from xlrun.report.build import Report, ReportRequest, build_report
from xlrun.report.curves import build_curves
from xlrun.report.exposure import build_exposure
from xlrun.report.frames import (
    WHOLE_ARM,
    load_clusters,
    load_distances,
    load_report_frame,
    metric_column,
)
from xlrun.report.html.overview import Overview, load_overview

SETTING_ORDER: tuple[str, ...] = ("mono", "cross", "multi")

DRILL_PER_PAIR = 10
"""Questions kept per arm, setting and language pair in the drill-down."""

DRILL_PER_SETTING = 25
"""Questions kept per arm and setting over all its language pairs."""


@dataclass(frozen=True)
class Scope:
    """One dataset and split of the page (``None``: the only one there is)."""

    dataset: str | None = None
    split: str | None = None

    @property
    def label(self) -> str:
        """``xquad-r/test``, or ``""`` for the only dataset."""
        return f"{self.dataset}/{self.split}" if self.dataset is not None else ""


@dataclass(frozen=True)
class View:
    """One view of the page: its report, or why there is none (the message ``xlrun
    report`` would print for it)."""

    key: str
    title: str
    report: Report | None = None
    missing: str | None = None
    scope: Scope = field(default_factory=Scope)
    setting: str | None = None


@dataclass(frozen=True)
class Line:
    """A least-squares line ``y = a + b x`` with its pointwise interval on a grid."""

    arm: str
    intercept: float
    slope: float
    x: list[float]
    fit: list[float]
    low: list[float]
    high: list[float]
    n: int


@dataclass(frozen=True)
class PageData:
    """Everything the page shows (see the module docstring)."""

    request: ReportRequest
    compare: str
    baseline: str
    arms: list[str]
    overview: Overview
    settings: View
    by: View | None
    pairs: list[View]
    regress: list[View]
    regress_points: dict[str, pl.DataFrame]
    regress_lines: dict[str, list[Line]]
    bias: View
    exposure: View
    curves: View
    drilldown: pl.DataFrame


def _view(key: str, title: str, make: Callable[[], Report], **kw: object) -> View:
    try:
        return View(key, title, make(), **kw)  # type: ignore[arg-type]
    except UsageError as exc:
        return View(key, title, None, str(exc), **kw)  # type: ignore[arg-type]


def _ordered(values: list[str]) -> list[str]:
    return sorted(set(values), key=lambda s: (SETTING_ORDER.index(s)
                                              if s in SETTING_ORDER else 9, s))


def build_page_data(conn: Connection, req: ReportRequest) -> PageData:
    """Compute every view of the page for ``req`` (its filters, ``--compare`` — default the
    whole arm — ``--baseline``, ``--metric`` and ``--test``).

    Raises:
        UsageError: what ``xlrun report --by setting --compare …`` raises for ``req`` (no
            runs, unknown experiment, bad ``--where``/``--baseline``): without it there is no
            page.
    """
    compare = req.compare or WHOLE_ARM
    base_req = dataclasses.replace(req, compare=compare, regress=False, bias=False)
    settings_rep = build_report(conn, dataclasses.replace(base_req, by="setting"))
    meta = settings_rep.meta
    baseline = str(meta.get("baseline") or "")
    arms = list(meta.get("arms") or [])
    settings = View("settings", "arms × settings", settings_rep)
    frame = settings_rep.frame
    scopes = [Scope()]
    if "dataset" in frame.columns:
        cols = ["dataset", "split"] if "split" in frame.columns else ["dataset"]
        scopes = [Scope(r[0], r[1] if len(r) > 1 else None)
                  for r in frame.select(cols).unique().sort(cols).iter_rows()]
    by = None
    if req.by not in ("setting", "language-pair"):
        by = _view(f"by_{req.by}", f"by {req.by}", lambda: build_report(conn, base_req))

    def scoped(r: ReportRequest, scope: Scope, setting: str | None = None) -> ReportRequest:
        filt = r.filter
        if scope.dataset is not None:
            filt = dataclasses.replace(filt, dataset=scope.dataset,
                                       split=scope.split or filt.split)
        if setting is not None:
            filt = dataclasses.replace(filt, setting=setting)
        return dataclasses.replace(r, filter=filt)

    pairs: list[View] = []
    regress: list[View] = []
    points: dict[str, pl.DataFrame] = {}
    lines: dict[str, list[Line]] = {}
    pair_req = dataclasses.replace(base_req, by="language-pair")
    for scope in scopes:
        part = frame if scope.dataset is None else frame.filter(
            pl.col("dataset") == scope.dataset)
        scope_settings = _ordered(part["setting"].to_list())
        for s in scope_settings:
            pairs.append(_view(f"pairs_{s}", f"language pairs, {s}",
                               lambda s=s, scope=scope: build_report(
                                   conn, scoped(pair_req, scope, s)),
                               scope=scope, setting=s))
        reg_setting = req.filter.setting or ("cross" if "cross" in scope_settings else None)
        view = _view("regress", "distance regression",
                     lambda scope=scope, s=reg_setting: build_report(
                         conn, dataclasses.replace(scoped(pair_req, scope, s), regress=True)),
                     scope=scope, setting=reg_setting)
        regress.append(view)
        cross = next((v.report for v in pairs if v.scope == scope and v.setting == reg_setting
                      and v.report is not None and v.report.kind == "compare"), None)
        if view.report is not None and len(arms) > 1:
            pts = _regress_points(conn, scoped(pair_req, scope, reg_setting), view.report,
                                  cross)
            points[scope.label] = pts
            lines[scope.label] = [_line(pts.filter(pl.col("arm") == arm), arm)
                                  for arm in dict.fromkeys(pts["arm"].to_list())]
    bias_req = dataclasses.replace(base_req, by="query-language", bias=True)
    bias = _view("bias", "language bias", lambda: build_report(conn, bias_req))
    exposure = _view("exposure", "training exposure",
                     lambda: _exposure(conn, base_req, baseline if compare == WHOLE_ARM
                                       else None))
    curves = _view("curves", "training curves", lambda: build_curves(conn, base_req))
    drill = drilldown(conn, base_req, baseline) if len(arms) > 1 else _empty_drilldown()
    return PageData(request=req, compare=compare, baseline=baseline, arms=arms,
                    overview=load_overview(conn, req.filter, compare), settings=settings,
                    by=by, pairs=pairs, regress=regress, regress_points=points,
                    regress_lines=lines, bias=bias, exposure=exposure, curves=curves,
                    drilldown=drill)


def _exposure(conn: Connection, req: ReportRequest, baseline: str | None) -> Report:
    """The exposure report with differences to ``baseline`` where it trained (an untrained
    baseline has no batches: then without differences)."""
    if baseline:
        try:
            return build_exposure(conn, dataclasses.replace(req, baseline=baseline))
        except UsageError:
            pass
    return build_exposure(conn, dataclasses.replace(req, baseline=None))


def _regress_points(conn: Connection, req: ReportRequest, reg: Report,
                    pairs: Report | None) -> pl.DataFrame:
    """The pair deltas the regression ``reg`` is fitted on (its stage 1,
    :func:`~xlrun.report.regression.pair_data`: per language pair, the arm's mean over its
    runs minus the baseline's) with their distance: ``arm, query_lang, doc_lang, distance,
    delta, mark`` (``mark``: the pair's significance mark in the compare report ``pairs``)."""
    value = metric_column(req.metric)
    df = load_report_frame(conn, req.filter, [value], req.compare)
    run_ids = df["run_id"].unique().sort().to_list()
    dist = load_distances(conn, run_ids, reg.meta.get("distance_source"))
    stage1 = regression.pair_data(df, value, dist.frame, load_clusters(conn, run_ids,
                                                                       borrow=True))
    arms = list(dict.fromkeys(stage1.arm_of_run))
    base = str(reg.meta.get("baseline"))
    mean = {a: stage1.means[[i for i, x in enumerate(stage1.arm_of_run) if x == a]]
            .mean(axis=0) for a in arms}
    rows = [(a, q, d, float(stage1.distance[k]), float(mean[a][k] - mean[base][k]))
            for a in sorted(arms) if a != base
            for k, (q, d) in enumerate(stage1.pairs)]
    out = pl.DataFrame(rows, schema={"arm": pl.String, "query_lang": pl.String,
                                     "doc_lang": pl.String, "distance": pl.Float64,
                                     "delta": pl.Float64}, orient="row")
    marks = (pairs.frame.select("arm", "query_lang", "doc_lang", "mark")
             if pairs is not None and "mark" in pairs.frame.columns else
             pl.DataFrame(schema={"arm": pl.String, "query_lang": pl.String,
                                  "doc_lang": pl.String, "mark": pl.String}))
    return (out.join(marks, on=["arm", "query_lang", "doc_lang"], how="left")
            .sort("arm", "distance", "query_lang", "doc_lang"))


def _line(points: pl.DataFrame, arm: str, level: float = 0.95, grid: int = 25) -> Line:
    """Least squares of ``delta`` on ``distance`` with its pointwise ``level`` interval
    (language pairs as units)."""
    x = points["distance"].to_numpy().astype(np.float64)
    y = points["delta"].to_numpy().astype(np.float64)
    n = x.size
    if n < 2 or np.ptp(x) == 0:
        mean = float(y.mean()) if n else float("nan")
        return Line(arm, mean, float("nan"), [], [], [], [], n)
    X = np.column_stack([np.ones(n), x])
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    xs = np.linspace(float(x.min()), float(x.max()), grid)
    G = np.column_stack([np.ones(grid), xs])
    fit = G @ beta
    if n > 2:
        resid = y - X @ beta
        s2 = float(resid @ resid) / (n - 2)
        cov = s2 * np.linalg.inv(X.T @ X)
        half = stats.t.ppf(0.5 + level / 2, n - 2) * np.sqrt(
            np.einsum("ij,jk,ik->i", G, cov, G))
    else:
        half = np.full(grid, np.nan)
    return Line(arm, float(beta[0]), float(beta[1]), xs.tolist(), fit.tolist(),
                (fit - half).tolist(), (fit + half).tolist(), n)


DRILL_SCHEMA = {"dataset": pl.String, "split": pl.String, "setting": pl.String,
                "arm": pl.String, "query_lang": pl.String, "doc_lang": pl.String,
                "query_id": pl.String, "baseline": pl.Float64, "value": pl.Float64,
                "delta": pl.Float64, "runs": pl.Int64, "baseline_runs": pl.Int64}
"""Columns of the drill-down rows."""


def _empty_drilldown() -> pl.DataFrame:
    return pl.DataFrame(schema=DRILL_SCHEMA)


def drilldown(conn: Connection, req: ReportRequest, baseline: str,
              per_pair: int = DRILL_PER_PAIR,
              per_setting: int = DRILL_PER_SETTING) -> pl.DataFrame:
    """The questions whose score (``req.metric``) changed most between each arm and the
    baseline: per dataset, split, setting, arm and (query, document language) pair, the
    ``per_pair`` largest absolute changes, plus the ``per_setting`` largest over all pairs of
    the setting. A question's score in an arm is its mean over the arm's runs; only questions
    both the arm and the baseline have count (:data:`DRILL_SCHEMA`)."""
    value = metric_column(req.metric)
    df = load_report_frame(conn, req.filter, [value], req.compare)
    key = ["dataset", "split", "setting", "query_lang", "doc_lang", "query_id"]
    per = (df.filter(pl.col(value).is_not_null() & pl.col(value).is_not_nan())
           .group_by([*key, "arm"])
           .agg(pl.col(value).mean().alias("value"),
                pl.col("run_id").n_unique().cast(pl.Int64).alias("runs")))
    base = per.filter(pl.col("arm") == baseline).select(
        *key, pl.col("value").alias("baseline"), pl.col("runs").alias("baseline_runs"))
    both = (per.filter(pl.col("arm") != baseline).join(base, on=key, how="inner")
            .with_columns((pl.col("value") - pl.col("baseline")).alias("delta"))
            .with_columns(pl.col("delta").abs().alias("__abs")))
    if both.height == 0:
        return _empty_drilldown()
    order = [pl.col("__abs"), pl.col("query_id")]
    top_pair = (both.sort(order, descending=[True, False])
                .group_by(["dataset", "split", "setting", "arm", "query_lang", "doc_lang"],
                          maintain_order=True).head(per_pair))
    top_setting = (both.sort(order, descending=[True, False])
                   .group_by(["dataset", "split", "setting", "arm"], maintain_order=True)
                   .head(per_setting))
    return (pl.concat([top_pair.select(list(DRILL_SCHEMA)),
                       top_setting.select(list(DRILL_SCHEMA))])
            .unique(maintain_order=True)
            .sort("dataset", "split", "setting", "arm", "query_lang", "doc_lang", "query_id"))
