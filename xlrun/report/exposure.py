"""``xlrun report --exposure``: what each arm trained on, from ``batch_languages``.

Two views, per arm (``sampler/language_sampling[clustering]``, averaged over its runs):

* ``languages`` — each language's share of the run's query texts and of its passage texts
  (monolingual and cross-lingual batches together), and the share of the language's texts that
  came from monolingual batches; with a baseline arm, the differences to it. Under
  exposure-matched clustering the shares equal the random arm's (up to sampling noise, or to
  rounding with ``sampling.schedule = "exact"``); the monolingual share is what clustering
  changes.
* ``pairs`` — the most frequent (query language, passage language) cells per batch kind: their
  share of that kind's pairs, pairs per run, the size of their id pool (from
  ``sampling_plan``) and **epochs** = pairs per run / pool (how many times the average parallel
  id of the cell was seen), with the planned probability.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import polars as pl
from sqlalchemy import Connection, Engine, func, select

from xlrun.db.models import BatchLanguages, SamplingPlan
from xlrun.errors import UsageError
from xlrun.report import plots
from xlrun.report.build import Report, ReportRequest
from xlrun.report.frames import ReportFilter, describe_where, load_runs

VIEWS: tuple[str, ...] = ("languages", "pairs")


def _batch_counts(conn: Connection, run_ids: Sequence[int]) -> pl.DataFrame:
    t = BatchLanguages.__table__
    stmt = (select(t.c.run_id, t.c.batch_kind, t.c.query_lang, t.c.doc_lang,
                   func.sum(t.c.pairs).label("pairs"))
            .where(t.c.run_id.in_(list(run_ids)))
            .group_by(t.c.run_id, t.c.batch_kind, t.c.query_lang, t.c.doc_lang))
    schema = {"run_id": pl.Int64, "batch_kind": pl.String, "query_lang": pl.String,
              "doc_lang": pl.String, "pairs": pl.Int64}
    return pl.DataFrame([tuple(r) for r in conn.execute(stmt)], schema=schema, orient="row")


def _plans(conn: Connection, run_ids: Sequence[int]) -> pl.DataFrame:
    t = SamplingPlan.__table__
    stmt = select(t.c.run_id, t.c.batch_kind, t.c.query_lang, t.c.doc_lang, t.c.probability,
                  t.c.pool).where(t.c.run_id.in_(list(run_ids)))
    schema = {"run_id": pl.Int64, "batch_kind": pl.String, "query_lang": pl.String,
              "doc_lang": pl.String, "probability": pl.Float64, "pool": pl.Int64}
    return pl.DataFrame([tuple(r) for r in conn.execute(stmt)], schema=schema, orient="row")


def language_shares(counts: pl.DataFrame) -> pl.DataFrame:
    """Per run and language: ``query_share``, ``passage_share`` and ``mono_share`` (the share
    of the language's query and passage texts that were in monolingual pairs)."""
    totals = counts.group_by("run_id").agg(pl.col("pairs").sum().alias("total"))
    mono = pl.col("query_lang") == pl.col("doc_lang")
    q = counts.group_by("run_id", pl.col("query_lang").alias("lang")).agg(
        pl.col("pairs").sum().alias("q"), pl.col("pairs").filter(mono).sum().alias("m"))
    d = counts.group_by("run_id", pl.col("doc_lang").alias("lang")).agg(
        pl.col("pairs").sum().alias("d"))
    both = (q.join(d, on=["run_id", "lang"], how="full", coalesce=True)
            .fill_null(0).join(totals, on="run_id"))
    return both.select(
        "run_id", "lang",
        (pl.col("q") / pl.col("total")).alias("query_share"),
        (pl.col("d") / pl.col("total")).alias("passage_share"),
        (2 * pl.col("m") / (pl.col("q") + pl.col("d"))).alias("mono_share"))


def build_exposure(conn: Connection | Engine, req: ReportRequest, view: str = "languages",
                   top: int = 10) -> Report:
    """The exposure report (``view``: ``languages`` or ``pairs``; ``top`` pairs per arm and
    batch kind, 0 = all).

    Raises:
        UsageError: unknown view, no trained runs with recorded batches in the selection, or a
            baseline that is not one of the arms.
    """
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return build_exposure(c, req, view, top)
    if view not in VIEWS:
        raise UsageError(f"unknown exposure view {view!r}; allowed: {', '.join(VIEWS)}")
    filt: ReportFilter = req.filter
    runs = load_runs(conn, filt, "arm")
    counts = _batch_counts(conn, runs["run_id"].to_list()) if runs.height else None
    if counts is None or counts.height == 0:
        raise UsageError("no recorded training batches (batch_languages) for the selected "
                         "runs: exposure exists only for trained runs")
    runs = runs.filter(pl.col("run_id").is_in(counts["run_id"].unique().to_list()))
    arm_of = runs.select("run_id", "arm")
    n_runs = arm_of.group_by("arm").agg(pl.len().alias("runs"))
    arms = sorted(arm_of["arm"].unique().to_list())
    if req.baseline is not None and req.baseline not in arms:
        raise UsageError(f"--baseline {req.baseline!r} is not an arm with recorded batches; "
                         f"arms: {', '.join(arms)}")
    scope = _scope(filt)
    meta = {"view": view, "experiment": filt.experiment, "arms": arms}
    if view == "languages":
        per_run = language_shares(counts).join(arm_of, on="run_id")
        frame = (per_run.group_by("arm", "lang")
                 .agg(pl.col("query_share").mean(), pl.col("passage_share").mean(),
                      pl.col("mono_share").mean())
                 .join(n_runs, on="arm").sort("arm", "lang")
                 .select("arm", "runs", "lang", "query_share", "passage_share", "mono_share"))
        title = ("training exposure by language: share of query texts, of passage texts, and "
                 "of the language's texts in monolingual pairs (mean over runs)" + scope)
        if req.baseline is not None:
            base = frame.filter(pl.col("arm") == req.baseline).select(
                "lang", pl.col("query_share").alias("bq"), pl.col("passage_share").alias("bp"))
            frame = (frame.join(base, on="lang", how="left")
                     .with_columns((pl.col("query_share") - pl.col("bq")).alias("query_vs_base"),
                                   (pl.col("passage_share") - pl.col("bp"))
                                   .alias("passage_vs_base"))
                     .drop("bq", "bp"))
            title += f"; differences to {req.baseline}"
            meta["baseline"] = req.baseline
        return Report("exposure", frame, title, meta, req)
    plans = _plans(conn, runs["run_id"].to_list())
    kind_totals = counts.group_by("run_id", "batch_kind").agg(pl.col("pairs").sum().alias("kt"))
    per_run = (counts.join(kind_totals, on=["run_id", "batch_kind"])
               .with_columns((pl.col("pairs") / pl.col("kt")).alias("share"))
               .join(plans, on=["run_id", "batch_kind", "query_lang", "doc_lang"], how="left")
               .join(arm_of, on="run_id"))
    keys = ["arm", "batch_kind", "query_lang", "doc_lang"]
    frame = (per_run.group_by(keys)
             .agg(pl.col("share").sum(), pl.col("pairs").sum(), pl.len().alias("n"),
                  pl.col("pool").mean(), pl.col("probability").mean().alias("planned"))
             .join(n_runs, on="arm")
             # cells absent from a run count as 0 there: average over all the arm's runs
             .with_columns((pl.col("share") / pl.col("runs")).alias("share"),
                           (pl.col("pairs") / pl.col("runs")).alias("pairs_per_run"))
             .with_columns((pl.col("pairs_per_run") / pl.col("pool")).alias("epochs"))
             # ties broken by the pair, so that equal shares list (and top N picks) the same
             .sort(["arm", "batch_kind", "share", "query_lang", "doc_lang"],
                   descending=[False, False, True, False, False]))
    if top > 0:
        frame = frame.group_by("arm", "batch_kind", maintain_order=True).head(top)
    frame = frame.select("arm", "runs", "batch_kind", "query_lang", "doc_lang", "share",
                         "planned", "pairs_per_run", "pool", "epochs")
    title = ("training exposure by language pair: share of the batch kind's pairs (planned), "
             "pairs per run, id pool and epochs = pairs per run / pool"
             + (f"; top {top} per arm and kind" if top > 0 else "") + scope)
    return Report("exposure", frame, title, meta, req)


def _scope(filt: ReportFilter) -> str:
    scope = f" [experiment={filt.experiment}]" if filt.experiment else ""
    if filt.where:
        scope += f" [where {describe_where(filt.where)}]"
    return scope


def plot_exposure(report: Report, path: str | Path) -> Path:
    """Plot an exposure report: for ``languages``, grouped bars of each language's query
    share, passage share and monolingual share per arm (three panels of absolute shares; the
    differences to a baseline are in the table); for ``pairs``, one heatmap per arm of the
    cross-lingual cells' epochs."""
    frame = report.frame
    if report.meta.get("view") == "pairs":
        cross = frame.filter(pl.col("batch_kind") != "mono")
        arms = list(dict.fromkeys(cross["arm"].to_list()))
        panels = [(arm, cross.filter(pl.col("arm") == arm)) for arm in arms]
        return plots.heatmaps(panels, path, "epochs", title=report.title,
                              label="epochs (pairs per run / id pool)")
    title = ("training exposure by language, per arm (mean over runs): share of query texts, "
             "of passage texts, and of the language's texts in monolingual pairs"
             + _scope(report.request.filter))
    return plots.grouped_bar_panels(
        frame, path, "lang", [("query_share", "share of query texts (%)"),
                              ("passage_share", "share of passage texts (%)"),
                              ("mono_share", "in monolingual pairs (% of the language's)")],
        group="arm", scale=100.0, title=title)
