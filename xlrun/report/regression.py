"""``--regress``: metric ~ arm × language distance + same_cluster, with query- and
document-language effects, as a two-stage model whose language-pair terms are judged against
how much *unordered* language pairs differ.

**Stage 1** (per run and language pair): the mean over the pair's questions that every
analysed run has (no imputation; pairs that some run lacks are left out, with a note). The
arm's value on a pair is the mean over its runs.

**Stage 2** (rows: arm × ordered pair): ordinary least squares on those means with the design
``intercept, arm[a], query_lang[x], doc_lang[y], arm[a]:query_lang[x], arm[a]:doc_lang[y],
distance, arm[a]:distance, same_cluster`` (language effects in sum-to-zero coding, fitted but
hidden). The errors have the structure of language pairs (:func:`random_structure`):

* a random **unordered-pair** effect shared by ``x→y`` and ``y→x`` and by the arms (an
  affinity of the two languages: distance and same_cluster are symmetric too),
* a random **direction** effect (what ``x→y`` has that ``y→x`` has not),
* the same two for each arm's deviation (arm × pair), which also carry the seed × pair and
  question noise of the pair means,

and the query- and document-language main effects (one language easier as a query or as a
target, for every arm or for one) are fixed effects, so they are removed exactly. The
variance of each coefficient is estimated by the method of moments from the residual's strata
(:mod:`xlrun.report.strata`): ``distance`` and ``same_cluster`` rest on how much unordered
pairs differ beyond the languages' own effects, with degrees of freedom from the number of
unordered pairs less the languages and terms; ``arm[a]:distance`` on how much the arms'
differences vary between unordered pairs. A training run's offset is common to all its pairs,
so it is invisible to these strata: ``arm[a]`` (and the intercept) add the variance of the
arm's delta (the baseline's mean) over seeds and questions from the crossed model of
:mod:`xlrun.report.inference`, computed on the same runs and questions. Every interval and p
comes from one t statistic on Satterthwaite's df.

**Language-level covariates** (:class:`Covariate` with ``level`` ``query_lang`` or
``doc_lang``: a property of the query or document language, such as its distance to the
training languages) cannot sit beside fixed effects of their own language side. They are
judged in a second fit of the same model where that side's languages are random effects
(query or document language, shared and per arm) instead, so their degrees of freedom come
from the number of languages. Terms that are constant or collinear are left out before fitting
and reported (see :class:`RegressionResult`).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from xlrun.errors import UsageError
from xlrun.report import strata
from xlrun.report.cells import arm_order, valid, with_units
from xlrun.report.compare import select_runs
from xlrun.report.inference import (
    Estimate,
    MeanSquare,
    Variance,
    crossed_variance,
    delta_variance,
    t_estimate,
)

COLUMNS: tuple[str, ...] = ("term", "coef", "std_err", "df", "stat", "p", "ci_low", "ci_high",
                            "against")
"""Columns of the coefficient table."""

LEVELS: tuple[str, ...] = ("pair", "query_lang", "doc_lang")
"""Where a covariate varies: between language pairs within the languages (``pair``), or only
between query (``query_lang``) or document languages (``doc_lang``)."""

PAIRS = "pairs"
"""The stratum of pair terms: how much unordered pairs (arm means) differ."""
ARM_PAIRS = "arm × pair"
"""The stratum of arm × pair terms: how much the arms' differences vary between unordered
pairs."""


@dataclass(frozen=True)
class Covariate:
    """A covariate of the regression beyond distance and same_cluster (the way later terms
    join: a pair-level one such as a second distance, or a language-level one such as a
    language's distance to the training languages).

    ``values`` is arms × pairs (one row per arm in the order of :attr:`PairData.arm_of_run`'s
    sorted arms, or a single row shared by all arms); ``level`` one of :data:`LEVELS`;
    ``by_arm`` also fits ``arm[a]:name``."""

    name: str
    level: str
    values: np.ndarray
    by_arm: bool = False


@dataclass(frozen=True)
class PairData:
    """Stage 1: what the regression is fitted on.

    ``means`` is runs × pairs (each run's mean over the pair's common questions), ``pooled``
    questions × runs (each run's value per question averaged over the kept pairs, for the
    arm-level variance), ``same_cluster`` runs × pairs (NaN when no clusters are stored);
    ``covariates`` further terms (:class:`Covariate`)."""

    pairs: list[tuple[str, str]]
    runs: list[int]
    arm_of_run: list[str]
    seed_of_run: list[object]
    means: np.ndarray
    pooled: np.ndarray
    distance: np.ndarray
    same_cluster: np.ndarray
    n_questions: int
    dropped_pairs: list[tuple[str, str]] = field(default_factory=list)
    lost_questions: int = 0
    covariates: tuple[Covariate, ...] = ()


@dataclass(frozen=True)
class Term:
    """A column of the design: its name, kind and values (rows arm-major, ``arm × pair``)."""

    name: str
    kind: str
    """``intercept``, ``arm``, ``fixed`` (language effects, also per arm), ``distance``,
    ``interaction`` (``arm[a]:distance``), ``same_cluster``, ``covariate`` or
    ``covariate_interaction`` (``arm[a]:NAME``)."""
    values: np.ndarray
    level: str = "pair"


@dataclass(frozen=True)
class RegressionResult:
    """A fitted two-stage regression.

    ``table`` has :data:`COLUMNS` (fixed effects only if asked); ``terms`` the names kept;
    ``dropped`` ``(term, why)`` for each term left out (constant, or collinear with the terms
    kept before it); ``notes`` what else the reader must know (pairs or questions left out,
    untestable terms, unpaired arm terms, the units of the df); ``df_between``/``df_within``
    the residual degrees of freedom between unordered pairs (arm means) and of the arms'
    differences between unordered pairs; ``df_strata`` every stratum's residual df;
    ``n_unordered_pairs`` and ``n_languages`` the units they come from."""

    table: pl.DataFrame
    terms: list[str]
    dropped: list[tuple[str, str]]
    notes: list[str]
    n_pairs: int
    n_questions: int
    n_runs: int
    arms: list[str]
    df_between: int
    df_within: int
    n_unordered_pairs: int = 0
    n_languages: int = 0
    df_strata: dict[str, int] = field(default_factory=dict)


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


def pair_data(df: pl.DataFrame, value: str, distances: pl.DataFrame,
              clusters: pl.DataFrame) -> PairData:
    """Stage 1 of the regression (see the module docstring).

    Raises:
        UsageError: no language pair has a distance, or none is covered by every run.
    """
    d = valid(df, value)
    if "arm" not in d.columns:
        d = d.with_columns(pl.lit("all").alias("arm"))
    if "seed" not in d.columns:
        d = d.with_columns(pl.lit(None, dtype=pl.Int64).alias("seed"))
    d = with_units(d).join(distances, on=["query_lang", "doc_lang"], how="inner")
    if d.height == 0:
        raise UsageError("--regress: no language distances for these language pairs "
                         "(language_distances is empty, or only the 'multi' setting matched)")
    d = _same_cluster(d, clusters)
    pair_key = ["query_lang", "doc_lang"]
    per = d.group_by(["run_id", *pair_key, "unit"]).agg(pl.col(value).mean())
    run_info = d.select("run_id", "arm", "seed").unique(subset="run_id").sort("run_id")
    runs = run_info["run_id"].to_list()
    n_runs = len(runs)
    covered = per.group_by(pair_key).agg(pl.col("run_id").n_unique().alias("n"))
    all_pairs = sorted(covered.select(pair_key).iter_rows())
    pairs = sorted(covered.filter(pl.col("n") == n_runs).select(pair_key).iter_rows())
    if not pairs:
        raise UsageError("--regress: no language pair has results from every analysed run")
    dropped_pairs = [p for p in all_pairs if p not in set(pairs)]
    keep_pairs = pl.DataFrame(pairs, schema=pair_key, orient="row")
    per = per.join(keep_pairs, on=pair_key, how="semi")
    full = (per.group_by([*pair_key, "unit"]).agg(pl.col("run_id").n_unique().alias("n"))
            .filter(pl.col("n") == n_runs).drop("n"))
    lost = per.select(*pair_key, "unit").unique().height - full.height
    per = per.join(full, on=[*pair_key, "unit"], how="semi")
    means = (per.group_by(["run_id", *pair_key]).agg(pl.col(value).mean())
             .pivot(on="run_id", index=pair_key, values=value).sort(pair_key))
    M = means.select([str(r) for r in runs]).to_numpy().T.astype(np.float64)
    pooled = (per.group_by(["run_id", "unit"]).agg(pl.col(value).mean())
              .pivot(on="run_id", index="unit", values=value).sort("unit"))
    Y = pooled.select([str(r) for r in runs]).to_numpy().astype(np.float64)
    dist = (keep_pairs.join(d.select(*pair_key, "distance").unique(subset=pair_key),
                            on=pair_key, how="left").sort(pair_key)["distance"].to_numpy())
    sc = (d.group_by(["run_id", *pair_key]).agg(pl.col("same_cluster").mean())
          .pivot(on="run_id", index=pair_key, values="same_cluster"))
    sc = keep_pairs.join(sc, on=pair_key, how="left").sort(pair_key)
    SC = sc.select([str(r) for r in runs]).to_numpy().T.astype(np.float64)
    return PairData(pairs, runs, run_info["arm"].to_list(), run_info["seed"].to_list(), M, Y,
                    dist.astype(np.float64), SC, Y.shape[0], dropped_pairs, lost)


def independent_columns(X: np.ndarray) -> tuple[list[int], list[int]]:
    """Indices of the columns kept, in order, and of the constant ones (other than the
    first, the intercept): a column is dropped when it is constant or a linear combination of
    the columns kept before it (e.g. ``same_cluster`` when clusters are exactly the languages
    at distance 0)."""
    keep = [0]
    constant = []
    scale = np.sqrt((X * X).sum(axis=0)) + 1e-300
    gram = (X / scale).T @ (X / scale)  # k × k: cheap however many rows
    for j in range(1, X.shape[1]):
        if np.ptp(X[:, j]) == 0:
            constant.append(j)
            continue
        idx = [*keep, j]
        eig = np.linalg.eigvalsh(gram[np.ix_(idx, idx)])
        if eig[0] > 1e-10 * eig[-1]:
            keep.append(j)
    return keep, constant


def unordered(pair: tuple[str, str]) -> tuple[str, str]:
    """A language pair without its direction: ``x→y`` and ``y→x`` are one unordered pair."""
    return (pair[0], pair[1]) if pair[0] <= pair[1] else (pair[1], pair[0])


_SIDE_NAMES = {"query_lang": "query languages", "doc_lang": "document languages"}


def random_structure(pairs: Sequence[tuple[str, str]], n_arms: int,
                     random_sides: Sequence[str] = ()) -> list[strata.Block]:
    """The random components and strata of the stage-2 rows, in the arms' orthonormal basis
    (:func:`~xlrun.report.strata.arm_basis`): one block for the arms' mean over the pairs,
    one per contrast of the arms (identical blocks).

    Components: the unordered pair (shared by both directions and all arms), the direction
    (the ordered pair's own part, shared by the arms), both again per arm (``arm × …``), and
    for each side in ``random_sides`` (``query_lang``, ``doc_lang``) its language (shared
    and per arm). Strata: the pair space split into the grand mean, the random sides'
    languages, the unordered pairs beyond them (``pairs``) and the directions (``pair
    direction``), in the arms' mean and in their contrasts (``arm``, ``arm × …``)."""
    P, A = len(pairs), n_arms
    Zu = strata.indicator([unordered(p) for p in pairs])
    side_Z = {side: strata.indicator([p[0 if side == "query_lang" else 1] for p in pairs])
              for side in random_sides}
    spaces = [("mean", np.ones((P, 1)))]
    spaces += [(_SIDE_NAMES[side], Z) for side, Z in side_Z.items()]
    spaces += [(PAIRS, Zu), ("pair direction", np.zeros((P, 0)))]
    pair_strata = strata.nested_strata(spaces, P)
    shared = {"pair": Zu @ Zu.T, **{_SIDE_NAMES[s][:-1]: Z @ Z.T for s, Z in side_Z.items()}}
    eye = np.eye(P)
    if A == 1:
        blocks = [strata.Block(P, {**shared, "residual": eye}, dict(pair_strata))]
    else:
        per_arm = {f"arm × {name}": K for name, K in shared.items()}
        mean_K = {**{name: A * K for name, K in shared.items()}, "direction": A * eye,
                  **per_arm, "residual": eye}
        contrast_P = {("arm" if name == "mean" else
                       ARM_PAIRS if name == PAIRS else f"arm × {name}"): Pm
                      for name, Pm in pair_strata}
        contrast = strata.Block(P, {**per_arm, "residual": eye}, contrast_P, key="contrast")
        blocks = [strata.Block(P, mean_K, dict(pair_strata)), *[contrast] * (A - 1)]
    return _distinct_components(blocks)


def _distinct_components(blocks: list[strata.Block]) -> list[strata.Block]:
    """``blocks`` without components that repeat an earlier one in every block (no pair with
    both directions: the unordered pair is the ordered one)."""
    names = list(dict.fromkeys(k for b in blocks for k in b.K))
    kept: list[str] = []
    for name in names:
        same = any(all((b.K.get(name) is None) == (b.K.get(other) is None)
                       and (b.K.get(name) is None
                            or np.array_equal(b.K[name], b.K[other])) for b in blocks)
                   for other in kept)
        if not same:
            kept.append(name)
    return [strata.Block(b.size, {k: v for k, v in b.K.items() if k in kept}, b.P, b.key)
            for b in blocks]


def _effect_coded(values: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """Sum-to-zero columns of a language factor: one per level but the first, +1 on it and
    −1 on the first (so the intercept is the average over languages, not one language)."""
    arr = np.array(values)
    levels = sorted(set(values))
    return [(lv, (arr == lv).astype(np.float64) - (arr == levels[0]).astype(np.float64))
            for lv in levels[1:]]


def design(data: PairData, arms: list[str], random_sides: Sequence[str] = ()) -> list[Term]:
    """The stage-2 columns (rows: arm-major, ``arm × pair``), before dropping any: in the
    order terms are kept (intercept, arms, language effects, arm × language effects,
    distance, arm × distance, same_cluster, covariates); the language effects of
    ``random_sides`` are left out (they are random in that fit) and only the covariates that
    the fit judges are added (pair-level ones, and the language-level ones of
    ``random_sides``)."""
    A, P = len(arms), len(data.pairs)
    arm_rows = np.repeat(np.arange(A), P)
    dist = np.tile(data.distance, A)
    arm_cols = [(a, (arm_rows == i).astype(np.float64)) for i, a in enumerate(arms)][1:]
    terms = [Term("intercept", "intercept", np.ones(A * P))]
    terms += [Term(f"arm[{a}]", "arm", col) for a, col in arm_cols]
    fixed = [(f"{side}[{lv}]", np.tile(v, A))
             for pos, side in enumerate(("query_lang", "doc_lang")) if side not in random_sides
             for lv, v in _effect_coded([p[pos] for p in data.pairs])]
    terms += [Term(name, "fixed", v) for name, v in fixed]
    terms += [Term(f"arm[{a}]:{name}", "fixed", col * v) for a, col in arm_cols
              for name, v in fixed]
    terms.append(Term("distance", "distance", dist))
    terms += [Term(f"arm[{a}]:distance", "interaction", col * dist) for a, col in arm_cols]
    if not np.all(np.isnan(data.same_cluster)):
        with warnings.catch_warnings():  # an unclustered arm's column is all NaN → 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            sc = np.vstack([np.nanmean(data.same_cluster[_runs_of(data, a)], axis=0)
                            for a in arms])
        terms.append(Term("same_cluster", "same_cluster", np.nan_to_num(sc.ravel())))
    for cov in data.covariates:
        if cov.level not in LEVELS:
            raise ValueError(f"covariate {cov.name}: level {cov.level!r} not in {LEVELS}")
        if cov.level != "pair" and cov.level not in random_sides:
            continue
        values = np.broadcast_to(np.atleast_2d(cov.values), (A, P)).ravel()
        terms.append(Term(cov.name, "covariate", values, cov.level))
        if cov.by_arm:
            terms += [Term(f"arm[{a}]:{cov.name}", "covariate_interaction", col * values,
                           cov.level) for a, col in arm_cols]
    return terms


def _runs_of(data: PairData, arm: str) -> list[int]:
    return [i for i, a in enumerate(data.arm_of_run) if a == arm]


_DISPLAY = ("intercept", "arm", "distance", "interaction", "same_cluster", "covariate",
            "covariate_interaction", "fixed")
"""The order of the table's rows by kind."""

_PAIR_KINDS = ("distance", "same_cluster", "covariate")


@dataclass(frozen=True)
class _Fitted:
    """One fit of stage 2: the terms kept and dropped, each kept term's estimate and what it
    was judged against, and the fit's strata."""

    kept: list[Term]
    dropped: list[tuple[str, str]]
    estimates: list[Estimate | None]
    against: list[str]
    untestable: list[tuple[str, str]]
    df_strata: dict[str, int]


@dataclass(frozen=True)
class _Prepared:
    """The part of a stage-2 fit that depends on the design alone (not on the values): the
    terms kept and dropped, the arms' basis, the strata's structure and, per kept term, its
    strata weights (``None``: not estimable)."""

    kept: list[Term]
    dropped: list[tuple[str, str]]
    H: np.ndarray
    structure: strata.Structure
    weights: list[np.ndarray | None]


_PREPARED: OrderedDict[tuple[object, ...], _Prepared] = OrderedDict()
"""A few recent designs (a calibration loop fits the same design to many draws)."""


def _prepare(data: PairData, arms: list[str], random_sides: Sequence[str]) -> _Prepared:
    """The design of :func:`design` and :func:`random_structure`'s strata, prepared once per
    design."""
    A, P = len(arms), len(data.pairs)
    all_terms = design(data, arms, random_sides)
    X_all = np.column_stack([t.values for t in all_terms])
    key = (tuple(data.pairs), tuple(arms), tuple(random_sides),
           tuple((t.name, t.kind, t.level) for t in all_terms), X_all.tobytes())
    if key in _PREPARED:
        _PREPARED.move_to_end(key)
        return _PREPARED[key]
    keep, constant = independent_columns(X_all)
    kept = [all_terms[j] for j in keep]
    dropped = [(all_terms[j].name, "constant" if j in constant else
                "collinear with the terms kept before it")
               for j in range(len(all_terms)) if j not in set(keep)]
    X = X_all[:, keep]
    H = strata.arm_basis(A)  # the arms' mean and contrasts: the strata's blocks
    X_arms = np.einsum("ba,apk->bpk", H, X.reshape(A, P, X.shape[1])).reshape(A * P, -1)
    structure = strata.prepare(X_arms, random_structure(data.pairs, A, random_sides))
    to_arms = np.kron(H, np.eye(P))
    pooled = _pooled_functionals(arms, P)
    weights = [structure.weights(structure.C[j], None if t.name not in pooled else
                                 to_arms @ pooled[t.name])
               for j, t in enumerate(kept)]
    prepared = _Prepared(kept, dropped, H, structure, weights)
    _PREPARED[key] = prepared
    while len(_PREPARED) > 8:
        _PREPARED.popitem(last=False)
    return prepared


def _fit_stage2(data: PairData, arms: list[str], y: np.ndarray,
                extra: dict[str, Variance | None], level: float, fixed_effects: bool,
                random_sides: Sequence[str] = ()) -> _Fitted:
    """Fit the design of :func:`design` with :func:`random_structure`'s errors; ``extra``
    adds the seed and question variance to the intercept and the arm terms.

    An arm term's seed-and-question variance (``extra``, from the pooled questions × runs)
    already holds the pair means' noise averaged over the pairs, so its pair part is only
    what the term's weights over the pairs add beyond that average."""
    A, P = len(arms), len(data.pairs)
    prep = _prepare(data, arms, random_sides)
    fitted = strata.fit((prep.H @ y.reshape(A, P)).ravel(), structure=prep.structure)
    scale = 1.0 + float(np.abs(y).max())
    estimates: list[Estimate | None] = []
    against: list[str] = []
    untestable: list[tuple[str, str]] = []
    for j, t in enumerate(prep.kept):
        if t.kind == "fixed" and not fixed_effects:
            estimates.append(None)
            against.append("")
            continue
        w = prep.weights[j]
        cv = fitted.variance(fitted.C[j], weights=w, difference=t.name in extra) \
            if w is not None else \
            strata.CoefficientVariance(float("nan"), float("nan"), {}, estimable=False)
        total = sum(abs(v) for v in cv.shares.values())
        parts = [name for name, v in cv.shares.items() if total and abs(v) > 1e-9 * total]
        var: Variance | None = None
        if cv.estimable and np.isfinite(cv.df) and cv.df > 0 and cv.value > 0:
            var = Variance(((1.0, MeanSquare(cv.value, cv.df)),), {"pairs": cv.value})
        elif cv.estimable and t.name in extra:
            var, parts = Variance(()), []  # nothing beyond the pooled average
        if t.name in extra:
            parts.append("seeds & questions")
            more = extra[t.name]
            var = var + more if (var is not None and more is not None) else None
        est = t_estimate(float(fitted.beta[j]), var, level, scale=scale)
        if est.p is None and t.kind not in ("intercept", "fixed") and not (
                t.kind == "arm" and extra.get(t.name) is None):
            why = (f"no degrees of freedom or no variance in {' + '.join(parts)}"
                   if cv.estimable else "its variance between the language pairs cannot be "
                   "estimated: no degrees of freedom left beside the language effects")
            untestable.append((t.name, why))
        estimates.append(est)
        against.append(" + ".join(parts))
    return _Fitted(prep.kept, prep.dropped, estimates, against, untestable,
                   fitted.stratum_df())


def _pooled_functionals(arms: list[str], n_pairs: int) -> dict[str, np.ndarray]:
    """What the seed-and-question variance of each ``extra`` term is the variance of, as a
    functional of the arm-major stage-2 rows: the baseline's mean over the pairs (intercept)
    and each arm's mean difference to it (``arm[a]``)."""
    A, P = len(arms), n_pairs
    out = {}
    base = np.zeros((A, P))
    base[0] = 1.0 / P
    out["intercept"] = base.ravel()
    for i, arm in enumerate(arms[1:], start=1):
        c = -base.copy()
        c[i] = 1.0 / P
        out[f"arm[{arm}]"] = c.ravel()
    return out


def fit_regression(df: pl.DataFrame, value: str, distances: pl.DataFrame,
                   clusters: pl.DataFrame, baseline: str | None = None, level: float = 0.95,
                   fixed_effects: bool = False) -> RegressionResult:
    """The two-stage regression of the module docstring on per-query rows ``df`` (with an
    ``arm`` column to compare arms; ``seed`` pairs runs across arms).

    Raises:
        UsageError: no distances for the data's pairs, no pair every run has, or too few
            pairs for the terms.
    """
    return fit_pairs(pair_data(df, value, distances, clusters), baseline, level,
                     fixed_effects)


def _arm_extras(data: PairData, arms: list[str], notes: list[str]
                ) -> dict[str, Variance | None]:
    """The seed and question variance of the intercept (the baseline's mean) and of each
    ``arm[a]`` (the arm's delta), on the pooled questions × runs."""
    base_cols = _runs_of(data, arms[0])
    Yb = data.pooled[:, base_cols]
    extra: dict[str, Variance | None] = {
        "intercept": crossed_variance(Yb) if Yb.shape[1] >= 2 and Yb.shape[0] >= 2 else None}
    for arm in arms[1:]:
        name = f"arm[{arm}]"
        cols = _runs_of(data, arm)
        sel = select_runs(data.pooled[:, cols], data.pooled[:, base_cols],
                          [data.seed_of_run[i] for i in cols],
                          [data.seed_of_run[i] for i in base_cols])
        extra[name] = delta_variance(sel.A, sel.B, sel.paired)
        if extra[name] is None:
            notes.append(f"{name}: {'the baseline' if sel.B.shape[1] < 2 else 'the arm'}"
                         " has 1 run, so its seed variance is unknown: no interval or test")
        elif sel.why_unpaired:
            notes.append(f"{name}: {sel.why_unpaired}: runs compared unpaired")
        elif sel.fewer_seeds:
            notes.append(f"{name}: compared on the seeds both arms ran")
    return extra


def fit_pairs(data: PairData, baseline: str | None = None, level: float = 0.95,
              fixed_effects: bool = False) -> RegressionResult:
    """Stage 2 of :func:`fit_regression` on stage-1 ``data``.

    Raises:
        UsageError: too few pairs for the terms.
    """
    with _one_blas_thread():
        return _fit_pairs(data, baseline, level, fixed_effects)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while stage 2 runs (through ``threadpoolctl`` when installed): its
    matrices are small (one block per arm contrast, a language pair per row), where a
    threaded BLAS only waits for its threads — 25× slower for 8 arms × 110 pairs on a busy
    2-core machine."""
    controller = _blas_controller()
    if controller is None:
        yield
        return
    with controller.limit(limits=1, user_api="blas"):
        yield


@functools.cache
def _blas_controller() -> Any:
    """The process's ``threadpoolctl`` controller, which finds the loaded BLAS once (it reads
    ``/proc``: a few ms); ``None`` without threadpoolctl (an optional package, as in
    :mod:`xlrun.execute.threads`)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    return ThreadpoolController()


def _fit_pairs(data: PairData, baseline: str | None, level: float,
               fixed_effects: bool) -> RegressionResult:
    arms = arm_order(sorted(set(data.arm_of_run)), baseline)
    P = len(data.pairs)
    Y = np.vstack([data.means[_runs_of(data, a)].mean(axis=0) for a in arms])
    y = Y.ravel()
    notes: list[str] = []
    extra = _arm_extras(data, arms, notes)
    main = _fit_stage2(data, arms, y, extra, level, fixed_effects)
    chosen = [(t, est, ag) for t, est, ag in zip(main.kept, main.estimates, main.against,
                                                   strict=True)
              if t.level == "pair" and est is not None]
    kept_names = [t.name for t in main.kept]
    dropped = list(main.dropped)
    untestable = list(main.untestable)
    for side in [s for s in ("query_lang", "doc_lang")
                 if any(c.level == s for c in data.covariates)]:
        lang = _fit_stage2(data, arms, y, extra, level, fixed_effects, random_sides=(side,))
        for t, est, ag in zip(lang.kept, lang.estimates, lang.against, strict=True):
            if t.level == side and est is not None:
                chosen.append((t, est, ag))
                kept_names.append(t.name)
        dropped += [(n, why) for n, why in lang.dropped
                    if any(c.name in n for c in data.covariates if c.level == side)]
        untestable += [u for u in lang.untestable if u not in untestable]
    for name, why in untestable:
        notes.append(f"{name}: nothing left to judge it against ({why}): no interval or test")
    chosen.sort(key=lambda r: _DISPLAY.index(r[0].kind))
    rows = [{"term": t.name, "coef": est.estimate, "std_err": est.se, "df": est.df,
             "stat": (est.estimate / est.se) if est.se else None, "p": est.p,
             "ci_low": est.ci_low, "ci_high": est.ci_high, "against": ag}
            for t, est, ag in chosen]
    n_unordered = len({unordered(p) for p in data.pairs})
    n_languages = len({lang for p in data.pairs for lang in p})
    df_b, df_w = main.df_strata.get(PAIRS, 0), main.df_strata.get(ARM_PAIRS, 0)
    kinds = {t.kind for t in main.kept}
    if kinds & {"distance", "same_cluster"}:
        which = " and ".join(n for n in ("distance", "same_cluster")
                             if n in kept_names)
        notes.append(f"{which}: judged against how much the {n_unordered} unordered language "
                     f"pairs of {n_languages} languages (x→y and y→x count once) differ beyond "
                     f"the query- and document-language effects: {_dof(df_b)} between "
                     f"unordered pairs ({n_unordered} pairs − languages − terms)")
    if "interaction" in kinds:
        notes.append(f"arm × distance: judged against how much the arms' differences vary "
                     f"between unordered pairs beyond each arm's language effects: "
                     f"{_dof(df_w)}")
    if data.dropped_pairs:
        labels = [f"{q}→{d}" for q, d in data.dropped_pairs]
        notes.append(f"{len(labels)} language pair(s) without results from every analysed run "
                     f"left out: {', '.join(labels[:6])}"
                     + (f", … ({len(labels)} in all)" if len(labels) > 6 else ""))
    if data.lost_questions:
        notes.append(f"{data.lost_questions} (pair, question) result(s) that some run lacks "
                     "left out (pair means over the questions every run has; no imputation)")
    schema = {"term": pl.String, "coef": pl.Float64, "std_err": pl.Float64, "df": pl.Float64,
              "stat": pl.Float64, "p": pl.Float64, "ci_low": pl.Float64,
              "ci_high": pl.Float64, "against": pl.String}
    return RegressionResult(pl.DataFrame(rows, schema=schema), kept_names, dropped, notes, P,
                            data.n_questions, len(data.runs), arms, df_b, df_w,
                            n_unordered, n_languages, main.df_strata)


def _dof(n: int) -> str:
    return f"{n} degree{'' if n == 1 else 's'} of freedom"


def regress(df: pl.DataFrame, value: str, distances: pl.DataFrame, clusters: pl.DataFrame,
            baseline: str | None = None, level: float = 0.95,
            fixed_effects: bool = False) -> pl.DataFrame:
    """The coefficient table of :func:`fit_regression`."""
    return fit_regression(df, value, distances, clusters, baseline, level,
                          fixed_effects).table


def describe_terms(result: RegressionResult) -> str:
    """The fitted formula in words, from the terms actually kept (``arm × distance +
    same_cluster + query-language and doc-language fixed effects``)."""
    names = set(result.terms)
    arm_terms = any(n.startswith("arm[") and ":" not in n for n in names)
    inter = any(n.endswith(":distance") for n in names)
    parts = []
    if "distance" in names:
        parts.append("arm × distance" if inter else
                     ("arm + distance" if arm_terms else "distance"))
    elif arm_terms:
        parts.append("arm")
    if "same_cluster" in names:
        parts.append("same_cluster")
    fe = [what for col, what in (("query_lang[", "query-language"), ("doc_lang[", "doc-language"))
          if any(n.startswith(col) for n in names)]
    if fe:
        parts.append(" and ".join(fe) + " fixed effects")
    return " + ".join(parts) if parts else "intercept only"


def dropped_summary(dropped: Sequence[tuple[str, str]]) -> str:
    """The dropped terms in a few words for a title (fixed effects counted per language
    column): ``doc_lang fixed effects ×2, same_cluster``."""
    fe: dict[str, int] = {}
    other: list[str] = []
    for name, _ in dropped:
        col = name.split("[")[0]
        if col in ("query_lang", "doc_lang"):
            fe[col] = fe.get(col, 0) + 1
        else:
            other.append(name)
    return ", ".join([*other, *[f"{col} fixed effects ×{n}" for col, n in fe.items()]])
