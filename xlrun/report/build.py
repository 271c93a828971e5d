"""A whole report: read the results, compute the requested view, describe it.

:func:`build_report` is what ``xlrun report`` runs; it returns the frame to render plus a
title and metadata, so the CLI only parses flags, renders and plots.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import Connection, Engine

from xlrun.errors import UsageError
from xlrun.report import bias, cells, compare, plots, pooling, regression, seen
from xlrun.report.frames import (
    BIAS_COLUMNS,
    ReportFilter,
    describe_where,
    load_clusters,
    load_distances,
    load_report_frame,
    load_run_configs,
    load_unfinished_runs,
    metric_column,
)
from xlrun.report.inference import InferenceConfig
from xlrun.report.statistics import TESTS


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
    tests: InferenceConfig = field(default_factory=InferenceConfig)
    terms: tuple[str, ...] = ()
    """Extra ``--regress`` terms (``--term``): ``distance_to_training``
    (:mod:`xlrun.report.seen`)."""

    def __post_init__(self) -> None:
        if self.terms and not self.regress:
            raise UsageError("--term adds a term to --regress; add --regress")


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


def _absent_baseline_notes(frame: pl.DataFrame, cell_cols: list[str], base: str) -> list[str]:
    have = frame.filter(pl.col("arm") == base, pl.col("n_queries").is_not_null())
    missing = frame.select(cell_cols).unique().join(have.select(cell_cols), on=cell_cols,
                                                    how="anti")
    if missing.height == 0:
        return []
    labels = [cells.cell_label(row) for row in missing.sort(cell_cols).iter_rows()]
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


def _seed_notes(frame: pl.DataFrame, arms: list[str]) -> list[str]:
    """Notes on arms with only 2 runs (1 run: see :mod:`xlrun.report.compare`'s notes)."""
    return [f"arm {arm!r} has only 2 runs: its seed variance rests on 1 degree of freedom, so "
            "it is compared unpaired (every run of both arms), intervals are wide and tests "
            "have little power (see docs/statistics.md); run 3 or more seeds, 5 for power"
            for arm, n in _runs_per_arm(frame, arms).items() if n == 2]


def unfinished_notes(unfinished: dict[str, list[int]]) -> list[str]:
    """A note on the selected runs that are not done (their results, if any, are left
    out)."""
    if not unfinished:
        return []
    parts = [f"{len(ids)} {status} ({'run' if len(ids) == 1 else 'runs'} {_ids(ids)})"
             if status != "queued" else f"{len(ids)} queued"
             for status, ids in sorted(unfinished.items())]
    n = sum(len(ids) for ids in unfinished.values())
    return [f"{n} run(s) that are not done are left out (only finished runs are reported; "
            f"results a failed or running run wrote are not used): {', '.join(parts)}"]


def build_report(conn: Connection | Engine, req: ReportRequest) -> Report:
    """Compute the report ``req`` describes from the results database.

    Raises:
        UsageError: bad ``by``/metric/baseline/compare/where, unknown experiment, no data.
    """
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return build_report(c, req)
    value = metric_column(req.metric)
    test = TESTS.get(req.tests.test, "--test")
    test.validate(req.tests, "--test")
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
    notes.extend(unfinished_notes(load_unfinished_runs(conn, req.filter)))
    annotate = None
    if req.by == "language" and not req.regress:  # each language marked seen or unseen
        df, annotate, language_notes = seen.by_language(conn, df, req.compare is not None)
        notes.extend(language_notes)
    extra = dataset_cells(df)
    cell_cols = [*extra, *cells.cell_columns(req.by)]
    if extra and req.regress:
        cell_cols = list(cells.cell_columns(req.by))
        notes.append(f"{df.select('dataset', 'split').unique().height} datasets/splits in one "
                     "regression (each question is its own cluster); choose one with "
                     "--dataset / --split")
    elif extra:
        sources = sorted(df.select("dataset", "split").unique().iter_rows())
        listed = ", ".join(f"{ds}/{sp}" for ds, sp in sources)
        notes.append(f"{len(sources)} datasets/splits ({listed}): reported separately "
                      f"(cells include {' and '.join(extra)}); choose one with --dataset / "
                      "--split")
        meta["cells"] = cell_cols
        scope += f" (per {' and '.join(extra)})"
    if req.compare is not None and req.baseline is None:  # a documented default, said out loud
        base, why = pooling.default_baseline(df["arm"].unique().to_list())
        req = dataclasses.replace(req, baseline=base)
        notes.append(why)
    notes.extend(pooling.pooled_notes(
        df.filter(pl.col("setting") == "multi") if req.bias else df, cell_cols, req.compare))

    def done(kind: str, frame: pl.DataFrame, title: str) -> Report:
        if annotate is not None:
            frame = annotate(frame)
        if notes:
            meta["notes"] = list(notes)
        return Report(kind, frame, title, meta, req, tuple(notes))

    if req.bias:
        return _bias(conn, df, req, cell_cols, meta, notes, scope, done)
    if df[value].drop_nulls().len() == 0:
        raise UsageError(f"no values of {req.metric} in the selected results"
                         + (" (rank_distance exists only for the 'multi' setting)"
                            if value == "rank_distance" else ""))
    if req.regress:
        return _regress(conn, df, req, value, meta, notes, scope, done)
    if req.compare is None:
        frame, summary_notes = cells.summary_table(df, cell_cols, value)
        notes.extend(summary_notes)
        return done("summary", frame, f"{req.metric} by {req.by}{scope}")
    arms = cells.arm_order(df["arm"].unique().to_list(), req.baseline)
    meta.update({"baseline": arms[0], "arms": arms})
    if cells.cell_columns(req.by) == ("run_id",):
        notes.append("--by run: every run belongs to one arm, so a cell has nothing to pair; "
                     "showing each run's mean and arm (use another --by for paired tests)")
        frame, summary_notes = cells.summary_table(df, cell_cols, value)
        notes.extend(summary_notes)
        return done("summary", frame, f"{req.metric} by run, with its {req.compare}{scope}")
    result = compare.compare_arms(df, cell_cols, value, arms[0], req.tests,
                                  drop_absent=cells.cell_columns(req.by)[0] in RUN_CELLS)
    frame = result.frame
    notes.extend(_absent_baseline_notes(frame, cell_cols, arms[0]))
    notes.extend(result.notes)
    notes.extend(_seed_notes(frame, arms))
    meta.update({"test": req.tests.test, "level": req.tests.level,
                 "runs_per_arm": _runs_per_arm(frame, arms), **test.meta(req.tests)})
    over = "cells" if len(arms) == 2 else "cells × arms"
    level = round(100 * req.tests.level)
    model = test.model(level, result.fallback_cells, "one run" in frame["design"].to_list())
    holm_of = test.holm_of("one run" in frame["design"].to_list())
    title = (f"{req.metric} by {req.by}, {req.compare} vs baseline {arms[0]}: mean, seed SD, "
             f"delta with {model}, Holm over {over} of the {holm_of}{scope}")
    return done("compare", frame, title)


def _bias(conn: Connection, df: pl.DataFrame, req: ReportRequest, cell_cols: list[str],
          meta: dict[str, Any], notes: list[str], scope: str, done: Any) -> Report:
    """The ``--bias`` view (see :func:`build_report`)."""
    pools, pool_notes = bias.pool_sizes(load_run_configs(conn, df["run_id"].unique().to_list()))
    table = bias.bias_table(df, cell_cols, pools, req.tests)
    notes.extend(pool_notes)
    notes.extend(table.notes)
    frame = table.frame
    if req.compare is not None:  # baseline first, then the other arms sorted
        arms = cells.arm_order(df["arm"].unique().to_list(), req.baseline)
        meta.update({"baseline": arms[0], "arms": arms})
        frame = cells.sort_by_arm(frame, cell_cols, arms)
    level = round(100 * req.tests.level)
    return done("bias", frame, f"language bias (multi setting) by {req.by}: mean rank distance "
                f"and same-language excess with {level}% intervals (seeds and questions "
                f"random), median rank distance, rank distance / pool size{scope}")


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
    frame, covariates = dist.frame, None
    if "distance_to_training" in req.terms:  # a language's distance to the trained languages
        training = seen.training_distance(conn, df, dist.source, dist.frame)
        notes.extend(training.notes)
        frame = training.distances
        known = list(training.values)
        df = df.filter(pl.col("query_lang").is_in(known)
                       & (pl.col("doc_lang").is_in(known) | (pl.col("doc_lang") == "all")))
        meta.update({"trained_languages": list(training.trained),
                     "distance_to_training": training.values})
        covariates = training.covariates
    n_multi = df.filter(pl.col("doc_lang") == "all").height
    if n_multi:
        notes.append("the multi setting (document language 'all') has no distance: its rows "
                     "are left out (use --setting cross to say so explicitly)")
    pairs = df.filter(pl.col("doc_lang") != "all").select("query_lang", "doc_lang").unique()
    uncovered = pairs.join(frame, on=["query_lang", "doc_lang"], how="anti")
    if uncovered.height:
        labels = [f"{q}→{d}" for q, d in uncovered.sort("query_lang", "doc_lang").iter_rows()]
        notes.append(f"no {dist.source} distance for {len(labels)} language pair(s) "
                     f"({_ids(labels, 6)}): left out")
    baseline = req.baseline if "arm" in df.columns else None
    data = regression.pair_data(df, value, frame, clusters)
    if covariates is not None:
        data = dataclasses.replace(data, covariates=covariates(data.pairs))
    result = regression.fit_pairs(data, baseline, req.tests.level)
    dropped = [name for name, _ in result.dropped]
    if "same_cluster" in result.terms:
        notes.extend(cluster_notes)
    fixed = [name for name, _ in result.dropped if "query_lang[" in name or "doc_lang[" in name]
    for name, why in result.dropped:
        if name not in fixed:
            notes.append(f"term {name} left out of the model: {why}"
                         + (f" (the query- and document-language effects of the "
                            f"{result.n_languages} languages already explain it on the "
                            f"{result.n_unordered_pairs} unordered pairs)"
                            if why.startswith("collinear") else ""))
    if fixed:
        notes.append(f"language effect(s) {', '.join(fixed)} left out of the model: constant or "
                     "collinear with the effects kept before them (e.g. the query and the "
                     "document language are the same in every pair)")
    notes.extend(result.notes)
    arms = result.arms
    meta.update({"distance_source": dist.source, "baseline": arms[0],
                 "distances_from_runs": list(dist.from_runs),
                 "distances_borrowed": dist.borrowed, "terms": result.terms,
                 "dropped_terms": dropped, "n_pairs": result.n_pairs,
                 "n_queries": result.n_questions, "n_runs": result.n_runs,
                 "df_between_pairs": result.df_between, "df_within_pairs": result.df_within,
                 "n_unordered_pairs": result.n_unordered_pairs,
                 "n_languages": result.n_languages, "df_strata": result.df_strata,
                 "df_units": "pair terms: unordered language pairs (x→y and y→x count once) "
                             "less the query- and document-language effects and the terms; "
                             "arm terms: seeds and questions",
                 "level": req.tests.level})
    level = round(100 * req.tests.level)
    formula = regression.describe_terms(result)
    covs = [t for t in result.terms if t.startswith("distance_to_training[")]
    if covs:  # language-level terms, each judged in a fit with that side's languages random
        formula += (" + arm × distance_to_training (" + ", ".join(
            "query side" if "[query]" in t else "document side" for t in covs)
            + "; random language effects of that side)")
    title = (f"{req.metric} ~ {formula} ({dist.source} distance); "
             f"two-stage: {result.n_pairs} language-pair means ({result.n_unordered_pairs} "
             f"unordered pairs of {result.n_languages} languages) × {len(arms)} arm(s) over "
             f"{result.n_questions} questions and {result.n_runs} runs; query- and "
             "document-language effects fixed, random unordered-pair and direction effects "
             f"({result.df_between} df between unordered pairs, {result.df_within} for arm × "
             f"pair), arm terms with seed and question variance; {level}% intervals and p "
             "from one t (Satterthwaite df)"
             + (f"; left out: {regression.dropped_summary(result.dropped)}" if dropped else "")
             + (f"; baseline arm {arms[0]}" if len(arms) > 1 else "") + scope)
    return done("regress", result.table, title)


def plot_report(report: Report, path: str | Path) -> Path:
    """Plot ``report``: for language pairs a heatmap (when comparing arms, one panel per arm
    with its delta to the baseline and Holm significance marks), for ``--regress`` the
    coefficients with their intervals, otherwise bars per cell (grouped by arm)."""
    frame, req = report.frame, report.request
    if "cells" in report.meta and report.kind != "regress":
        raise UsageError("--plot: the report holds several datasets/splits "
                         f"({', '.join(report.meta['cells'][:-1])} are cells); plot one with "
                         "--dataset (and --split)")
    if report.kind == "regress":
        terms = frame.filter(pl.col("term") != "intercept")
        level = round(100 * report.meta.get("level", 0.95))
        return plots.coefficient_plot(terms, path, title=report.title,
                                      xlabel=f"coefficient ({level}% interval: language pairs "
                                             "random, arm terms with seed variance)")
    if report.kind == "bias":
        cat = cells.cell_columns(req.by)[0]
        level = round(100 * req.tests.level)
        return plots.bar_chart(frame, path, cat, "rank_distance",
                               group="arm" if "arm" in frame.columns else None,
                               title=report.title, low="rd_ci_low", high="rd_ci_high",
                               ylabel=f"mean rank distance (multi setting), {level}% interval")
    if req.by == "language-pair":
        if report.kind == "compare":
            arms = report.meta["arms"]
            panels = [(f"{arm} − {arms[0]}", frame.filter(pl.col("arm") == arm))
                      for arm in arms[1:]]
            title = (f"{req.metric}: difference to baseline {arms[0]} per language pair "
                     f"(mean over seeds and queries){_scope(req.filter)}")
            return plots.heatmaps(panels, path, "delta", marks="mark", diverging=True,
                                  title=title, label=f"Δ {req.metric} vs {arms[0]}",
                                  legend=plots.significance_legend(req.tests.test,
                                                                   req.tests.level))
        if "arm" in frame.columns:
            arms = list(dict.fromkeys(frame["arm"].to_list()))
            panels = [(arm, frame.filter(pl.col("arm") == arm)) for arm in arms]
            return plots.heatmaps(panels, path, "mean", title=report.title, label=req.metric)
        return plots.heatmap(frame, path, "mean", title=report.title, label=req.metric)
    category = cells.cell_columns(req.by)[0]
    group = "arm" if "arm" in frame.columns else None
    if report.kind != "compare":
        return plots.bar_chart(frame, path, category, "mean", group=group, title=report.title,
                               ylabel=f"mean {req.metric}")
    base = report.meta["arms"][0]
    title = (f"{req.metric} by {req.by} per {req.compare} (mean over seeds and queries)"
             f"{_scope(req.filter)}")
    footer = (f"difference to baseline {base}: "
              f"{plots.significance_legend(req.tests.test, req.tests.level)}")
    return plots.bar_chart(frame, path, category, "mean", group=group, title=title,
                           marks="mark", ylabel=f"mean {req.metric}", footer=footer)
