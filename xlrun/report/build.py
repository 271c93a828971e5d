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
    describe_where,
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
    """``language_distances.source`` for ``--regress`` (default: first sorted)."""
    tests: stats.InferenceConfig = field(default_factory=stats.InferenceConfig)


@dataclass(frozen=True)
class Report:
    """A computed report: ``frame`` to render, its ``kind`` (summary, compare, regress,
    bias), a one-line ``title``, JSON-ready ``meta`` and ``notes`` (what the report did that
    the reader should know: borrowed distances, pooled arms, dropped terms; the CLI prints them
    to stderr and JSON carries them in ``meta.notes``)."""

    kind: str
    frame: pl.DataFrame
    title: str
    meta: dict[str, Any]
    request: ReportRequest
    notes: tuple[str, ...] = ()


RUN_CELLS: tuple[str, ...] = ("run_id", "sampler")
"""Cell columns that are a property of a run: an arm is present in few of their cells."""

_POOL_COLUMNS: tuple[str, ...] = ("sampler", "language_sampling", "clustering", "model")


def _ids(values: Any, limit: int = 8) -> str:
    values = sorted(values)
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", … ({len(values)} in all)" if len(values) > limit else "")


def _filter_meta(filt: ReportFilter) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in (("experiment", filt.experiment),
                                             ("dataset", filt.dataset),
                                             ("setting", filt.setting),
                                             ("split", filt.split)) if v is not None}
    if filt.where:
        out["where"] = [str(c) for c in filt.where]
    return out


def _scope(filt: ReportFilter) -> str:
    parts = [f"{k}={v}" for k, v in _filter_meta(filt).items() if k != "where"]
    if filt.where:
        parts.append(f"where {describe_where(filt.where)}")
    return f" [{', '.join(parts)}]" if parts else ""


def pooling_notes(df: pl.DataFrame, compare: str) -> list[str]:
    """Notes for arms that pool runs differing in another arm column (the confounding that
    ``--compare arm`` and ``--where`` remove)."""
    cols = [c for c in _POOL_COLUMNS if c != compare and c in df.columns]
    if compare == "arm":
        cols = [c for c in cols if c == "model"]
    runs = df.select("run_id", "arm", *cols).unique()
    notes = []
    for arm, part in sorted(runs.partition_by("arm", as_dict=True).items()):
        mixed = []
        for c in cols:
            vals = {"null" if v is None else str(v) for v in part[c].to_list()}
            if len(vals) > 1:
                mixed.append(f"{c} ({', '.join(sorted(vals))})")
        if mixed:
            first = mixed[0].split(" ")[0]
            notes.append(f"arm {arm[0]!r} pools runs that differ in {'; '.join(mixed)}: "
                         f"compare whole arms with --compare arm, or keep one with "
                         f"--where {first}=VALUE")
    return notes


def _absent_baseline_notes(frame: pl.DataFrame, cells: list[str], base: str) -> list[str]:
    have = frame.filter(pl.col("arm") == base, pl.col("n_queries").is_not_null())
    missing = frame.select(cells).unique().join(have.select(cells), on=cells, how="anti")
    if missing.height == 0:
        return []
    labels = ["/".join(str(v) for v in row) for row in missing.sort(cells).iter_rows()]
    return [f"baseline {base!r} has no results in {len(labels)} cell(s) ({_ids(labels, 6)}): "
            "no deltas or tests there"]


def dataset_cells(df: pl.DataFrame) -> list[str]:
    """``["dataset"]`` (and ``"split"``) when ``df`` holds several (dataset, split) pairs:
    their questions differ, so they are reported as separate cells, never pooled."""
    pairs = df.select("dataset", "split").unique()
    if pairs.height <= 1:
        return []
    return ["dataset", "split"] if df["split"].n_unique() > 1 else ["dataset"]


def _runs_per_arm(frame: pl.DataFrame, arms: list[str]) -> dict[str, int]:
    """The most runs an arm has in any cell."""
    out = {}
    for arm in arms:
        n = frame.filter(pl.col("arm") == arm)["n_runs"].max()
        out[arm] = int(n) if n is not None else 0  # type: ignore[arg-type]
    return out


def _seed_notes(frame: pl.DataFrame, arms: list[str],
                tests: stats.InferenceConfig) -> tuple[list[str], bool]:
    """Notes on arms with too few runs for the seed-level test, and whether any mark falls
    back to a query-level p (an arm with 1 run)."""
    notes = []
    fallback = False
    query_p = "paired t" if tests.holm_on == "t" else "sign-flip"
    for arm, n in _runs_per_arm(frame, arms).items():
        if n == 1:
            fallback = tests.test == "seed"
            notes.append(f"arm {arm!r} has 1 run: seed variance unknown; query-level p-values "
                         f"shown, which overstate certainty ({query_p} p used for Holm and "
                         "marks)")
        elif n == 2:
            notes.append(f"arm {arm!r} has only 2 runs: the seed-level test has very little "
                         "power and the seed SD is a rough guess; run 3 or more seeds")
    return notes, fallback


def build_report(conn: Connection | Engine, req: ReportRequest) -> Report:
    """Compute the report ``req`` describes from the results database.

    Raises:
        UsageError: bad ``by``/metric/baseline/compare/where, unknown experiment, no data.
    """
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return build_report(c, req)
    value = metric_column(req.metric)
    if req.regress and req.bias:
        raise UsageError("--regress and --bias are different views; choose one")
    if req.baseline is not None and req.compare is None:
        raise UsageError("--baseline names an arm of --compare; add --compare arm (or another "
                         "key such as language_sampling or train.lr)")
    columns = list(BIAS_COLUMNS) if req.bias else [value]
    df = load_report_frame(conn, req.filter, columns, req.compare)
    meta: dict[str, Any] = {"by": req.by, "metric": req.metric, "compare": req.compare,
                            **_filter_meta(req.filter)}
    scope = _scope(req.filter)
    notes: list[str] = pooling_notes(df, req.compare) if req.compare else []
    extra = dataset_cells(df)
    cells = [*extra, *stats.cell_columns(req.by)]
    if extra and req.regress:
        cells = list(stats.cell_columns(req.by))
        notes.append(f"{df.select('dataset', 'split').unique().height} datasets/splits in one "
                     "regression (each question is its own cluster); choose one with "
                     "--dataset / --split")
    elif extra:
        sources = sorted(df.select("dataset", "split").unique().iter_rows())
        listed = ", ".join(f"{ds}/{sp}" for ds, sp in sources)
        notes.append(f"{len(sources)} datasets/splits ({listed}): reported separately "
                      f"(cells include {' and '.join(extra)}); choose one with --dataset / "
                      "--split")
        meta["cells"] = cells
        scope += f" (per {' and '.join(extra)})"

    def done(kind: str, frame: pl.DataFrame, title: str) -> Report:
        if notes:
            meta["notes"] = list(notes)
        return Report(kind, frame, title, meta, req, tuple(notes))

    if req.bias:
        frame = stats.bias_table(df, cells)
        if req.compare is not None:  # baseline first, then the other arms sorted
            arms = stats.arm_order(df["arm"].unique().to_list(), req.baseline)
            meta.update({"baseline": arms[0], "arms": arms})
            rank = {a: i for i, a in enumerate(arms)}
            frame = (frame.with_columns(pl.col("arm").replace_strict(rank, return_dtype=pl.Int64)
                                        .alias("__rank"))
                     .sort([*cells, "__rank"], nulls_last=True).drop("__rank"))
        return done("bias", frame, f"language bias (multi setting) by {req.by}{scope}")
    if df[value].drop_nulls().len() == 0:
        raise UsageError(f"no values of {req.metric} in the selected results"
                         + (" (rank_distance exists only for the 'multi' setting)"
                            if value == "rank_distance" else ""))
    if req.regress:
        return _regress(conn, df, req, value, meta, notes, scope, done)
    if req.compare is None:
        frame = stats.summarize(df, cells, value)
        return done("summary", frame, f"{req.metric} by {req.by}{scope}")
    arms = stats.arm_order(df["arm"].unique().to_list(), req.baseline)
    meta.update({"baseline": arms[0], "arms": arms})
    if stats.cell_columns(req.by) == ("run_id",):
        notes.append("--by run: every run belongs to one arm, so a cell has nothing to pair; "
                     "showing each run's mean and arm (use another --by for paired tests)")
        frame = stats.summarize(df, cells, value)
        return done("summary", frame, f"{req.metric} by run, with its {req.compare}{scope}")
    frame = stats.compare_arms(df, cells, value, arms[0], req.tests,
                               drop_absent=stats.cell_columns(req.by)[0] in RUN_CELLS)
    notes.extend(_absent_baseline_notes(frame, cells, arms[0]))
    seed_notes, fallback = _seed_notes(frame, arms, req.tests)
    notes.extend(seed_notes)
    meta.update({"test": req.tests.test, "holm_on": req.tests.holm_on,
                 "n_permutations": req.tests.n_permutations,
                 "n_bootstrap": req.tests.n_bootstrap, "seed": req.tests.seed,
                 "runs_per_arm": _runs_per_arm(frame, arms)})
    over = "cells" if len(arms) == 2 else "cells × arms"
    query_p = "paired t" if req.tests.holm_on == "t" else "sign-flip"
    if req.tests.test == "seed":
        holm_of = "seed-level p" + (f" (query-level {query_p} p where an arm has 1 run, which "
                                    "overstates certainty)" if fallback else "")
    else:
        holm_of = f"query-level {query_p} p (ignores seed variance)"
    level = round(100 * req.tests.level)
    title = (f"{req.metric} by {req.by}, {req.compare} vs baseline {arms[0]}: mean, seed SD, "
             f"delta [{level}% bootstrap CI over seeds and questions], seed-level p, "
             f"query-level paired t / sign-flip p, Holm over {over} of the {holm_of}{scope}")
    return done("compare", frame, title)


def _regress(conn: Connection, df: pl.DataFrame, req: ReportRequest, value: str,
             meta: dict[str, Any], notes: list[str], scope: str, done: Any) -> Report:
    """The ``--regress`` view (see :func:`build_report`), explaining in ``notes`` where the
    distances and clusters come from and what was left out."""
    run_ids = df["run_id"].unique().sort().to_list()
    dist = load_distances(conn, run_ids, req.distance_source)
    if dist.source is None:
        raise UsageError(
            "--regress needs language distances, but no run of "
            f"experiment(s) {', '.join(sorted(df['experiment'].unique().to_list()))} stored "
            "any (language_distances is written by runs whose sampler clusters languages, "
            "e.g. sampling.language_sampling = 'clustered'); add such an arm, or compare "
            "without --regress")
    if dist.borrowed:
        notes.append(f"distances ({dist.source}) come from run(s) {_ids(dist.from_runs)} of the "
                     "same experiment: the analysed runs stored none (a distance depends only "
                     "on the two languages)")
    elif set(dist.from_runs) != set(run_ids):
        notes.append(f"distances ({dist.source}) are stored by run(s) {_ids(dist.from_runs)} "
                     "and used for the language pairs of every analysed run")
    others = [s for s in dist.sources if s != dist.source]
    if others:
        notes.append(f"other distance sources stored: {', '.join(others)} "
                     "(choose with --distance-source)")
    clusters = load_clusters(conn, run_ids, borrow=True)
    cluster_notes = []
    if clusters.height == 0:
        notes.append("no language clusters stored: the same_cluster term is left out")
    else:
        with_clusters = set(clusters["run_id"].unique().to_list())
        without = [r for r in run_ids if r not in with_clusters]
        if without:
            ref = min(with_clusters)
            cluster_notes.append(f"same_cluster: run(s) {_ids(without)} have no clustering; "
                                 f"they use run {ref}'s clusters (1 = a pair the clustered "
                                 "sampler co-batches)")
    n_multi = df.filter(pl.col("doc_lang") == "all").height
    if n_multi:
        notes.append("the multi setting (document language 'all') has no distance: its rows "
                     "are left out (use --setting cross to say so explicitly)")
    pairs = df.filter(pl.col("doc_lang") != "all").select("query_lang", "doc_lang").unique()
    uncovered = pairs.join(dist.frame, on=["query_lang", "doc_lang"], how="anti")
    if uncovered.height:
        labels = [f"{q}→{d}" for q, d in uncovered.sort("query_lang", "doc_lang").iter_rows()]
        notes.append(f"no {dist.source} distance for {len(labels)} language pair(s) "
                     f"({_ids(labels, 6)}): left out")
    baseline = req.baseline if "arm" in df.columns else None
    result = stats.fit_regression(df, value, dist.frame, clusters, baseline=baseline)
    if "same_cluster" not in result.dropped:
        notes.extend(cluster_notes)
    main = [t for t in result.dropped if not t.startswith(("query_lang[", "doc_lang["))]
    if main:
        notes.append(f"left out of the model as constant or collinear with earlier terms: "
                     f"{', '.join(main)}" + (" (it adds nothing to distance and the language "
                                             "effects)" if main == ["same_cluster"] else ""))
    arms = result.arms
    meta.update({"distance_source": dist.source, "baseline": arms[0],
                 "distances_from_runs": list(dist.from_runs),
                 "distances_borrowed": dist.borrowed, "dropped_terms": result.dropped,
                 "n_rows": result.n_rows, "n_queries": result.n_queries})
    what = "arm × distance" if len(arms) > 1 else "distance"
    if "same_cluster" not in result.dropped and clusters.height:
        what += " + same_cluster"
    title = (f"{req.metric} ~ {what} ({dist.source} distance) + language fixed effects "
             f"({result.n_rows} seed-averaged rows, {result.n_queries} queries)"
             + (f"; baseline arm {arms[0]}" if len(arms) > 1 else "") + scope)
    return done("regress", result.table, title)


def plot_report(report: Report, path: str | Path) -> Path:
    """Plot ``report``: for language pairs a heatmap (when comparing arms, one panel per arm
    with its delta to the baseline and Holm significance marks), for ``--regress`` the OLS
    coefficients with their intervals, otherwise bars per cell (grouped by arm)."""
    from xlrun.report import plots

    frame, req = report.frame, report.request
    if "cells" in report.meta and report.kind != "regress":
        raise UsageError("--plot: the report holds several datasets/splits "
                         f"({', '.join(report.meta['cells'][:-1])} are cells); plot one with "
                         "--dataset (and --split)")
    if report.kind == "regress":
        ols = frame.filter(pl.col("model") == "ols_cluster", pl.col("term") != "intercept")
        return plots.coefficient_plot(ols, path, title=report.title)
    if report.kind == "bias":
        cat = stats.cell_columns(req.by)[0]
        return plots.bar_chart(frame, path, cat, "rank_distance",
                               group="arm" if "arm" in frame.columns else None,
                               title=report.title,
                               ylabel="mean rank distance (multi setting)")
    if req.by == "language-pair":
        if report.kind == "compare":
            arms = report.meta["arms"]
            panels = [(f"{arm} − {arms[0]}", frame.filter(pl.col("arm") == arm))
                      for arm in arms[1:]]
            title = (f"{req.metric}: difference to baseline {arms[0]} per language pair "
                     f"(mean over seeds and queries){_scope(req.filter)}")
            return plots.heatmaps(panels, path, "delta", marks="mark", diverging=True,
                                  title=title, label=f"Δ {req.metric} vs {arms[0]}")
        if "arm" in frame.columns:
            arms = list(dict.fromkeys(frame["arm"].to_list()))
            panels = [(arm, frame.filter(pl.col("arm") == arm)) for arm in arms]
            return plots.heatmaps(panels, path, "mean", title=report.title, label=req.metric)
        return plots.heatmap(frame, path, "mean", title=report.title, label=req.metric)
    category = stats.cell_columns(req.by)[0]
    group = "arm" if "arm" in frame.columns else None
    if report.kind != "compare":
        return plots.bar_chart(frame, path, category, "mean", group=group, title=report.title,
                               ylabel=f"mean {req.metric}")
    base = report.meta["arms"][0]
    title = (f"{req.metric} by {req.by} per {req.compare} (mean over seeds and queries)"
             f"{_scope(req.filter)}")
    footer = f"{plots.SIGNIFICANCE_LEGEND}: difference to baseline {base}"
    return plots.bar_chart(frame, path, category, "mean", group=group, title=title,
                           marks="mark", ylabel=f"mean {req.metric}", footer=footer)
