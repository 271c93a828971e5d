"""``--bias``: language bias in the multilingual pool, per cell (and arm), with intervals.

Each quantity is averaged like a metric: a question's translations in a cell count once, an
arm's value is the mean over its runs, and the interval comes from the crossed seeds ×
questions model of :mod:`xlrun.report.inference` (questions are the units; an arm with one
run has no seed variance and gets no interval). Rank distance is heavy-tailed and grows with
the pool, so it is also shown as a median over questions and divided by the pool size (the
number of documents in the multilingual pool, read from the evaluation data the runs used).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from xlrun.errors import UsageError
from xlrun.evaluate.tasks import load_dataset
from xlrun.report.cells import cell_label, common_rows, label_columns, with_units
from xlrun.report.inference import InferenceConfig, mean_estimate
from xlrun.spec.schema import EvalSection

COLUMNS: tuple[str, ...] = (
    "n_queries", "n_runs", "rank_distance", "rd_ci_low", "rd_ci_high", "rd_median",
    "pool_size", "rd_norm", "same_lang_at_10", "same_lang_expected", "same_lang_excess",
    "excess_ci_low", "excess_ci_high")
"""Columns of :func:`bias_table` after the cells (and ``arm``)."""


@dataclass(frozen=True)
class BiasTable:
    """The table of :func:`bias_table` and its notes."""

    frame: pl.DataFrame
    notes: tuple[str, ...] = ()


def pool_sizes(configs: Mapping[int, str]) -> tuple[pl.DataFrame, list[str]]:
    """The size of each run's multilingual pool: ``run_id, dataset, split, pool_size``.

    ``configs`` maps run ids to their ``runs.config_json``. The pool is every document of
    the evaluated languages (what the evaluation searched in the ``multi`` setting); its size
    is counted by loading the evaluation data each ``[[eval]]`` section names (loaded once per
    distinct section). Data that cannot be loaded here (another machine's path, no network
    for a hub dataset) gives no size and a note."""
    known = {f.name for f in fields(EvalSection)}
    cache: dict[str, tuple[str, str, int] | str] = {}
    rows: list[tuple[int, str, str, int]] = []
    failed: dict[str, str] = {}
    for run_id, text in configs.items():
        try:
            sections = json.loads(text).get("eval", [])
        except (ValueError, AttributeError):
            continue
        for sec in sections:
            if not isinstance(sec, dict) or "multi" not in sec.get("settings", ["multi"]):
                continue
            key = json.dumps(sec, sort_keys=True)
            if key not in cache:
                try:
                    data = load_dataset(EvalSection(**{k: v for k, v in sec.items()
                                                       if k in known}))
                    cache[key] = (data.dataset, data.split,
                                  sum(len(docs) for docs in data.corpus.values()))
                except Exception as exc:  # noqa: BLE001 - any loader failure: size unknown
                    cache[key] = f"{type(exc).__name__}: {str(exc)[:120]}"
            got = cache[key]
            if isinstance(got, str):
                failed[f"{sec.get('dataset')}/{sec.get('split', 'test')}"] = got
            else:
                rows.append((run_id, *got))
    notes = [f"pool size of {name} unknown (its evaluation data could not be loaded here: "
             f"{why}): rd_norm left empty" for name, why in sorted(failed.items())]
    schema = {"run_id": pl.Int64, "dataset": pl.String, "split": pl.String,
              "pool_size": pl.Int64}
    return pl.DataFrame(rows, schema=schema, orient="row").unique(), notes


def bias_table(df: pl.DataFrame, cells: Sequence[str], pools: pl.DataFrame | None = None,
               config: InferenceConfig | None = None) -> BiasTable:
    """Language bias per cell (and arm, if ``df`` has one), with intervals.

    Columns: cells, [run labels], [``arm``], then :data:`COLUMNS`: ``n_queries``, ``n_runs``,
    ``rank_distance`` (mean) with ``rd_ci_low/rd_ci_high``, ``rd_median`` (median over
    questions of the run-averaged rank distance), ``pool_size`` and ``rd_norm`` (mean rank
    distance divided by the pool size: 0 = translations ranked together, 1 = as far apart as
    the pool allows), ``same_lang_at_10``, ``same_lang_expected``, ``same_lang_excess`` (mean
    of at_10 − expected) with ``excess_ci_low/excess_ci_high``. Only rows with bias columns
    (the ``multi`` setting) count. ``pools`` (``run_id, dataset, split, pool_size``, see
    :func:`pool_sizes`) gives the pool sizes. Every run of a cell is summarised on the
    (question, query language) rows all of them have (:func:`~xlrun.report.cells.common_rows`;
    a note says what was left out), so a run that lacks a language is not averaged over a
    different set of languages.

    Raises:
        UsageError: no row has bias columns.
    """
    cfg = config or InferenceConfig()
    keys = [*cells, *label_columns(df, cells), *(["arm"] if "arm" in df.columns else [])]
    d = with_units(df.filter(pl.col("rank_distance").is_not_null()
                             | pl.col("same_lang_at_10").is_not_null()))
    if d.height == 0:
        raise UsageError("no language-bias results (rank_distance, same_lang_at_10): "
                         "they exist only for the 'multi' setting")
    d, pooled = common_rows(d, list(cells))  # every run of a cell on the same query languages
    if pools is not None and pools.height:
        d = d.join(pools, on=["run_id", "dataset", "split"], how="left")
    else:
        d = d.with_columns(pl.lit(None, dtype=pl.Int64).alias("pool_size"))
    d = d.with_columns(
        (pl.col("same_lang_at_10") - pl.col("same_lang_expected")).alias("__excess"),
        (pl.col("rank_distance") / pl.col("pool_size")).alias("__norm"))
    per = (d.group_by(list(dict.fromkeys([*keys, "run_id", "unit"])))
           .agg(pl.col("rank_distance", "same_lang_at_10", "same_lang_expected", "__excess",
                       "__norm").mean(), pl.col("pool_size").max()))
    records: list[dict[str, object]] = []
    one_run: list[str] = []
    lost: list[str] = []
    for key, part in per.partition_by(keys, as_dict=True, maintain_order=True).items():
        rec: dict[str, object] = dict(zip(keys, key, strict=True))
        rec["n_queries"] = part["unit"].n_unique()
        rec["n_runs"] = part["run_id"].n_unique()
        rd = _matrix(part, "rank_distance")
        ex = _matrix(part, "__excess")
        norm = _matrix(part, "__norm")
        for name, (M, n_all) in (("rank_distance", rd), ("same_lang_excess", ex)):
            if M.shape[0] < n_all:
                lost.append(f"{cell_label(key)} ({name}: {M.shape[0]} of {n_all})")
        est_rd, est_ex = mean_estimate(rd[0], cfg.level), mean_estimate(ex[0], cfg.level)
        if rec["n_runs"] == 1:
            one_run.append(cell_label(key))
        rec.update(
            rank_distance=est_rd.estimate if rd[0].size else None,
            rd_ci_low=_ci(est_rd, "low"), rd_ci_high=_ci(est_rd, "high"),
            rd_median=float(np.median(rd[0].mean(axis=1))) if rd[0].size else None,
            pool_size=part["pool_size"].max(),
            rd_norm=float(norm[0].mean()) if norm[0].size else None,
            same_lang_at_10=_mean_of(part, "same_lang_at_10"),
            same_lang_expected=_mean_of(part, "same_lang_expected"),
            same_lang_excess=est_ex.estimate if ex[0].size else None,
            excess_ci_low=_ci(est_ex, "low"), excess_ci_high=_ci(est_ex, "high"))
        records.append(rec)
    schema = {k: d.schema[k] for k in keys}
    schema.update({"n_queries": pl.Int64, "n_runs": pl.Int64, "rank_distance": pl.Float64,
                   "rd_ci_low": pl.Float64, "rd_ci_high": pl.Float64,
                   "rd_median": pl.Float64, "pool_size": pl.Int64, "rd_norm": pl.Float64,
                   "same_lang_at_10": pl.Float64, "same_lang_expected": pl.Float64,
                   "same_lang_excess": pl.Float64, "excess_ci_low": pl.Float64,
                   "excess_ci_high": pl.Float64})
    frame = pl.DataFrame(records, schema=schema).sort(keys, nulls_last=True)
    notes = list(pooled)
    no_pool = frame.filter(pl.col("rank_distance").is_not_null() & pl.col("pool_size").is_null())
    if no_pool.height:
        notes.append(f"pool size unknown in {no_pool.height} row(s) (the runs' [[eval]] data "
                     "could not be read here): rd_norm left empty there")
    if one_run:
        notes.append(f"{len(one_run)} cell(s) hold a single run ({_ids(sorted(one_run))}): seed "
                     "variance unknown, so no interval there")
    if lost:
        notes.append(f"some runs lack some questions in {len(lost)} cell(s): means and "
                     f"intervals use the questions every run has ({_ids(sorted(lost))})")
    return BiasTable(frame, tuple(notes))


def _ids(labels: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f", … ({len(labels)} in all)" if len(labels) > limit else "")


def _matrix(part: pl.DataFrame, column: str) -> tuple[np.ndarray, int]:
    """Questions × runs of ``column`` over the questions every run has, and how many
    questions have it in any run."""
    sub = part.filter(pl.col(column).is_not_null() & pl.col(column).is_not_nan())
    if sub.height == 0:
        return np.empty((0, 0)), 0
    wide = sub.pivot(on="run_id", index="unit", values=column).drop("unit")
    M = wide.to_numpy().astype(np.float64)
    keep = ~np.isnan(M).any(axis=1)
    return M[keep], M.shape[0]


def _mean_of(part: pl.DataFrame, column: str) -> float | None:
    """Mean over questions of the run-averaged ``column``."""
    v = part.group_by("unit").agg(pl.col(column).mean())[column].drop_nulls()
    return float(v.mean()) if v.len() else None  # type: ignore[arg-type]


def _ci(est: object, side: str) -> float | None:
    if getattr(est, "design", "") == "one run":
        return None
    return getattr(est, "ci_low" if side == "low" else "ci_high")
