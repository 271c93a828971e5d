"""Statistics of a report: cell means, deltas between arms and their tests.

All functions are pure: they take polars frames / numpy arrays and return new ones.

Units: a *question* (``dataset, split, query_id``) is the unit of resampling. Parallel datasets
give all translations of a question one ``query_id``, so within a cell a run's value for a
question is the mean over the question's rows there (its translations, document languages,
settings); an arm's value is then the mean over its runs (seeds). A cell's ``mean`` is the mean
of these per-question values, so when every question is paired,
``delta = mean(arm) − mean(baseline)``. Cells where an arm has no data give nulls, never zeros.

Two sources of variance: questions (another benchmark) and training seeds (another training
run of the same recipe). :func:`compare_arms` reports

* ``p_seed``: a test on per-run means (each run's mean over the paired questions): a paired
  t-test on per-seed deltas when both arms ran the same seeds once each, else Welch's t-test.
  It asks "does the recipe differ", not "do these checkpoints differ". Null when an arm has
  one run (seed variance unknown).
* ``ci_low, ci_high``: a hierarchical bootstrap of the delta that resamples runs within each
  arm and then questions (shared by both arms, keeping the pairing).
* ``p_t``, ``p_rand``: the query-level paired t and sign-flip tests on per-question
  differences (seeds averaged first). They ignore seed variance, so they overstate certainty
  whenever seeds differ; they are shown for reference and used for marks only when the
  seed-level test is undefined (an arm with one run) or with ``test="query"``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from xlrun.errors import UsageError
from xlrun.report import choices
from xlrun.report.query import UNIT_KEY, value_matches

BY = choices.BY
"""``--by`` value → the columns that make a cell."""

RUN_LABELS: tuple[str, ...] = ("run_key", "sampler", "language_sampling", "clustering", "seed")
"""Extra label columns shown for ``--by run`` (they depend on ``run_id`` only)."""


BASELINE_MARK = "baseline"
"""The ``mark`` of the baseline arm's rows in :func:`compare_arms` (they have no test)."""


@dataclass(frozen=True)
class InferenceConfig:
    """Settings of the paired tests (fixed seeds make reports reproducible)."""

    n_permutations: int = 10_000
    n_bootstrap: int = 2_000
    seed: int = 0
    level: float = 0.95
    holm_on: Literal["t", "rand"] = "t"
    """The query-level p (paired t or sign flip) used when the seed-level test is not."""
    test: Literal["seed", "query"] = "seed"
    """Which p-values Holm's correction and the marks use: ``seed`` (``p_seed``, falling back
    to the query-level p where an arm has one run) or ``query`` (always the query-level p)."""


TESTS: tuple[str, ...] = ("seed", "query")
"""``--test`` values."""

_BLOCK_ELEMENTS = 2_000_000
"""Random draws held at once by the resampling loops (bounds their memory)."""


_TIE = 1e-12
"""Relative spread below which values count as equal (no variance: no t-test)."""


def _block_rows(n: int, total: int) -> int:
    """Resamples per block: at most 500 and about :data:`_BLOCK_ELEMENTS` draws."""
    return max(1, min(500, total, _BLOCK_ELEMENTS // max(n, 1)))


def cell_columns(by: str) -> tuple[str, ...]:
    """The cell columns of a ``--by`` value.

    Raises:
        UsageError: ``by`` is not one of :data:`BY`.
    """
    if by not in BY:
        raise UsageError(f"unknown --by {by!r}; allowed: {', '.join(BY)}")
    return BY[by]


def significance_mark(p: float | None) -> str:
    """``***`` p<.001, ``**`` p<.01, ``*`` p<.05, else empty (also for a null p)."""
    if p is None or math.isnan(p):
        return ""
    if p < 0.001:
        return "***"
    if p < 0.01:
        return "**"
    if p < 0.05:
        return "*"
    return ""


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm–Bonferroni adjusted p-values (nulls stay null and do not count as tests)."""
    idx = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    order = sorted(idx, key=lambda i: pvalues[i])  # type: ignore[arg-type, return-value]
    running = 0.0
    for rank, i in enumerate(order):
        p = float(pvalues[i])  # type: ignore[arg-type]
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def paired_t_pvalue(diffs: np.ndarray) -> float | None:
    """Two-sided p of the paired t-test on differences (``None`` if n<2 or no variance)."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2 or np.ptp(d) <= _TIE * (1.0 + np.abs(d).max()):
        return None
    from scipy import stats as sps

    return float(sps.ttest_1samp(d, 0.0).pvalue)


def _sign_blocks(n: int, n_permutations: int, seed: int):  # noqa: ANN202
    """Random ±1 sign matrices (``rows × n`` float32), :func:`_block_rows` rows at a time; the
    sequence depends only on ``(n, n_permutations, seed)``."""
    rng = np.random.default_rng(seed)
    step = _block_rows(n, n_permutations)
    for start in range(0, n_permutations, step):
        rows = min(step, n_permutations - start)
        bits = rng.integers(0, 256, size=(rows, (n + 7) // 8), dtype=np.uint8)
        signs = np.unpackbits(bits, axis=1, count=n).astype(np.float32)
        signs *= 2.0
        signs -= 1.0
        yield signs


def _count_blocks(n: int, n_resamples: int, rng: np.random.Generator):  # noqa: ANN202
    """How often each of ``n`` units is drawn in each resample (``rows × n`` float64), a block
    of resamples at a time."""
    step = _block_rows(n, n_resamples)
    for start in range(0, n_resamples, step):
        rows = min(step, n_resamples - start)
        idx = rng.integers(0, n, size=(rows, n))
        idx += (np.arange(rows) * n)[:, None]
        yield np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float64)


def _sign_flip_batch(D: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """Sign-flip p of each column of ``D`` (units × tests), all with the same flips."""
    n = D.shape[0]
    D32 = D.astype(np.float32)
    observed = np.abs(D.sum(axis=0))
    tol = 1e-5 * np.abs(D).sum(axis=0)  # float32 rounding: near-ties count as extreme
    extreme = np.zeros(D.shape[1], dtype=np.int64)
    for signs in _sign_blocks(n, n_permutations, seed):
        sums = np.abs(signs @ D32).astype(np.float64)
        extreme += np.count_nonzero(sums >= observed - tol, axis=0)
    p = (1.0 + extreme) / (1.0 + n_permutations)
    p[~np.any(D != 0, axis=0)] = 1.0
    return p


def _bootstrap_batch(D: np.ndarray, n_resamples: int, seed: int,
                     level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of each column's mean (same resamples for all)."""
    n = D.shape[0]
    rng = np.random.default_rng(seed)
    means = np.concatenate([c @ D / n for c in _count_blocks(n, n_resamples, rng)])
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha], axis=0)
    return lo, hi


def sign_flip_pvalue(diffs: np.ndarray, n_permutations: int = 10_000,
                     seed: int = 0) -> float | None:
    """Two-sided p of the paired randomization test (random sign flips of the differences).

    ``p = (1 + #{|sum*| >= |sum|}) / (1 + n_permutations)``; ``None`` for fewer than 2 pairs.
    """
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return None
    return float(_sign_flip_batch(d[:, None], n_permutations, seed)[0])


def bootstrap_ci(diffs: np.ndarray, n_resamples: int = 2_000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (resampling units); ``None`` if n<2."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return None
    lo, hi = _bootstrap_batch(d[:, None], n_resamples, seed, level)
    return float(lo[0]), float(hi[0])


def paired_tests(diffs: Sequence[np.ndarray], config: InferenceConfig | None = None,
                 with_ci: bool = True) -> list[dict[str, float | int | None]]:
    """Delta, bootstrap CI, paired t p and sign-flip p of each array of differences.

    Equal to calling :func:`paired_t_pvalue`, :func:`sign_flip_pvalue` and
    :func:`bootstrap_ci` one by one, but arrays of equal length are tested together (one
    matrix product), which keeps a 100-cell report fast. ``with_ci=False`` skips the
    bootstrap (the CI stays null).
    """
    from scipy import stats as sps

    cfg = config or InferenceConfig()
    out: list[dict[str, float | int | None]] = []
    by_n: dict[int, list[int]] = {}
    for i, d in enumerate(diffs):
        d = np.asarray(d, dtype=np.float64)
        out.append({"n_paired": int(d.size), "delta": float(d.mean()) if d.size else None,
                    "ci_low": None, "ci_high": None, "p_t": None, "p_rand": None})
        if d.size >= 2:
            by_n.setdefault(d.size, []).append(i)
    for n, members in by_n.items():
        for start in range(0, len(members), 256):
            chunk = members[start:start + 256]
            D = np.column_stack([np.asarray(diffs[i], dtype=np.float64) for i in chunk])
            sd = D.std(axis=0, ddof=1)
            mean = D.mean(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                t = mean / (sd / math.sqrt(n))
            p_t = 2.0 * sps.t.sf(np.abs(t), n - 1)
            constant = np.ptp(D, axis=0) <= _TIE * (1.0 + np.abs(D).max(axis=0))
            p_rand = _sign_flip_batch(D, cfg.n_permutations, cfg.seed)
            if with_ci:
                lo, hi = _bootstrap_batch(D, cfg.n_bootstrap, cfg.seed, cfg.level)
            for j, i in enumerate(chunk):
                if with_ci:
                    out[i].update(ci_low=float(lo[j]), ci_high=float(hi[j]))
                out[i].update(p_t=None if constant[j] else float(p_t[j]),
                              p_rand=float(p_rand[j]))
    return out


def seeds_paired(arm_seeds: Sequence[object] | None,
                 base_seeds: Sequence[object] | None) -> bool:
    """Whether two arms ran the same seeds, each once (then runs pair by seed)."""
    return (arm_seeds is not None and base_seeds is not None
            and None not in arm_seeds and None not in base_seeds
            and len(set(arm_seeds)) == len(arm_seeds) >= 2
            and len(set(base_seeds)) == len(base_seeds)
            and set(arm_seeds) == set(base_seeds))


def seed_pvalue(arm_means: np.ndarray, base_means: np.ndarray,
                arm_seeds: Sequence[object] | None = None,
                base_seeds: Sequence[object] | None = None) -> tuple[float | None, str]:
    """Two-sided p of the seed-level test on per-run means, and which test it was.

    When both arms ran the same seeds, each once (``arm_seeds``/``base_seeds`` given, no
    nulls), a paired t-test on the per-seed deltas (``"paired"``); otherwise Welch's t-test
    (``"welch"``). ``None`` when an arm has fewer than 2 runs (``"none"``) or the runs show no
    variance.
    """
    from scipy import stats as sps

    a = np.asarray(arm_means, dtype=np.float64)
    b = np.asarray(base_means, dtype=np.float64)
    if a.size < 2 or b.size < 2:
        return None, "none"
    if seeds_paired(arm_seeds, base_seeds):
        order_b = {s: i for i, s in enumerate(base_seeds)}  # type: ignore[union-attr]
        d = a - b[[order_b[s] for s in arm_seeds]]  # type: ignore[union-attr]
        return paired_t_pvalue(d), "paired"
    if np.ptp(a) <= _TIE * (1.0 + np.abs(a).max()) and np.ptp(b) <= _TIE * (
            1.0 + np.abs(b).max()):
        return None, "welch"
    return float(sps.ttest_ind(a, b, equal_var=False).pvalue), "welch"


def hierarchical_bootstrap(jobs: Sequence[tuple[np.ndarray, np.ndarray]], n_resamples: int,
                           seed: int = 0, level: float = 0.95
                           ) -> list[tuple[float, float] | None]:
    """Percentile intervals of ``mean(arm) − mean(base)`` resampling runs, then questions.

    Each job is ``(arm, base)``: matrices questions × runs (the same questions, in the same
    order, in both). One resample draws each arm's runs with replacement (independently per
    arm: a seed number shared by two arms is not assumed to couple their runs) and the
    questions with replacement (the same draw for both arms: the question pairing is kept);
    its delta is the mean over drawn questions of the drawn runs' mean difference. ``None``
    for fewer than 2 questions. Jobs of the same shape share their resamples, so a job's
    interval does not depend on the other jobs. Random numbers are drawn a block of
    resamples at a time (bounded memory).
    """
    out: list[tuple[float, float] | None] = [None] * len(jobs)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, (a, b) in enumerate(jobs):
        if a.shape[0] >= 2 and a.shape[1] >= 1 and b.shape[1] >= 1:
            groups.setdefault((a.shape[0], a.shape[1], b.shape[1]), []).append(i)
    alpha = (1.0 - level) / 2.0
    for (n, ra, rb), members in groups.items():
        rng = np.random.default_rng([seed, n, ra, rb])
        XA = np.concatenate([jobs[i][0] for i in members], axis=1)  # n × (J·ra)
        XB = np.concatenate([jobs[i][1] for i in members], axis=1)
        J = len(members)
        deltas = []
        for counts in _count_blocks(n, n_resamples, rng):
            rows = counts.shape[0]
            wa = rng.multinomial(ra, np.full(ra, 1.0 / ra), size=rows).astype(np.float64)
            wb = rng.multinomial(rb, np.full(rb, 1.0 / rb), size=rows).astype(np.float64)
            sa = (counts @ XA).reshape(rows, J, ra)  # per resample, job, run: question sum
            sb = (counts @ XB).reshape(rows, J, rb)
            deltas.append((sa * wa[:, None, :]).sum(axis=2) / (n * ra)
                          - (sb * wb[:, None, :]).sum(axis=2) / (n * rb))
        lo, hi = np.quantile(np.concatenate(deltas), [alpha, 1.0 - alpha], axis=0)
        for j, i in enumerate(members):
            out[i] = (float(lo[j]), float(hi[j]))
    return out


def with_units(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` plus an integer ``unit`` column identifying its question (see module doc)."""
    units = df.select(UNIT_KEY).unique().sort(UNIT_KEY).with_row_index("unit")
    return df.join(units, on=list(UNIT_KEY), how="left")


def _valid(df: pl.DataFrame, value: str) -> pl.DataFrame:
    return df.filter(pl.col(value).is_not_null() & pl.col(value).is_not_nan())


def _label_columns(df: pl.DataFrame, cells: Sequence[str]) -> list[str]:
    if list(cells)[-1:] == ["run_id"]:
        return [c for c in RUN_LABELS if c in df.columns]
    return []


def summarize(df: pl.DataFrame, cells: Sequence[str], value: str) -> pl.DataFrame:
    """Mean of ``value`` per cell over all runs and queries, with query and run counts.

    Columns: cells (and run labels for ``run`` cells, then ``arm`` if ``df`` has one),
    ``mean``, ``n_queries`` (distinct queries), ``n_runs``.
    """
    d = with_units(_valid(df, value))
    labels = _label_columns(d, cells)
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


COMPARE_COLUMNS: tuple[str, ...] = (
    "arm", "mean", "n_queries", "n_runs", "sd_seeds", "n_paired", "delta", "ci_low", "ci_high",
    "p_seed", "p_t", "p_rand", "p_holm", "mark")
"""Columns of :func:`compare_arms` after the cell columns."""


def _impute(X: np.ndarray, row_mean: np.ndarray) -> np.ndarray:
    """``X`` (questions × runs) with a run's missing question replaced by the question's mean
    over the arm's other runs (so the per-run means average to the arm's question means)."""
    if not np.isnan(X).any():
        return X
    return np.where(np.isnan(X), row_mean[:, None], X)


def compare_arms(df: pl.DataFrame, cells: Sequence[str], value: str,
                 baseline: str | None = None, config: InferenceConfig | None = None,
                 drop_absent: bool = False) -> pl.DataFrame:
    """Per cell and arm: mean, seed spread, delta to the baseline arm, CI and tests.

    ``df`` needs an ``arm`` and a ``run_id`` column (and ``seed`` to pair seeds across arms).
    One row per cell × arm (every arm in every cell; an arm without data in a cell has null
    statistics, or no row at all with ``drop_absent``, which suits cells that are a run
    property such as the sampler). The baseline's rows have null deltas. See the module
    docstring for the units and the tests.

    Columns: cells, then :data:`COMPARE_COLUMNS`: ``mean`` (over questions of the seed-averaged
    value), ``n_queries`` (distinct questions), ``n_runs``, ``sd_seeds`` (SD of the per-run
    means; null for one run), ``n_paired`` (questions both arms have), ``delta``,
    ``ci_low/ci_high`` (hierarchical bootstrap over runs and questions), ``p_seed``
    (seed-level test, null when an arm has one run), ``p_t``/``p_rand`` (query-level),
    ``p_holm`` (Holm over all cell × arm tests of ``p_seed``, or of the query-level p where
    ``p_seed`` is undefined or ``config.test == "query"``) and ``mark`` (from ``p_holm``;
    :data:`BASELINE_MARK` on the baseline's rows).

    Raises:
        UsageError: fewer than two arms, or an unknown baseline.
    """
    cfg = config or InferenceConfig()
    cells = list(cells)
    d = with_units(_valid(df, value))
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
    records: list[dict[str, object]] = []
    diffs: list[np.ndarray] = []
    jobs: list[tuple[np.ndarray, np.ndarray]] = []
    wide_all = (per_run.drop("arm").pivot(on="run_id", index=[*cells, "unit"], values=value)
                .sort([*cells, "unit"], nulls_last=True))
    all_runs = sorted((c for c in wide_all.columns if c not in (*cells, "unit")), key=int)
    for key, wide in wide_all.partition_by(cells, as_dict=True, maintain_order=True).items():
        M = wide.select(all_runs).to_numpy().astype(np.float64)
        present = ~np.all(np.isnan(M), axis=0)  # the runs with data in this cell
        runs_here = [r for r, keep in zip(all_runs, present, strict=True) if keep]
        M = M[:, present]
        by_arm: dict[str, tuple[np.ndarray, list[int]]] = {}
        for arm in arms:
            cols = [j for j, r in enumerate(runs_here) if run_arm[int(r)] == arm]
            by_arm[arm] = (M[:, cols], [int(runs_here[j]) for j in cols])
        Xb, runs_b = by_arm[base]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no value
            vb = np.nanmean(Xb, axis=1) if runs_b else np.full(M.shape[0], np.nan)
            for arm in arms[1:]:
                Xa, runs_a = by_arm[arm]
                va = np.nanmean(Xa, axis=1) if runs_a else np.full(M.shape[0], np.nan)
                ok = ~(np.isnan(va) | np.isnan(vb))
                diffs.append(va[ok] - vb[ok])
                A = _impute(Xa[ok], va[ok]) if runs_a else np.empty((0, 0))
                B = _impute(Xb[ok], vb[ok]) if runs_b else np.empty((0, 0))
                seeds_a = [run_seed[r] for r in runs_a] if run_seed else None
                seeds_b = [run_seed[r] for r in runs_b] if run_seed else None
                jobs.append((A, B))
                p_seed = None
                if ok.any():
                    p_seed, _ = seed_pvalue(A.mean(axis=0), B.mean(axis=0), seeds_a, seeds_b)
                records.append({**dict(zip(cells, key, strict=True)), "arm": arm,
                                "p_seed": p_seed, "__seed_ok": len(runs_a) >= 2
                                and len(runs_b) >= 2})
    for rec, res, ci in zip(records, paired_tests(diffs, cfg, with_ci=False),
                            hierarchical_bootstrap(jobs, cfg.n_bootstrap, cfg.seed, cfg.level),
                            strict=True):
        rec.update(res)
        if ci is not None:
            rec.update(ci_low=ci[0], ci_high=ci[1])
    cell_schema = {c: d.schema[c] for c in cells}
    tests = pl.DataFrame(records, schema={
        **cell_schema, "arm": pl.String, "p_seed": pl.Float64, "__seed_ok": pl.Boolean,
        "n_paired": pl.Int64, "delta": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64,
        "p_t": pl.Float64, "p_rand": pl.Float64})
    tests = tests.sort([*cells, "arm"], nulls_last=True)
    query_p = tests["p_t" if cfg.holm_on == "t" else "p_rand"].to_list()
    if cfg.test == "seed":
        primary = [ps if ok else pq for ps, pq, ok in zip(
            tests["p_seed"].to_list(), query_p, tests["__seed_ok"].to_list(), strict=True)]
    else:
        primary = query_p
    adjusted = holm(primary)
    tests = tests.drop("__seed_ok").with_columns(
        pl.Series("p_holm", adjusted, dtype=pl.Float64),
        pl.Series("mark", [significance_mark(p) for p in adjusted], dtype=pl.String))
    grid = (d.select(cells).unique()
            .join(pl.DataFrame({"arm": arms}), how="cross"))
    out = (grid.join(desc, on=[*cells, "arm"], how="left", nulls_equal=True)
           .join(tests, on=[*cells, "arm"], how="left", nulls_equal=True))
    rank = {a: i for i, a in enumerate(arms)}
    out = (out.with_columns(pl.col("arm").replace_strict(rank, return_dtype=pl.Int64)
                            .alias("__rank"))
           .sort([*cells, "__rank"], nulls_last=True).drop("__rank"))
    out = out.with_columns(pl.when(pl.col("arm") == base).then(pl.lit(BASELINE_MARK))
                           .otherwise(pl.col("mark")).alias("mark"))
    if drop_absent:
        out = out.filter(pl.col("n_queries").is_not_null())
    return out.select(*cells, *COMPARE_COLUMNS)


def bias_table(df: pl.DataFrame, cells: Sequence[str]) -> pl.DataFrame:
    """Language bias in the multilingual pool per cell (and arm, if ``df`` has one).

    Columns: cells, [``arm``], ``rank_distance`` (mean), ``same_lang_at_10``,
    ``same_lang_expected``, ``same_lang_excess`` (mean of at_10 − expected), ``n_queries``,
    ``n_runs``. Only rows with bias columns (the ``multi`` setting) count.
    """
    keys = [*cells, *_label_columns(df, cells), *(["arm"] if "arm" in df.columns else [])]
    d = with_units(df.filter(pl.col("rank_distance").is_not_null()
                             | pl.col("same_lang_at_10").is_not_null()))
    if d.height == 0:
        raise UsageError("no language-bias results (rank_distance, same_lang_at_10): "
                         "they exist only for the 'multi' setting")
    return (d.group_by(keys)
            .agg(pl.col("rank_distance").mean(),
                 pl.col("same_lang_at_10").mean(),
                 pl.col("same_lang_expected").mean(),
                 (pl.col("same_lang_at_10") - pl.col("same_lang_expected")).mean()
                 .alias("same_lang_excess"),
                 pl.col("unit").n_unique().cast(pl.Int64).alias("n_queries"),
                 pl.col("run_id").n_unique().cast(pl.Int64).alias("n_runs"))
            .sort(keys, nulls_last=True))


# --------------------------------------------------------------------------- regression


def _same_cluster(df: pl.DataFrame, clusters: pl.DataFrame) -> pl.DataFrame:
    """Add ``same_cluster`` (1.0/0.0): query and document language share a cluster.

    A run without stored clusters (e.g. a random arm) uses the clustering of the first run
    that has one, so the covariate means "a pair the clustered sampler co-batches".
    """
    if clusters.height == 0:
        return df.with_columns(pl.lit(None, dtype=pl.Float64).alias("same_cluster"))
    ref_run = clusters["run_id"].min()
    ref = clusters.filter(pl.col("run_id") == ref_run).select("lang", "cluster")
    have = set(clusters["run_id"].unique().to_list())
    runs = df.select("run_id").unique()
    mapping = pl.concat([
        clusters,
        runs.filter(~pl.col("run_id").is_in(list(have))).join(ref, how="cross")
        .select("run_id", "lang", "cluster"),
    ])
    q = mapping.rename({"lang": "query_lang", "cluster": "cq"})
    dd = mapping.rename({"lang": "doc_lang", "cluster": "cd"})
    out = df.join(q, on=["run_id", "query_lang"], how="left").join(
        dd, on=["run_id", "doc_lang"], how="left")
    return out.with_columns((pl.col("cq") == pl.col("cd")).cast(pl.Float64)
                            .alias("same_cluster")).drop("cq", "cd")


def regression_frame(df: pl.DataFrame, value: str, distances: pl.DataFrame,
                     clusters: pl.DataFrame) -> pl.DataFrame:
    """Seed-averaged rows (query × doc language × arm) with distance and same_cluster."""
    d = _valid(df, value)
    if "arm" not in d.columns:
        d = d.with_columns(pl.lit("all").alias("arm"))
    d = _same_cluster(d, clusters)
    d = with_units(d).join(distances, on=["query_lang", "doc_lang"], how="inner")
    if d.height == 0:
        raise UsageError("--regress: no language distances for these language pairs "
                         "(language_distances is empty, or only the 'multi' setting matched)")
    return (d.group_by(["unit", "query_lang", "doc_lang", "arm"])
            .agg(pl.col(value).mean().alias("y"), pl.col("distance").first(),
                 pl.col("same_cluster").mean())
            .sort(["unit", "doc_lang", "arm"]))


def _independent_columns(X: np.ndarray, names: Sequence[str]) -> list[int]:
    """Indices of the columns kept, in order: a column is dropped when it is constant (other
    than the intercept) or a linear combination of the columns kept before it (e.g.
    ``same_cluster`` when clusters are exactly the languages at distance 0)."""
    keep = [0]
    scale = np.sqrt((X * X).sum(axis=0)) + 1e-300
    gram = (X / scale).T @ (X / scale)  # k × k: cheap however many rows
    for j in range(1, X.shape[1]):
        if np.ptp(X[:, j]) == 0:
            continue
        idx = [*keep, j]
        eig = np.linalg.eigvalsh(gram[np.ix_(idx, idx)])
        if eig[0] > 1e-10 * eig[-1]:
            keep.append(j)
    return keep


@dataclass(frozen=True)
class Design:
    """The regression's design matrix: ``X`` (kept columns), their ``names``, response ``y``,
    cluster ``groups`` (the question: its translations share one group) and the ``dropped`` (constant or collinear) term names."""

    X: np.ndarray
    names: list[str]
    y: np.ndarray
    groups: np.ndarray
    dropped: list[str]


def _design(frame: pl.DataFrame, arms: list[str]) -> Design:
    n = frame.height
    cols: list[np.ndarray] = [np.ones(n)]
    names = ["intercept"]
    arm = frame["arm"].to_numpy()
    dist = frame["distance"].to_numpy().astype(np.float64)
    for a in arms[1:]:
        cols.append((arm == a).astype(np.float64))
        names.append(f"arm[{a}]")
    cols.append(dist)
    names.append("distance")
    for a in arms[1:]:
        cols.append((arm == a).astype(np.float64) * dist)
        names.append(f"arm[{a}]:distance")
    same = frame["same_cluster"].to_numpy()
    if not np.all(np.isnan(same.astype(np.float64))):
        cols.append(np.nan_to_num(same.astype(np.float64)))
        names.append("same_cluster")
    for col in ("query_lang", "doc_lang"):
        values = frame[col].to_numpy()
        for level in sorted(set(values.tolist()))[1:]:
            cols.append((values == level).astype(np.float64))
            names.append(f"{col}[{level}]")
    X = np.column_stack(cols)
    keep = _independent_columns(X, names)
    dropped = [names[j] for j in range(X.shape[1]) if j not in set(keep)]
    return Design(X[:, keep], [names[j] for j in keep],
                  frame["y"].to_numpy().astype(np.float64), frame["unit"].to_numpy(), dropped)


@dataclass(frozen=True)
class RegressionResult:
    """A fitted regression: the coefficient ``table`` (see :func:`regress`), the terms
    ``dropped`` as constant or collinear, the number of rows and of queries, and the arms
    (baseline first)."""

    table: pl.DataFrame
    dropped: list[str]
    n_rows: int
    n_queries: int
    arms: list[str]


def fit_regression(df: pl.DataFrame, value: str, distances: pl.DataFrame,
                   clusters: pl.DataFrame, baseline: str | None = None, level: float = 0.95,
                   mixed: bool = True, fixed_effects: bool = False) -> RegressionResult:
    """:func:`regress` with what was left out of the model (see :class:`RegressionResult`).

    Terms that are constant or a linear combination of earlier terms are dropped before
    fitting (first the arm and distance terms are kept, then ``same_cluster``, then the
    language fixed effects), so the fit never fails on a singular design.
    """
    import statsmodels.api as sm

    frame = regression_frame(df, value, distances, clusters)
    arms = arm_order(frame["arm"].unique().to_list(), baseline)
    design = _design(frame, arms)
    X, names, y, groups = design.X, design.names, design.y, design.groups
    if X.shape[0] <= X.shape[1]:
        raise UsageError(f"--regress: too few rows ({X.shape[0]}) for {X.shape[1]} terms")
    alpha = 1.0 - level
    rows: list[dict[str, object]] = []

    def add(model: str, params: np.ndarray, bse: np.ndarray, stat: np.ndarray,
            p: np.ndarray, ci: np.ndarray) -> None:
        for j, name in enumerate(names):
            if not fixed_effects and (name.startswith("query_lang[")
                                      or name.startswith("doc_lang[")):
                continue
            rows.append({"model": model, "term": name, "coef": float(params[j]),
                         "std_err": float(bse[j]), "stat": float(stat[j]), "p": float(p[j]),
                         "ci_low": float(ci[j, 0]), "ci_high": float(ci[j, 1])})

    ols = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": groups})
    add("ols_cluster", ols.params, ols.bse, ols.tvalues, ols.pvalues,
        np.asarray(ols.conf_int(alpha)))
    if mixed:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mm = sm.MixedLM(y, X, groups=groups).fit(reml=True)
        k = X.shape[1]
        add("mixedlm", np.asarray(mm.fe_params), np.asarray(mm.bse_fe),
            np.asarray(mm.tvalues)[:k], np.asarray(mm.pvalues)[:k],
            np.asarray(mm.conf_int(alpha))[:k])
    schema = {"model": pl.String, "term": pl.String, "coef": pl.Float64, "std_err": pl.Float64,
              "stat": pl.Float64, "p": pl.Float64, "ci_low": pl.Float64, "ci_high": pl.Float64}
    return RegressionResult(pl.DataFrame(rows, schema=schema), design.dropped, frame.height,
                            int(np.unique(groups).size), arms)


def regress(df: pl.DataFrame, value: str, distances: pl.DataFrame, clusters: pl.DataFrame,
            baseline: str | None = None, level: float = 0.95,
            mixed: bool = True, fixed_effects: bool = False) -> pl.DataFrame:
    """Per-query metric ~ arm × distance + same_cluster + query/doc-language fixed effects.

    Fits OLS with errors clustered by question (``dataset, split, query_id``: a question's
    translations are one cluster) and (if ``mixed``) a linear mixed model with a random
    intercept per question. Returns a coefficient table: ``model, term, coef, std_err,
    stat, p, ci_low, ci_high`` (fixed-effect terms only if ``fixed_effects``; terms dropped as
    constant or collinear are absent, see :func:`fit_regression`).
    """
    return fit_regression(df, value, distances, clusters, baseline, level, mixed,
                          fixed_effects).table
