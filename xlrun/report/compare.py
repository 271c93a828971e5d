"""``--compare``: per cell and arm, the delta to the baseline arm with one model's interval
and p-value (see :mod:`xlrun.report.inference`), Holm's correction and marks.

What a cell compares, in the open:

* **Runs.** When both arms ran the same seeds, once each, runs pair by seed. Where one arm
  lacks some of the other's seeds, the cell pairs on the seeds both have (a note says where).
  Where the arms share fewer than 3 seeds (different seeds, unknown seeds, 2 seeds, or an arm
  that pools several runs per seed) every run is compared unpaired (a note says where and
  why).
  An arm with a single run has no seed variance: its delta is shown without interval, test
  or mark (a note says so).
* **Rows.** A cell that pools language pairs (``--by setting``, ``query-language``, …)
  compares its runs on the (question, language pair) rows every compared run has: a run
  that lacks some pairs is compared as if no run had them, never averaged over a different
  set of pairs; a note names the cells, the pairs and how many rows were left out.
* **Questions.** Only the questions every compared run has in the cell (no imputation: a
  value that is not there is not made up); a note lists cells that lost questions.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from xlrun.errors import UsageError
from xlrun.report.cells import (
    arm_order,
    cell_label,
    pair_label,
    sort_by_arm,
    valid,
    with_units,
)
from xlrun.report.inference import (
    BASELINE_MARK,
    Estimate,
    InferenceConfig,
    holm,
    significance_mark,
)
from xlrun.report.statistics import TESTS, ComparisonTest

COLUMNS: tuple[str, ...] = (
    "arm", "mean", "n_queries", "n_runs", "sd_seeds", "design", "n_paired", "delta", "se",
    "df", "ci_low", "ci_high", "p", "p_holm", "mark")
"""Columns of :func:`compare_arms` after the cell columns; a test's own columns
(:attr:`~xlrun.report.statistics.ComparisonTest.columns`, e.g. ``p_rand`` of ``query``) come
after ``p``."""


def columns_of(test: ComparisonTest) -> tuple[str, ...]:
    """:data:`COLUMNS` with ``test``'s own columns after ``p``."""
    return (*COLUMNS[:-2], *test.columns, *COLUMNS[-2:])


@dataclass(frozen=True)
class Comparison:
    """The table of :func:`compare_arms` and the notes on what its cells compared."""

    frame: pl.DataFrame
    notes: tuple[str, ...] = ()
    fallback_cells: int = 0
    """Cells × arms compared unpaired or on fewer seeds or questions than they have."""


@dataclass
class _Issues:
    """What the cells did that a reader must know, collected by kind and arm."""

    one_run: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    fewer_seeds: dict[str, list[str]] = field(default_factory=dict)
    unpaired: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    questions: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    rows: dict[str, list[tuple[str, int, int, tuple[str, ...]]]] = field(default_factory=dict)

    def notes(self, base: str, test: ComparisonTest) -> list[str]:
        out = [test.one_run_note(who, _cells(cells), arm)
               for (arm, who), cells in sorted(self.one_run.items())]
        for arm, cells in sorted(self.fewer_seeds.items()):
            out.append(f"arm {arm!r} and baseline {base!r} ran different seed sets in "
                       f"{_cells(cells)}: compared on the seeds both ran (the others are left "
                       "out of the delta and the test)")
        for (arm, why), cells in sorted(self.unpaired.items()):
            out.append(f"arm {arm!r} vs baseline {base!r}: {why} in {_cells(cells)}: every "
                       "run compared unpaired (each arm's seed variance estimated on its own)")
        for arm, items in sorted(self.questions.items()):
            lost = sum(u - c for _, c, u in items)
            shown = [f"{label} ({c} of {u})" for label, c, u in items]
            out.append(f"arm {arm!r} vs baseline {base!r}: {lost} question(s) are missing "
                       f"from some compared run in {len(items)} cell(s): compared on the "
                       f"questions every run has, no imputation: {_ids(shown)}")
        for arm, row_items in sorted(self.rows.items()):
            lost = sum(n for _, n, _, _ in row_items)
            shown = [f"{label}: {n} of {total} rows"
                     + (f", pair(s) {_ids([p.split('/', 1)[-1] for p in gone], 4)} missing "
                        "from some run" if gone else "")
                     for label, n, total, gone in row_items]
            out.append(f"arm {arm!r} vs baseline {base!r}: {lost} (question, language pair) "
                       f"row(s) that some compared run lacks left out in {len(row_items)} "
                       f"cell(s), so every run is compared on the same rows (a run's other "
                       f"pairs are not averaged in): {_ids(shown)}")
        return out


def _ids(labels: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(labels[:limit])
    return shown + (f", … ({len(labels)} in all)" if len(labels) > limit else "")


def _cells(labels: Sequence[str]) -> str:
    return f"{len(labels)} cell(s) ({_ids(labels)})"


MIN_PAIRED_SEEDS = 3
"""Seeds two arms must share to be compared paired. With 2 the paired seed term rests on 1
degree of freedom; the unpaired model uses every run of both arms (the leftover runs too) and
keeps its level (docs/statistics.md, issue 23)."""


@dataclass(frozen=True)
class _Selection:
    """The matrices a cell compares (questions × runs, complete) and how they were chosen:
    ``n_union`` questions any chosen run has; ``lost_rows`` (question, language pair) rows
    of still compared questions left out because some chosen run lacks them, and the pairs
    ``lost_pairs`` that some chosen run lacks altogether."""

    A: np.ndarray
    B: np.ndarray
    paired: bool
    why_unpaired: str = ""
    fewer_seeds: bool = False
    n_union: int = 0
    lost_rows: int = 0
    n_rows: int = 0
    lost_pairs: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunChoice:
    """Which runs of two arms a comparison uses (column indices, in seed order when
    paired) and why."""

    cols_a: list[int]
    cols_b: list[int]
    paired: bool
    why_unpaired: str = ""
    fewer_seeds: bool = False


def choose_runs(seeds_a: Sequence[object] | None, seeds_b: Sequence[object] | None
                ) -> RunChoice:
    """Pair runs by seed when each arm ran each seed once and they share
    :data:`MIN_PAIRED_SEEDS` seeds or more (the seeds only one arm ran are then left out);
    otherwise compare every run unpaired, saying why."""
    n_a = len(seeds_a) if seeds_a is not None else 0
    n_b = len(seeds_b) if seeds_b is not None else 0
    every = RunChoice(list(range(n_a)), list(range(n_b)), False)
    sa = list(seeds_a) if seeds_a is not None else None
    sb = list(seeds_b) if seeds_b is not None else None
    if sa is None or sb is None or None in sa or None in sb:
        return RunChoice(every.cols_a, every.cols_b, False, "seeds unknown")
    if len(set(sa)) < len(sa) or len(set(sb)) < len(sb):
        return RunChoice(every.cols_a, every.cols_b, False, "an arm has several runs per seed")
    common = sorted(set(sa) & set(sb), key=str)
    if len(common) >= MIN_PAIRED_SEEDS:
        return RunChoice([sa.index(x) for x in common], [sb.index(x) for x in common], True,
                         fewer_seeds=len(common) < max(len(sa), len(sb)))
    if not common:
        why = "no seed in common"
    elif len(common) == 1:
        why = f"only seed {common[0]} in common"
    else:
        why = (f"only {len(common)} seeds in common ({', '.join(map(str, common))}; "
               f"pairing needs {MIN_PAIRED_SEEDS})")
    return RunChoice(every.cols_a, every.cols_b, False, why)


def select_runs(A: np.ndarray, B: np.ndarray, seeds_a: Sequence[object] | None,
                seeds_b: Sequence[object] | None) -> _Selection:
    """Choose the runs (:func:`choose_runs`) and questions two arms are compared on.

    ``A``/``B`` are questions × runs with NaN where a run lacks a question; the result keeps
    the questions every chosen run has. Paired runs come in the same seed order."""
    choice = choose_runs(seeds_a if seeds_a is not None else [None] * A.shape[1],
                         seeds_b if seeds_b is not None else [None] * B.shape[1])
    return _rows(CellRows(np.concatenate([A, B], axis=1), np.arange(A.shape[0]),
                          np.zeros(A.shape[0], dtype=np.int64), ("",)),
                 [*choice.cols_a, *[A.shape[1] + j for j in choice.cols_b]],
                 len(choice.cols_a), choice)


@dataclass(frozen=True)
class CellRows:
    """One cell's values: ``V`` rows × runs (NaN where a run lacks the row), each row's
    question (``unit``, an index) and language pair (``pair``, an index into ``pairs``, the
    ``setting/query→doc`` labels)."""

    V: np.ndarray
    unit: np.ndarray
    pair: np.ndarray
    pairs: tuple[str, ...]


def _rows(cell: CellRows, cols: list[int], n_a: int, choice: RunChoice) -> _Selection:
    """The questions × runs matrices of the runs ``cols`` (the first ``n_a`` the arm's) on
    the rows every one of them has: a question's value is the mean over those rows, so a run
    that lacks a language pair (or a question in a pair) is compared as if no run had it."""
    sub = cell.V[:, cols]
    have = ~np.isnan(sub)
    full = have.all(axis=1)
    some = have.any(axis=1)
    kept_units, inverse = np.unique(cell.unit[full], return_inverse=True)
    counts = np.bincount(inverse, minlength=kept_units.size).astype(np.float64)
    Mq = np.empty((kept_units.size, len(cols)))
    for j in range(len(cols)):
        Mq[:, j] = np.bincount(inverse, weights=sub[full, j], minlength=kept_units.size)
    Mq /= np.maximum(counts, 1.0)[:, None]
    n_union = int(np.unique(cell.unit[some]).size)
    partial = some & ~full & np.isin(cell.unit, kept_units)
    lost_pairs: tuple[str, ...] = ()
    if partial.any() and len(cell.pairs) > 1:
        per_pair = np.zeros((len(cell.pairs), len(cols)), dtype=bool)
        for j in range(len(cols)):
            per_pair[:, j] = np.bincount(cell.pair[have[:, j]], minlength=len(cell.pairs)) > 0
        gone = per_pair.any(axis=1) & ~per_pair.all(axis=1)
        lost_pairs = tuple(cell.pairs[i] for i in np.flatnonzero(gone))
    return _Selection(Mq[:, :n_a], Mq[:, n_a:], choice.paired, choice.why_unpaired,
                      choice.fewer_seeds, n_union, int(partial.sum()),
                      int((some & np.isin(cell.unit, kept_units)).sum()), lost_pairs)


def compare_arms(df: pl.DataFrame, cells: Sequence[str], value: str,
                 baseline: str | None = None, config: InferenceConfig | None = None,
                 drop_absent: bool = False) -> Comparison:
    """Per cell and arm: mean, seed spread, delta to the baseline arm, its interval and test.

    ``df`` needs an ``arm`` and a ``run_id`` column (and ``seed`` to pair seeds across arms).
    One row per cell × arm (every arm in every cell; an arm without data in a cell has null
    statistics, or no row at all with ``drop_absent``, which suits cells that are a run
    property such as the sampler). The baseline's rows have null deltas.

    Columns: cells, then :data:`COLUMNS`: ``mean`` (over the arm's questions of its
    seed-averaged values), ``n_queries`` (distinct questions), ``n_runs``, ``sd_seeds`` (SD of
    the per-run means; null for one run), ``design`` (``paired N`` seeds, ``unpaired A/B``
    runs, ``one run``; ``questions`` with ``test="query"``), ``n_paired`` (questions compared),
    ``delta`` (over the compared runs and questions), ``se``, ``df``, ``ci_low``/``ci_high``
    and ``p`` (one t statistic of the crossed model, or of the question-only paired t with
    ``test="query"``, then also ``p_rand``), ``p_holm`` (Holm over all cell × arm p-values that
    exist) and ``mark`` (from ``p_holm``; :data:`~xlrun.report.inference.BASELINE_MARK` on the
    baseline's rows).

    Raises:
        UsageError: fewer than two arms, or an unknown baseline.
    """
    cfg = config or InferenceConfig()
    test = TESTS.get(cfg.test, "--test")
    cells = list(cells)
    d = with_units(valid(df, value))
    arms = arm_order(d["arm"].unique().to_list(), baseline)
    if len(arms) < 2:
        raise UsageError(f"--compare needs at least two arms; found only {arms!r}")
    base = arms[0]
    # One value per run and question in a cell (translations, doc languages averaged).
    per_run = d.group_by([*cells, "arm", "run_id", "unit"]).agg(pl.col(value).mean())
    run_means = (per_run.group_by([*cells, "arm", "run_id"]).agg(pl.col(value).mean())
                 .group_by([*cells, "arm"])
                 .agg(pl.col(value).std(ddof=1).alias("sd_seeds"),
                      pl.len().cast(pl.Int64).alias("n_runs")))
    desc = (per_run.group_by([*cells, "arm", "unit"]).agg(pl.col(value).mean())
            .group_by([*cells, "arm"])
            .agg(pl.col(value).mean().alias("mean"),
                 pl.len().cast(pl.Int64).alias("n_queries"))
            .join(run_means, on=[*cells, "arm"], how="left", nulls_equal=True))
    run_arm = dict(d.select("run_id", "arm").unique().iter_rows())
    run_seed = (dict(d.select("run_id", "seed").unique(subset="run_id").iter_rows())
                if "seed" in d.columns else None)
    issues = _Issues()
    records: list[dict[str, object]] = []
    question_diffs: list[np.ndarray] = []
    fallback = 0
    for key, runs_here, cell in cell_rows(d, cells, value):
        label = cell_label(key)
        by_arm = {arm: [j for j, r in enumerate(runs_here) if run_arm[r] == arm]
                  for arm in arms}
        if not by_arm[base]:
            continue
        seeds = {arm: ([run_seed[runs_here[j]] for j in cols] if run_seed else
                       [None] * len(cols)) for arm, cols in by_arm.items()}
        for arm in arms[1:]:
            if not by_arm[arm]:
                continue
            choice = choose_runs(seeds[arm], seeds[base])
            cols = ([by_arm[arm][j] for j in choice.cols_a]
                    + [by_arm[base][j] for j in choice.cols_b])
            sel = _rows(cell, cols, len(choice.cols_a), choice)
            est, diffs = _estimate(sel, cfg, test)
            question_diffs.append(diffs)
            if min(sel.A.shape[1], sel.B.shape[1]) < 2:
                who = (f"baseline {base!r}" if sel.B.shape[1] < 2 else f"arm {arm!r}")
                issues.one_run.setdefault((arm, who), []).append(label)
            changed = False
            if sel.fewer_seeds:
                issues.fewer_seeds.setdefault(arm, []).append(label)
                changed = True
            if sel.why_unpaired and min(sel.A.shape[1], sel.B.shape[1]) >= 2:
                issues.unpaired.setdefault((arm, sel.why_unpaired), []).append(label)
                changed = True
            if sel.A.shape[0] < sel.n_union:
                issues.questions.setdefault(arm, []).append((label, sel.A.shape[0],
                                                             sel.n_union))
                changed = True
            if sel.lost_rows:
                issues.rows.setdefault(arm, []).append((label, sel.lost_rows, sel.n_rows,
                                                        sel.lost_pairs))
                changed = True
            fallback += changed
            records.append({**dict(zip(cells, key, strict=True)), "arm": arm,
                            "design": _design_label(est), "n_paired": est.n_questions,
                            "delta": est.estimate, "se": est.se, "df": est.df,
                            "ci_low": est.ci_low, "ci_high": est.ci_high, "p": est.p})
    cell_schema = {c: d.schema[c] for c in cells}
    tests = pl.DataFrame(records, schema={
        **cell_schema, "arm": pl.String, "design": pl.String, "n_paired": pl.Int64,
        "delta": pl.Float64, "se": pl.Float64, "df": pl.Float64, "ci_low": pl.Float64,
        "ci_high": pl.Float64, "p": pl.Float64})
    tests = test.add_columns(tests, question_diffs, cfg)
    adjusted = holm(tests["p"].to_list())
    tests = tests.with_columns(
        pl.Series("p_holm", adjusted, dtype=pl.Float64),
        pl.Series("mark", [significance_mark(p) for p in adjusted], dtype=pl.String))
    grid = d.select(cells).unique().join(pl.DataFrame({"arm": arms}), how="cross")
    out = (grid.join(desc, on=[*cells, "arm"], how="left", nulls_equal=True)
           .join(tests, on=[*cells, "arm"], how="left", nulls_equal=True))
    out = sort_by_arm(out, cells, arms)
    out = out.with_columns(pl.when(pl.col("arm") == base).then(pl.lit(BASELINE_MARK))
                           .otherwise(pl.col("mark")).alias("mark"))
    if drop_absent:
        out = out.filter(pl.col("n_queries").is_not_null())
    return Comparison(out.select(*cells, *columns_of(test)), tuple(issues.notes(base, test)),
                      fallback)


def cell_rows(d: pl.DataFrame, cells: Sequence[str], value: str
              ) -> Iterator[tuple[tuple[object, ...], list[int], CellRows]]:
    """Per cell (in sorted order): its key, its runs (sorted ids) and its rows
    (:class:`CellRows`: one per question and language pair, ``setting/query→doc``; rows a
    run has twice are averaged), from per-query rows with a ``unit`` column. One sort of the
    rows' integer codes, however many cells and runs there are."""
    pair_cols = [c for c in ("setting", "query_lang", "doc_lang") if c in d.columns]
    coded = d.select(list(dict.fromkeys([*cells, "run_id", "unit", *pair_cols, value]))
                     ).with_columns(
        (pl.struct(list(cells)).rank("dense").cast(pl.Int64) - 1).alias("__cell"),
        (pl.struct(pair_cols).rank("dense").cast(pl.Int64) - 1).alias("__pair"),
        (pl.col("run_id").rank("dense").cast(pl.Int64) - 1).alias("__run"))
    pairs = (coded.select("__pair", pair_label(coded).alias("__label")).unique("__pair")
             .sort("__pair")["__label"].to_list())
    keys = dict(coded.select("__cell", *cells).unique(subset="__cell").select(
        "__cell", pl.struct(list(cells)).alias("__key")).iter_rows())
    run_ids = coded.select("__run", "run_id").unique("__run").sort("__run")["run_id"]
    n_pair = max(len(pairs), 1)
    n_unit = int(coded["unit"].max()) + 1 if coded.height else 1  # type: ignore[arg-type]
    n_run = max(len(run_ids), 1)
    code = ((coded["__cell"].to_numpy() * n_run + coded["__run"].to_numpy()) * n_unit
            + coded["unit"].to_numpy().astype(np.int64)) * n_pair + coded["__pair"].to_numpy()
    codes, inverse = np.unique(code, return_inverse=True)
    val = (np.bincount(inverse, weights=coded[value].to_numpy().astype(np.float64))
           / np.bincount(inverse))
    row = codes % (n_unit * n_pair)  # question and pair, in the cell
    run = (codes // (n_unit * n_pair)) % n_run
    cid = codes // (n_unit * n_pair * n_run)
    bounds = [0, *(np.flatnonzero(np.diff(cid)) + 1).tolist(), len(cid)]
    for start, stop in itertools.pairwise(bounds):
        if start == stop:
            continue
        runs, ri = np.unique(run[start:stop], return_inverse=True)
        rows, rowi = np.unique(row[start:stop], return_inverse=True)
        V = np.full((len(rows), len(runs)), np.nan)
        V[rowi, ri] = val[start:stop]
        key = keys[int(cid[start])]
        yield (tuple(key[c] for c in cells), [int(run_ids[int(r)]) for r in runs],
               CellRows(V, rows // n_pair, rows % n_pair, tuple(pairs)))


def _design_label(est: Estimate) -> str:
    """``paired 5`` (seeds), ``unpaired 3/4`` (runs), or the estimate's own design."""
    if est.design == "paired":
        return f"paired {est.n_runs[0]}"
    if est.design == "unpaired":
        return f"unpaired {est.n_runs[0]}/{est.n_runs[1]}"
    return est.design


def _estimate(sel: _Selection, cfg: InferenceConfig,
              test: ComparisonTest) -> tuple[Estimate, np.ndarray]:
    """The cell's estimate under ``test`` and its per-question differences."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # empty selections: no value
        diffs = sel.A.mean(axis=1) - sel.B.mean(axis=1)
    if sel.A.shape[0] == 0:
        return Estimate(None, design="no common questions"), diffs
    return test.estimate(sel.A, sel.B, sel.paired, diffs, cfg), diffs
