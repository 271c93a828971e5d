"""Paper-shaped tables: a report's frame in the ``long`` layout (one row per cell and arm, every
column: what ``--format json`` holds) or the ``wide`` layout (``xlrun report --layout wide``).

The wide layout puts the cells side by side, one row per arm, each entry one printed number
with its interval and marks, as a results table in a paper does:

* comparisons (``--compare``): arms × cells (settings, languages, …): the baseline's mean; for
  every other arm its mean and, in parentheses, the difference to the baseline ± the half-width
  of its interval, with the Holm marks (``–``: the arm has no data in that cell, never 0);
* ``--by language-pair``: the language-pair matrix, rows the query language and columns the
  document language (``all``: the multilingual pool); with ``--compare``, one block of rows per
  arm: the baseline's means, then each arm's difference to it with its marks;
* summaries without ``--compare``: one row of means over the cells;
* ``--bias``: rank distance and same-language excess (± half-width of their intervals) per arm
  and cell;
* ``--regress``: one row per term, its estimate ± half-width with marks from its p;
* ``--exposure`` (languages): per arm the query, passage and monolingual shares (%) per
  language.

Each table carries a ``legend`` that says what the numbers and marks are (the caption of
``--format latex``, a footer line in text formats). Entries are text in the wide layout, so
JSON and CSV give the printed strings; the numbers themselves are in the long layout.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl

from xlrun.errors import UsageError
from xlrun.report import cells
from xlrun.report.build import Report
from xlrun.report.inference import BASELINE_MARK, significance_mark

Layout = Literal["long", "wide"]
LAYOUTS: tuple[str, ...] = ("long", "wide")

MISSING = "–"
"""A wide entry without data (never shown as 0)."""

SETTING_ORDER: tuple[str, ...] = ("mono", "cross", "multi")
"""Settings in the order papers report them."""

HOLM_MARKS = "Holm-adjusted p < 0.05 *, < 0.01 **, < 0.001 ***"
P_MARKS = "p < 0.05 *, < 0.01 **, < 0.001 ***"


@dataclass(frozen=True)
class Table:
    """A report laid out for printing.

    Attributes:
        frame: the rows to render.
        title: the report's title (the caption's first sentence in LaTeX).
        legend: what the entries and marks mean (``None``: nothing to explain).
        labels: how many leading columns label the rows (left-aligned; the rest are entries);
            ``None`` in the long layout (text left-, numbers right-aligned).
    """

    frame: pl.DataFrame
    title: str
    legend: str | None = None
    labels: int | None = None


def _number(value: float | None, digits: int = 4, sign: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    text = f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"
    zero = f"{0:.{digits}f}"
    if text.lstrip("+-") == zero:  # no signed zero
        return ("+" if sign else "") + zero
    return text


def _interval(center: float | None, low: float | None, high: float | None, digits: int = 4,
              sign: bool = False) -> str:
    """``center ± half-width`` (``center [low, high]`` for an interval that is not symmetric;
    the center alone without an interval)."""
    text = _number(center, digits, sign)
    if center is None or low is None or high is None or any(
            math.isnan(v) for v in (center, low, high)):
        return text
    half = (high - low) / 2
    if abs((low + high) / 2 - center) > 1e-9 * max(1.0, abs(center)):
        return f"{text} [{_number(low, digits)}, {_number(high, digits)}]"
    return f"{text} ± {_number(half, digits)}"


def _mark(mark: Any) -> str:
    return "" if mark in (None, BASELINE_MARK) else str(mark)


def _cell_columns(report: Report) -> list[str]:
    """The report's cell columns (dataset/split first when it holds several)."""
    return list(report.meta.get("cells") or cells.cell_columns(report.request.by))


def _ordered(values: Sequence[str]) -> list[str]:
    """Column labels in their first order, except that the settings of one prefix (a
    dataset) come in paper order (:data:`SETTING_ORDER`)."""
    values = list(dict.fromkeys(values))
    rank = {s: i for i, s in enumerate(SETTING_ORDER)}
    first: dict[str, int] = {}
    for i, v in enumerate(values):
        first.setdefault(v.rpartition("/")[0], i)

    def key(item: tuple[int, str]) -> tuple[int, int, int]:
        i, v = item
        prefix, _, last = v.rpartition("/")
        return first[prefix], rank.get(last, len(rank)), i

    return [v for _, v in sorted(enumerate(values), key=key)]


def _label(frame: pl.DataFrame, columns: Sequence[str]) -> pl.Series:
    return pl.Series("column", [cells.cell_label(r) for r in frame.select(columns).iter_rows()],
                     dtype=pl.String)


def _spread(long: pl.DataFrame, index: list[str], order: Sequence[str]) -> pl.DataFrame:
    """``long`` (``index`` columns, ``column``, ``value``) with one column per ``column``
    value, in ``order``; rows in their first order; absent entries as :data:`MISSING`."""
    rows = long.select(index).unique(maintain_order=True)
    out = rows
    for col in order:
        part = long.filter(pl.col("column") == col).select(*index, pl.col("value").alias(col))
        out = out.join(part, on=index, how="left", nulls_equal=True, maintain_order="left")
    return out.with_columns(pl.col(c).fill_null(MISSING) for c in order)


def _runs_text(report: Report) -> str:
    runs = report.meta.get("runs_per_arm") or {}
    if not runs:
        return ""
    return "; runs per arm: " + ", ".join(f"{arm} {n}" for arm, n in runs.items())


def _questions_text(frame: pl.DataFrame) -> str:
    if "n_queries" not in frame.columns:
        return ""
    n = frame["n_queries"].drop_nulls()
    if n.len() == 0:
        return ""
    lo, hi = int(n.min()), int(n.max())  # type: ignore[arg-type]
    return f"; questions per cell: {lo}" + (f"–{hi}" if hi != lo else "")


def long_table(report: Report) -> Table:
    """The report as ``--format json`` holds it, with a legend for its marks."""
    legend = None
    if report.kind == "compare":
        legend = (f"marks: {HOLM_MARKS} (difference to baseline {report.meta['arms'][0]}); "
                  "NA: no data or no test")
    return Table(report.frame, report.title, legend, None)


def wide_table(report: Report) -> Table:
    """The report in the wide layout (see the module doc).

    Raises:
        UsageError: a report that has no wide form (``--by run``, ``--exposure pairs``).
    """
    if report.kind == "compare":
        if report.request.by == "language-pair":
            return _compare_matrix(report)
        return _compare_wide(report)
    if report.kind == "summary":
        if report.request.by == "run":
            raise UsageError("--layout wide: --by run lists one run per row already; use "
                             "--layout long (or --by setting / language-pair for a wide table)")
        return _summary_wide(report)
    if report.kind == "bias":
        return _bias_wide(report)
    if report.kind == "regress":
        return _regress_wide(report)
    if report.kind == "exposure" and report.meta.get("view") == "languages":
        return _exposure_wide(report)
    raise UsageError("--layout wide: --exposure pairs is a list of the most frequent pairs; "
                     "use --layout long")


def layout_table(report: Report, layout: str = "long") -> Table:
    """:func:`long_table` or :func:`wide_table`.

    Raises:
        UsageError: an unknown layout, or a report without a wide form.
    """
    if layout == "long":
        return long_table(report)
    if layout == "wide":
        return wide_table(report)
    raise UsageError(f"unknown layout {layout!r}; allowed: {', '.join(LAYOUTS)}")


def _level(report: Report) -> int:
    return round(100 * report.meta.get("level", 0.95))


def _compare_wide(report: Report) -> Table:
    frame, base = report.frame, report.meta["arms"][0]
    cell_cols = _cell_columns(report)
    entries = []
    for row in frame.iter_rows(named=True):
        mean = _number(row["mean"])
        if row["arm"] != base and row["mean"] is not None and row["delta"] is not None:
            delta = _interval(row["delta"], row["ci_low"], row["ci_high"], sign=True)
            mean = f"{mean} ({delta}){_mark(row['mark'])}"
        entries.append(mean)
    long = frame.select("arm").with_columns(_label(frame, cell_cols),
                                            pl.Series("value", entries, dtype=pl.String))
    order = _ordered(long["column"].to_list())
    wide = _spread(long, ["arm"], order)
    arms = report.meta["arms"]
    wide = wide.sort(pl.col("arm").replace_strict({a: i for i, a in enumerate(arms)},
                                                  default=len(arms)))
    legend = (f"mean {report.request.metric} over seeds and questions; in parentheses the "
              f"difference to baseline {base} ± the half-width of its {_level(report)}% "
              f"interval; marks: {HOLM_MARKS}; {MISSING}: no data"
              + _runs_text(report) + _questions_text(frame))
    return Table(wide, report.title, legend, 1)


def _compare_matrix(report: Report) -> Table:
    frame, base = report.frame, report.meta["arms"][0]
    extra = [c for c in _cell_columns(report) if c not in ("query_lang", "doc_lang")]
    entries = []
    for row in frame.iter_rows(named=True):
        if row["arm"] == base:
            entries.append(_number(row["mean"]))
        elif row["delta"] is None or row["mean"] is None:
            entries.append(MISSING)
        else:
            entries.append(_number(row["delta"], sign=True) + _mark(row["mark"]))
    long = frame.select(*extra, "arm", "query_lang", pl.col("doc_lang").cast(pl.String)
                        .alias("column")).with_columns(
        pl.Series("value", entries, dtype=pl.String))
    order = sorted(long["column"].unique().to_list(), key=lambda d: (d == "all", d))
    arms = report.meta["arms"]
    rank = {a: i for i, a in enumerate(arms)}
    long = long.sort([*extra, pl.col("arm").replace_strict(rank, default=len(arms)),
                      "query_lang"])
    wide = _spread(long, [*extra, "arm", "query_lang"], order)
    wide = wide.with_columns(pl.when(pl.col("arm") == base)
                             .then(pl.lit(f"{base} (mean)"))
                             .otherwise(pl.col("arm") + pl.lit(" − ") + pl.lit(base))
                             .alias("arm"))
    legend = (f"rows: query language, columns: document language (all: the multilingual "
              f"pool); {base} rows: mean {report.request.metric}; other arms: difference to "
              f"{base}; marks: {HOLM_MARKS}; {MISSING}: no data" + _runs_text(report))
    return Table(wide, report.title, legend, len(extra) + 2)


def _summary_wide(report: Report) -> Table:
    frame = report.frame
    cell_cols = _cell_columns(report)
    metric = report.request.metric
    if report.request.by == "language-pair":
        extra = [c for c in cell_cols if c not in ("query_lang", "doc_lang")]
        long = frame.select(*extra, "query_lang", pl.col("doc_lang").cast(pl.String)
                            .alias("column")).with_columns(
            pl.Series("value", [_number(v) for v in frame["mean"].to_list()], dtype=pl.String))
        order = sorted(long["column"].unique().to_list(), key=lambda d: (d == "all", d))
        wide = _spread(long.sort([*extra, "query_lang"]), [*extra, "query_lang"], order)
        legend = (f"mean {metric} over runs and questions; rows: query language, columns: "
                  f"document language (all: the multilingual pool); {MISSING}: no data"
                  + _questions_text(frame))
        return Table(wide, report.title, legend, len(extra) + 1)
    long = pl.DataFrame({"metric": [metric] * frame.height}).with_columns(
        _label(frame, cell_cols),
        pl.Series("value", [_number(v) for v in frame["mean"].to_list()], dtype=pl.String))
    wide = _spread(long, ["metric"], _ordered(long["column"].to_list()))
    legend = (f"mean {metric} over runs and questions; {MISSING}: no data"
              + _questions_text(frame))
    return Table(wide, report.title, legend, 1)


def _bias_wide(report: Report) -> Table:
    frame = report.frame
    cell_cols = _cell_columns(report)
    has_arm = "arm" in frame.columns
    parts = []
    measures = (("rank distance", "rank_distance", "rd_ci_low", "rd_ci_high", 2, False),
                ("same-language excess", "same_lang_excess", "excess_ci_low",
                 "excess_ci_high", 4, True))
    for name, col, lo, hi, digits, sign in measures:
        values = [_interval(r[col], r[lo], r[hi], digits, sign)
                  for r in frame.iter_rows(named=True)]
        parts.append(frame.select(*(["arm"] if has_arm else [])).with_columns(
            pl.lit(name).alias("measure"), _label(frame, cell_cols),
            pl.Series("value", values, dtype=pl.String)))
    long = pl.concat(parts, how="diagonal")
    index = ["measure", *(["arm"] if has_arm else [])]
    if has_arm and report.meta.get("arms"):
        rank = {a: i for i, a in enumerate(report.meta["arms"])}
        long = long.with_row_index("__i").sort(
            pl.col("measure").replace_strict({m[0]: i for i, m in enumerate(measures)}),
            pl.col("arm").replace_strict(rank, default=len(rank)), "__i").drop("__i")
    wide = _spread(long, index, _ordered(long["column"].to_list()))
    legend = (f"multi setting; mean rank distance of the same-language documents and the "
              f"same-language share of the top 10 minus the pool's share, each ± the "
              f"half-width of its {round(100 * report.request.tests.level)}% interval (seeds "
              f"and questions random); {MISSING}: no data" + _questions_text(frame))
    return Table(wide, report.title, legend, len(index))


def _regress_wide(report: Report) -> Table:
    frame = report.frame
    rows = []
    for r in frame.iter_rows(named=True):
        est = _interval(r["coef"], r["ci_low"], r["ci_high"], sign=True)
        rows.append((r["term"], est + significance_mark(r["p"]), r["df"], r["p"],
                     r.get("against")))
    wide = pl.DataFrame(rows, schema={"term": pl.String, "estimate": pl.String,
                                      "df": pl.Float64, "p": pl.Float64,
                                      "against": pl.String}, orient="row")
    if "against" not in frame.columns:
        wide = wide.drop("against")
    legend = (f"estimate ± the half-width of its {_level(report)}% interval; marks: {P_MARKS} "
              "(each term's own test, not adjusted over terms); against: the variance a term "
              "is judged against")
    return Table(wide, report.title, legend, 1)


def _exposure_wide(report: Report) -> Table:
    frame = report.frame
    parts = []
    for name, col in (("query %", "query_share"), ("passage %", "passage_share"),
                      ("monolingual %", "mono_share")):
        parts.append(frame.select("arm", pl.lit(name).alias("share"),
                                  pl.col("lang").alias("column"),
                                  pl.Series("value", [_number(None if v is None else 100 * v, 1)
                                                      for v in frame[col].to_list()],
                                            dtype=pl.String)))
    long = pl.concat(parts).sort("arm", maintain_order=True)
    wide = _spread(long, ["arm", "share"], sorted(frame["lang"].unique().to_list()))
    legend = ("per arm (mean over its runs): each language's share of the query texts, of the "
              "passage texts, and the share of its texts trained in monolingual pairs, in %")
    return Table(wide, report.title, legend, 2)
