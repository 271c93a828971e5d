"""No silent pooling: what a report averages into one number is said, and a comparison without
``--baseline`` says which baseline it chose and why.

A report's cell is one number per arm. It is an honest number only when the reader knows what
it mixes. :func:`pooled_notes` returns a note for each kind of mixing a cell does that the
flags did not ask for:

* **arms** (no ``--compare``): runs of different arms (``sampler/language_sampling
  [clustering]``, the untrained model ``none``) averaged together — add ``--compare arm``;
* **models** (no ``--compare``): runs of different models averaged together — add
  ``--compare model`` or ``--where model=NAME``;
* **settings** (the cells are not settings and no ``--setting``): a question's rows in the
  mono, cross and multi settings averaged into one value — add ``--setting``.

Datasets are never pooled: several datasets become separate cells (see
:func:`xlrun.report.build.dataset_cells`). Arms that mix runs of different samplers or models
under ``--compare KEY`` are noted by :func:`xlrun.report.build.pooling_notes`.

:func:`default_baseline` is the documented choice when ``--compare`` has no ``--baseline``
(:data:`BASELINE_RULE`).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from xlrun.spec.schema import arm_label

PAPER_ARM = "hybrid/size"
"""The random-language hybrid arm (the recipe of Elmahdy, Lin & Ahmad 2024)."""

UNTRAINED_ARMS: tuple[str, ...] = ("none", "(none)")
"""Arm values of the untrained model (``--compare arm``/``sampler``: ``none``; a key the
untrained runs lack, e.g. ``language_sampling``: ``(none)``)."""

BASELINE_RULE = ("the random-language hybrid arm hybrid/size; else the one arm that draws "
                 "languages by size (size, …/size); else the untrained model (none); else the "
                 "first arm in sorted order")
"""The default baseline of ``--compare`` without ``--baseline``, in order of preference."""


def default_baseline(arms: Sequence[str]) -> tuple[str, str]:
    """The baseline :data:`BASELINE_RULE` picks among ``arms`` and a note saying so.

    Raises:
        ValueError: ``arms`` is empty.
    """
    ordered = sorted(set(arms))
    if not ordered:
        raise ValueError("no arms")
    random_arms = [a for a in ordered if a == "size" or a.endswith("/size")]
    untrained = [a for a in ordered if a in UNTRAINED_ARMS]
    if PAPER_ARM in ordered:
        choice, why = PAPER_ARM, "the random-language hybrid arm"
    elif len(random_arms) == 1:
        choice, why = random_arms[0], "the arm that draws languages at random by size"
    elif untrained:
        choice, why = untrained[0], "the untrained model"
    elif random_arms:
        choice, why = random_arms[0], (f"the first of the {len(random_arms)} arms that draw "
                                       "languages at random by size")
    else:
        choice, why = ordered[0], "no random-language or untrained arm: the first in sorted order"
    return choice, (f"no --baseline given: comparing to {choice!r} ({why}, by the default "
                    "rule); choose another with --baseline")


def _counted(values: dict[str, int]) -> str:
    return ", ".join(f"{v} ({n} run{'s' * (n != 1)})" for v, n in sorted(values.items()))


def pooled_notes(df: pl.DataFrame, cell_cols: Sequence[str], compare: str | None) -> list[str]:
    """Notes for each kind of pooling the cells of ``df`` do that the flags did not ask for
    (see the module doc). ``df``: a report frame (one row per query result, with the runs'
    columns); ``cell_cols``: the report's cell columns; ``compare``: ``--compare`` or None."""
    notes: list[str] = []
    if df.height == 0:
        return notes
    cell_cols = list(cell_cols)
    per_run = "run_id" in cell_cols
    if compare is None and not per_run:
        runs = df.select("run_id", "sampler", "language_sampling", "clustering",
                         "model").unique()
        arm = pl.Series("__arm", [arm_label(*r) for r in runs.select(
            "sampler", "language_sampling", "clustering").iter_rows()], dtype=pl.String)
        runs = runs.with_columns(arm)
        used = df.select(*cell_cols, "run_id").unique().join(runs, on="run_id")
        for column, label, fix in (
                ("__arm", "arms", "add --compare arm to report each arm apart, or keep one "
                                  "with --where (e.g. --where sampler=hybrid)"),
                ("model", "models", "add --compare model, or keep one with --where "
                                    "model=NAME")):
            widest = used.group_by(cell_cols).agg(pl.col(column).n_unique().alias("k"))
            if widest["k"].max() > 1:  # type: ignore[operator]
                counts = dict(runs.group_by(column).len().iter_rows())
                counts = {("null" if k is None else str(k)): int(v) for k, v in counts.items()}
                extra = (" (none: the untrained model)"
                         if label == "arms" and "none" in counts else "")
                notes.append(f"each cell's mean pools {len(counts)} {label}{extra}: "
                             f"{_counted(counts)}; {fix}")
    if "setting" not in cell_cols and df["setting"].n_unique() > 1:
        widest = df.select(*cell_cols, "setting").unique().group_by(cell_cols).agg(
            pl.col("setting").n_unique().alias("k"))
        if widest["k"].max() > 1:  # type: ignore[operator]
            settings = sorted(df["setting"].unique().to_list(),
                              key=lambda s: (["mono", "cross", "multi"].index(s)
                                             if s in ("mono", "cross", "multi") else 3, s))
            notes.append(f"each cell averages the settings {', '.join(settings)} (a question's "
                         "rows in all of them make one value): add --setting "
                         f"{'|'.join(settings)} (or --by setting) to report one")
    return notes
