"""Cells, units and arms of a report, and the plain per-cell summary.

Units: a *question* (``dataset, split, query_id``) is the unit of every test. Parallel
datasets give all translations of a question one ``query_id``, so within a cell a run's value
for a question is the mean over the question's rows there (its translations, document
languages, settings); an arm's value is then the mean over its runs (seeds). Cells where an
arm has no data give nulls, never zeros.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from xlrun.errors import UsageError
from xlrun.report import choices
from xlrun.report.frames import UNIT_KEY, value_matches

BY = choices.BY
"""``--by`` value → the columns that make a cell."""

RUN_LABELS: tuple[str, ...] = ("run_key", "sampler", "language_sampling", "clustering", "seed")
"""Extra label columns shown for ``--by run`` (they depend on ``run_id`` only)."""


def cell_columns(by: str) -> tuple[str, ...]:
    """The cell columns of a ``--by`` value.

    Raises:
        UsageError: ``by`` is not one of :data:`BY`.
    """
    if by not in BY:
        raise UsageError(f"unknown --by {by!r}; allowed: {', '.join(BY)}")
    return BY[by]


def with_units(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` plus an integer ``unit`` column identifying its question (see module doc)."""
    units = df.select(UNIT_KEY).unique().sort(UNIT_KEY).with_row_index("unit")
    return df.join(units, on=list(UNIT_KEY), how="left")


def valid(df: pl.DataFrame, value: str) -> pl.DataFrame:
    """The rows of ``df`` where ``value`` is a number (not null, not NaN)."""
    return df.filter(pl.col(value).is_not_null() & pl.col(value).is_not_nan())


def label_columns(df: pl.DataFrame, cells: Sequence[str]) -> list[str]:
    """The run label columns shown beside ``run`` cells (none for other cells)."""
    if list(cells)[-1:] == ["run_id"]:
        return [c for c in RUN_LABELS if c in df.columns]
    return []


def cell_label(values: Sequence[object]) -> str:
    """A cell as text for notes: its values joined by ``/`` (``en/de``, ``cross``)."""
    return "/".join(str(v) for v in values)


def pair_label(df: pl.DataFrame) -> pl.Expr:
    """A row's language pair as text, ``setting/query→doc`` (``cross/en→de``)."""
    setting = pl.col("setting") if "setting" in df.columns else pl.lit("")
    return pl.concat_str([setting, pl.lit("/"), pl.col("query_lang"), pl.lit("→"),
                          pl.col("doc_lang")])


def common_rows(d: pl.DataFrame, cells: Sequence[str]) -> tuple[pl.DataFrame, list[str]]:
    """The rows of ``d`` (with ``unit``) whose (question, language pair) every run of their
    cell has, and a note per cell that lost some: a run that lacks a language pair (or a
    question in one) is then summarised as if no run had it, never averaged over a different
    set of pairs."""
    if "run_id" in cells:  # one run per cell: nothing to line up
        return d, []
    keys = [*cells, "unit", "__pair"]
    tagged = d.with_columns(pair_label(d).alias("__pair"))
    rows = tagged.select(*keys, "run_id").unique()
    runs = rows.group_by(list(cells)).agg(pl.col("run_id").n_unique().alias("__runs"))
    counts = (rows.group_by(keys).agg(pl.col("run_id").n_unique().alias("__have"))
              .join(runs, on=list(cells), how="left", nulls_equal=True))
    full = counts.filter(pl.col("__have") == pl.col("__runs")).select(keys)
    if full.height == counts.height:
        return d, []
    kept = tagged.join(full, on=keys, how="semi", nulls_equal=True).drop("__pair")
    lost = counts.filter(pl.col("__have") < pl.col("__runs"))
    by_cell = (lost.group_by(list(cells)).agg(pl.len().alias("__rows"),
                                               pl.col("__pair").unique().sort())
               .sort(list(cells), nulls_last=True))
    shown = []
    for row in by_cell.iter_rows(named=True):
        pairs = [p.split("/", 1)[-1] for p in row["__pair"]]
        listed = ", ".join(pairs[:4]) + (f", … ({len(pairs)} in all)" if len(pairs) > 4 else "")
        shown.append(f"{cell_label([row[c] for c in cells])}: {row['__rows']} rows "
                     f"({listed})")
    more = f", … ({len(shown)} cells in all)" if len(shown) > 6 else ""
    note = (f"{lost.height} (question, language pair) row(s) that some run of their cell lacks "
            f"left out of {by_cell.height} cell(s), so each cell's runs are summarised on the "
            f"same rows: {'; '.join(shown[:6])}{more}")
    return kept, [note]


def summary_table(df: pl.DataFrame, cells: Sequence[str], value: str
                  ) -> tuple[pl.DataFrame, list[str]]:
    """:func:`summarize` on the rows every run of a cell has (:func:`common_rows`), and the
    notes on what was left out."""
    d = with_units(valid(df, value))
    kept, notes = common_rows(d, cells)
    return _summary(kept, cells, value), notes


def summarize(df: pl.DataFrame, cells: Sequence[str], value: str) -> pl.DataFrame:
    """Mean of ``value`` per cell over all runs and queries, with query and run counts.

    Columns: cells (and run labels for ``run`` cells, then ``arm`` if ``df`` has one),
    ``mean``, ``n_queries`` (distinct queries), ``n_runs``. Every run of a cell is summarised
    on the rows all of them have (see :func:`summary_table`, which also says what was left
    out).
    """
    return summary_table(df, cells, value)[0]


def _summary(d: pl.DataFrame, cells: Sequence[str], value: str) -> pl.DataFrame:
    labels = label_columns(d, cells)
    if list(cells)[-1:] == ["run_id"] and "arm" in d.columns:
        labels.append("arm")
    keys = [*cells, *labels]
    means = (d.group_by([*keys, "unit"]).agg(pl.col(value).mean())
             .group_by(keys).agg(pl.col(value).mean().alias("mean"),
                                 pl.len().cast(pl.Int64).alias("n_queries")))
    runs = d.group_by(keys).agg(pl.col("run_id").n_unique().cast(pl.Int64).alias("n_runs"))
    return (means.join(runs, on=keys, how="left", nulls_equal=True)
            .sort(list(cells), nulls_last=True))


def arm_order(arms: Sequence[str], baseline: str | None = None) -> list[str]:
    """Arms sorted, the baseline first (default: the first in sorted order).

    A numeric baseline matches an arm with the same number (``2e-5`` names the arm
    ``2e-05``).

    Raises:
        UsageError: ``baseline`` is not one of the arms (the message lists them).
    """
    ordered = sorted(set(arms))
    if baseline is None:
        return ordered
    if baseline not in ordered:
        same = [a for a in ordered if value_matches(a, baseline)]
        if len(same) != 1:
            raise UsageError(f"--baseline {baseline!r} is not an arm of the selected runs; "
                             f"arms: {', '.join(ordered)}")
        baseline = same[0]
    return [baseline, *[a for a in ordered if a != baseline]]


def sort_by_arm(frame: pl.DataFrame, cells: Sequence[str], arms: Sequence[str]) -> pl.DataFrame:
    """``frame`` sorted by its cells, then its ``arm`` in the order of ``arms``."""
    rank = {a: i for i, a in enumerate(arms)}
    return (frame.with_columns(pl.col("arm").replace_strict(rank, return_dtype=pl.Int64)
                               .alias("__rank"))
            .sort([*cells, "__rank"], nulls_last=True).drop("__rank"))
