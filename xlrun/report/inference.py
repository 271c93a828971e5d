"""The inferential model behind every interval and p-value of a report.

A comparison of two arms in a cell is a matrix of values: questions × training runs per arm
(a question's translations, document languages and settings in the cell already averaged, so
a question counts once). Both the questions and the runs are samples: another benchmark and
another seed would give other numbers. The model treats both as random, crossed::

    y[arm, run, q] = mu[arm] + u[arm, run] + v[q] + w[arm, q] + e[arm, run, q]

(``u`` the run's (seed's) offset, ``v`` the question's difficulty, which cancels in a delta,
``w`` the arm × question interaction, ``e`` noise). The delta ``mean(arm) − mean(baseline)``
over the common questions and runs has variance ``σ²_seed/S + σ²_q/Q + σ²_res/(S·Q)``; it is
estimated from the two-way ANOVA mean squares (method of moments), with a t reference on
Satterthwaite's degrees of freedom. The interval and the p-value come from the same t
statistic, so an interval excludes 0 exactly when ``p < 1 − level``.

*Paired seeds* (both arms ran the same seeds): ``D = A − B`` (questions × seeds) and::

    var(mean D) = [MS_seed + max(MS_q − MS_res, 0)] / (S·Q)

*Unpaired runs*: with ``d_q`` the per-question difference of the arms' run means::

    var = Σ_arm MS_run,arm / (S_arm·Q) + max(var_q(d_q)/Q − Σ_arm MS_res,arm / (S_arm·Q), 0)

The seed term is never dropped (with 3–5 seeds a seed component estimated below zero is
noise, and dropping it would lend the test the questions' degrees of freedom); without a
positive question component the test is the paired t-test on per-seed deltas (Welch's test
on per-run means when unpaired). See ``docs/statistics.md`` for the derivation and the
calibration.

All functions here are pure numpy (the callers aggregate polars frames into matrices).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import chdtri, stdtr, stdtrit  # t CDF and inverse, chi² inverse survival

BASELINE_MARK = "baseline"
"""The ``mark`` of the baseline arm's rows in a comparison (they have no test)."""

_TIE = 1e-12
"""Relative spread below which values count as equal (no variance: no test)."""

_BLOCK_ELEMENTS = 2_000_000
"""Random draws held at once by the sign-flip loop (bounds its memory)."""


@dataclass(frozen=True)
class InferenceConfig:
    """Settings of the tests (a fixed ``seed`` makes the sign-flip test reproducible)."""

    level: float = 0.95
    """Confidence level of the intervals (and ``1 − level`` the test's α)."""
    test: str = "seed"
    """The test (:data:`xlrun.report.statistics.TESTS`): ``seed``, the crossed seeds ×
    questions model (intervals, p, Holm and marks), or ``query``, the question-only paired
    t-test on seed-averaged values, which ignores seed variance (labelled as such), with the
    sign-flip p beside it."""
    n_permutations: int = 10_000
    """Sign flips of the question-only randomization test (``test="query"``)."""
    seed: int = 0
    """Seed of the sign flips."""


@dataclass(frozen=True)
class Estimate:
    """One estimate with its interval and test.

    ``estimate`` is the delta (or the mean); ``se`` its standard error, ``df`` the t
    reference's degrees of freedom, ``ci_low``/``ci_high`` the interval at the requested level
    and ``p`` the two-sided p of ``estimate = 0``: all from one t statistic, all ``None`` when
    the variance is unknown (one run or one question) or zero. ``design`` says what was
    compared (``paired``, ``unpaired``, ``one run``, ``questions``); ``n_questions`` and
    ``n_runs`` (per arm: ``(arm, baseline)``; one entry for a mean) what it used; ``components``
    the variance of the estimate by source (``seed``: the runs' term, which includes the
    residual; ``question``: the arm × question term; a regression adds ``pairs``)."""

    estimate: float | None
    se: float | None = None
    df: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p: float | None = None
    design: str = ""
    n_questions: int = 0
    n_runs: tuple[int, ...] = ()
    components: dict[str, float] = field(default_factory=dict)


SHARE_CONFIDENCE = 0.7
"""Satterthwaite's degrees of freedom take a *bounded* mean square's share at this upper
confidence bound (see :func:`satterthwaite_df`)."""


@dataclass(frozen=True)
class MeanSquare:
    """A mean square with its degrees of freedom (a term of a Satterthwaite sum).

    ``bounded`` marks a lone mean square with few degrees of freedom beside well-estimated
    ones (the runs' term of a paired delta or of one arm's mean): its share is taken at its
    upper confidence bound when the degrees of freedom are computed."""

    value: float
    df: float
    bounded: bool = False


@dataclass(frozen=True)
class Variance:
    """A variance estimate written as ``Σ coef · MS`` (independent mean squares), which gives
    its Satterthwaite degrees of freedom, and the share of each named source."""

    terms: tuple[tuple[float, MeanSquare], ...]
    components: dict[str, float] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """``Σ coef · MS``."""
        return float(sum(c * ms.value for c, ms in self.terms))

    @property
    def df(self) -> float:
        """Satterthwaite: ``(Σ c·MS)² / Σ (c·MS)²/df`` (``inf`` when no term has a finite
        df; ``nan`` for a zero variance)."""
        return satterthwaite_df(self.terms)

    def __add__(self, other: Variance) -> Variance:
        comps = dict(self.components)
        for k, v in other.components.items():
            comps[k] = comps.get(k, 0.0) + v
        return Variance(self.terms + other.terms, comps)


def _df_share(c: float, ms: MeanSquare) -> float:
    """``c·MS`` as the degrees of freedom see it: a bounded positive term at its
    :data:`SHARE_CONFIDENCE` upper confidence bound ``c·MS·df/χ²_df(1 − γ)``."""
    if ms.bounded and c > 0 and 0 < ms.df < math.inf:
        return c * ms.value * ms.df / float(chdtri(ms.df, SHARE_CONFIDENCE))
    return c * ms.value


def satterthwaite_df(terms: Sequence[tuple[float, MeanSquare]]) -> float:
    """Satterthwaite's degrees of freedom of ``Σ c_i MS_i`` for independent mean squares:
    ``(Σ s_i)² / Σ s_i²/df_i`` with ``s_i = c_i MS_i``, at least the smallest df of a positive
    term; a *bounded* term (:class:`MeanSquare`) enters with its share at its
    :data:`SHARE_CONFIDENCE` upper confidence bound, ``s_i = c_i MS_i·df_i/χ²_{df_i}(1 − γ)``.

    Why bounded: with a lone few-df mean square (the seeds' term, 2 df for 3 seeds) beside a
    well-estimated one (questions), the plain formula lends the test the large df exactly
    when the few-df mean square happens to be small, which is when the variance is
    underestimated: up to 12 % false positives at α = 0.05 with 1 df, 7.7 % with 2, 6.2 %
    with 3. Taking its share at a 70 % upper confidence bound (a smaller df, as plausible for
    the data as the point estimate is) keeps the level at ≤ 5.6 % for 2–4 df and ≤ 6.8 % for
    1 df whatever the shares (docs/statistics.md); the variance itself is unchanged. A term
    alone keeps its own df.

    With a negative term (``− MS_res``) the formula can fall below 1 when the terms nearly
    cancel, which would give absurd intervals; for positive terms alone it never falls below
    the smallest df, so that is the floor."""
    total = sum(c * ms.value for c, ms in terms)
    shares = [(_df_share(c, ms), ms.df) for c, ms in terms]
    denom = sum(s * s / df for s, df in shares if df > 0 and s)
    if total <= 0:
        return float("nan")
    if denom <= 0:
        return float("inf")
    num = sum(s for s, _ in shares)
    floor = min((ms.df for c, ms in terms if c > 0 and ms.value > 0 and ms.df > 0),
                default=0.0)
    return float(max(num * num / denom, floor))


def two_way(M: np.ndarray) -> tuple[MeanSquare, MeanSquare, MeanSquare]:
    """Mean squares of rows, columns and residual of a complete two-way table
    (``rows × cols``, one value per cell, no NaN)."""
    r, c = M.shape
    grand = M.mean()
    rm = M.mean(axis=1)
    cm = M.mean(axis=0)
    ss_rows = c * float(((rm - grand) ** 2).sum())
    ss_cols = r * float(((cm - grand) ** 2).sum())
    resid = M - rm[:, None] - cm[None, :] + grand
    ss_res = float((resid * resid).sum())
    df_res = (r - 1) * (c - 1)
    return (MeanSquare(ss_rows / (r - 1) if r > 1 else float("nan"), r - 1),
            MeanSquare(ss_cols / (c - 1) if c > 1 else float("nan"), c - 1),
            MeanSquare(ss_res / df_res if df_res else float("nan"), df_res))


def crossed_variance(M: np.ndarray) -> Variance:
    """Variance of the grand mean of ``M`` (questions × runs), questions and runs random and
    crossed: ``[MS_run + max(MS_q − MS_res, 0)] / (Q·S)``.

    ``MS_run/(Q·S)`` estimates ``σ²_run/S + σ²_res/(Q·S)`` and is never dropped, so the
    run-to-run variation always counts with its ``S − 1`` degrees of freedom (with few seeds,
    setting a seed component estimated below zero to zero would claim the question-level
    degrees of freedom for it); the question component ``σ²_q/Q`` is added when its estimate
    is positive. This is the variance of a paired delta (``M`` = per-seed differences) and of
    one arm's mean. With one run it is the question-level ``MS_q/(Q·S)`` alone (the seed
    variance is unknown: callers decide whether that is acceptable)."""
    q, s = M.shape
    ms_q, ms_run, ms_res = two_way(M)
    n = q * s
    if s == 1:
        return Variance(((1.0 / n, ms_q),), {"question": ms_q.value / n})
    terms: list[tuple[float, MeanSquare]] = [
        (1.0 / n, MeanSquare(ms_run.value, ms_run.df, bounded=True))]
    comps = {"seed": ms_run.value / n, "question": 0.0}
    if q > 1 and ms_q.value > ms_res.value:
        terms += [(1.0 / n, ms_q), (-1.0 / n, ms_res)]
        comps["question"] = (ms_q.value - ms_res.value) / n
    return Variance(tuple(terms), comps)


def unpaired_variance(A: np.ndarray, B: np.ndarray) -> Variance:
    """Variance of ``mean(A) − mean(B)`` for matrices questions × runs (the same questions,
    different runs, at least 2 each): each arm's run variance (Welch on the per-run means)
    plus the arm × question interaction when its estimate is positive::

        Σ_arm MS_run,arm/(S_arm·Q) + max(var_q(d_q)/Q − Σ_arm MS_res,arm/(S_arm·Q), 0)

    with ``d_q`` the per-question difference of the arms' run means."""
    q = A.shape[0]
    d = A.mean(axis=1) - B.mean(axis=1)
    ms_d = MeanSquare(float(d.var(ddof=1)) if q > 1 else float("nan"), q - 1)
    terms: list[tuple[float, MeanSquare]] = []
    residuals: list[tuple[float, MeanSquare]] = []
    comps = {"seed": 0.0, "question": 0.0}
    for X in (A, B):
        c = 1.0 / (X.shape[1] * q)
        _, ms_run, ms_res = two_way(X)
        terms.append((c, ms_run))
        comps["seed"] += c * ms_run.value
        residuals.append((c, ms_res))
    res_part = sum(c * ms.value for c, ms in residuals)
    if q > 1 and ms_d.value / q > res_part:
        terms.append((1.0 / q, ms_d))
        terms += [(-c, ms) for c, ms in residuals]
        comps["question"] = ms_d.value / q - res_part
    return Variance(tuple(terms), comps)


def t_estimate(estimate: float, var: Variance | None, level: float, *, design: str = "",
               n_questions: int = 0, n_runs: tuple[int, ...] = (),
               scale: float = 1.0) -> Estimate:
    """``estimate`` with its t interval and two-sided p (one t statistic for both).

    ``var`` ``None``, zero or not finite gives an estimate without interval and test."""
    base = Estimate(float(estimate), design=design, n_questions=n_questions, n_runs=n_runs)
    if var is None:
        return base
    v = var.value
    df = var.df
    if not (v > 0 and math.isfinite(v)) or not df > 0 or v <= (_TIE * scale) ** 2:
        return Estimate(float(estimate), design=design, n_questions=n_questions,
                        n_runs=n_runs, components=dict(var.components))

    se = math.sqrt(v)
    t = estimate / se
    p = float(2.0 * stdtr(df, -abs(t)))
    half = float(stdtrit(df, 0.5 + level / 2.0)) * se
    return Estimate(float(estimate), se, float(df), float(estimate - half),
                    float(estimate + half), p, design, n_questions, n_runs,
                    dict(var.components))


def delta_variance(A: np.ndarray, B: np.ndarray, paired: bool) -> Variance | None:
    """The variance of ``mean(A) − mean(B)`` (see :func:`delta_estimate`); ``None`` when it
    cannot be estimated (fewer than 2 questions, or an arm with fewer than 2 runs)."""
    if min(A.shape[1], B.shape[1]) < 2 or A.shape[0] < 2:
        return None
    return crossed_variance(A - B) if paired else unpaired_variance(A, B)


def delta_estimate(A: np.ndarray, B: np.ndarray, paired: bool, level: float = 0.95) -> Estimate:
    """The delta ``mean(A) − mean(B)`` of two complete matrices questions × runs (the same
    questions in the same order; with ``paired`` the same seeds in the same column order).

    Needs at least 2 questions and 2 runs per arm; otherwise the delta comes without interval
    and test (``design`` ``one run`` or ``one question``)."""
    q = A.shape[0]
    runs = (A.shape[1], B.shape[1])
    delta = float(A.mean() - B.mean())
    if min(runs) < 2:
        return Estimate(delta, design="one run", n_questions=q, n_runs=runs)
    if q < 2:
        return Estimate(delta, design="one question", n_questions=q, n_runs=runs)
    scale = 1.0 + float(max(np.abs(A).max(), np.abs(B).max()))
    return t_estimate(delta, delta_variance(A, B, paired), level,
                      design="paired" if paired else "unpaired", n_questions=q, n_runs=runs,
                      scale=scale)


def mean_estimate(Y: np.ndarray, level: float = 0.95) -> Estimate:
    """The mean of a complete matrix questions × runs, questions and runs random (one run:
    questions only, ``design`` ``one run``)."""
    q, s = Y.shape
    mean = float(Y.mean())
    if q < 2:
        return Estimate(mean, design="one question", n_questions=q, n_runs=(s,))
    scale = 1.0 + float(np.abs(Y).max(initial=0.0))
    return t_estimate(mean, crossed_variance(Y), level, design="one run" if s == 1 else "runs",
                      n_questions=q, n_runs=(s,), scale=scale)


def question_estimate(d: np.ndarray, level: float = 0.95) -> Estimate:
    """The question-only paired t interval and p of per-question differences ``d`` (seeds
    averaged first: it ignores seed variance)."""
    d = np.asarray(d, dtype=np.float64)
    if d.size < 2:
        return Estimate(float(d.mean()) if d.size else None, design="questions",
                        n_questions=int(d.size))
    ms = MeanSquare(float(d.var(ddof=1)), d.size - 1)
    var = Variance(((1.0 / d.size, ms),), {"question": ms.value / d.size})
    return t_estimate(float(d.mean()), var, level, design="questions", n_questions=d.size,
                      scale=1.0 + float(np.abs(d).max()))


# ----------------------------------------------------------------------- multiple testing


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


# ----------------------------------------------------------------------- sign flips


def _block_rows(n: int, total: int) -> int:
    """Resamples per block: at most 500 and about :data:`_BLOCK_ELEMENTS` draws."""
    return max(1, min(500, total, _BLOCK_ELEMENTS // max(n, 1)))


def _sign_blocks(n: int, n_permutations: int, seed: int) -> Iterator[np.ndarray]:
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


def sign_flip_batch(D: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """Two-sided sign-flip p of each column of ``D`` (units × tests), all with the same
    flips: ``(1 + #{|sum*| >= |sum|}) / (1 + n_permutations)``."""
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


def sign_flip_pvalue(diffs: np.ndarray, n_permutations: int = 10_000,
                     seed: int = 0) -> float | None:
    """Two-sided p of the question-level randomization test (random sign flips of the
    differences); ``None`` for fewer than 2 differences."""
    d = np.asarray(diffs, dtype=np.float64)
    if d.size < 2:
        return None
    return float(sign_flip_batch(d[:, None], n_permutations, seed)[0])


def sign_flip_many(diffs: Sequence[np.ndarray], n_permutations: int,
                   seed: int) -> list[float | None]:
    """:func:`sign_flip_pvalue` of each array, arrays of equal length tested together (one
    matrix product), which keeps a 100-cell report fast."""
    out: list[float | None] = [None] * len(diffs)
    by_n: dict[int, list[int]] = {}
    for i, d in enumerate(diffs):
        if len(d) >= 2:
            by_n.setdefault(len(d), []).append(i)
    for members in by_n.values():
        for start in range(0, len(members), 256):
            chunk = members[start:start + 256]
            D = np.column_stack([np.asarray(diffs[i], dtype=np.float64) for i in chunk])
            for i, p in zip(chunk, sign_flip_batch(D, n_permutations, seed), strict=True):
                out[i] = float(p)
    return out
