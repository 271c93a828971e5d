"""``--regress``: metric ~ arm × language distance + same_cluster + language fixed effects,
as a two-stage model whose language-pair terms are judged against how much pairs differ.

**Stage 1** (per run and language pair): the mean over the pair's questions that every
analysed run has (no imputation; pairs that some run lacks are left out, with a note). The
arm's value on a pair is the mean over its runs.

**Stage 2** (rows: arm × pair): ordinary least squares on those means with the design
``intercept, arm[a], distance, arm[a]:distance, same_cluster, query_lang[..], doc_lang[..]``.
Its errors are a *split plot*: pairs are the whole plots (a random pair effect η, shared by
the arms), arms the sub-plots (a random arm × pair effect ξ, which also carries the seed ×
pair and question noise of the pair means). For a coefficient ``β_j = c_j' y``::

    var(β_j) = g_j σ²_η + h_j σ²_ξ,    g_j = Σ_p (Σ_a c_j[a,p])²,  h_j = Σ c_j²

estimated from the between-pair residual mean square ``s²_B`` (pair means over arms
regressed on the pair-level columns, ``P − k_B`` df; it estimates ``σ²_η + σ²_ξ/A``) and the
within-pair one ``s²_W`` (``P(A−1) − k_W`` df)::

    var(β_j) = g_j s²_B + (h_j − g_j/A) s²_W        (both coefficients ≥ 0)

So ``distance`` and ``same_cluster`` rest on the number of language pairs, not of questions,
and ``arm[a]:distance`` on the arm × pair variation. A training run's offset is common to all
its pairs, so it is invisible to both strata: ``arm[a]`` (and the intercept) add the variance
of the arm's delta (the baseline's mean) over seeds and questions from the crossed model of
:mod:`xlrun.report.inference`, computed on the same runs and questions. Every interval and p
comes from one t statistic on Satterthwaite's df. Terms that are constant or collinear are
left out before fitting and reported (see :class:`RegressionResult`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from xlrun.errors import UsageError
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

_EPS = 1e-10


@dataclass(frozen=True)
class PairData:
    """Stage 1: what the regression is fitted on.

    ``means`` is runs × pairs (each run's mean over the pair's common questions), ``pooled``
    questions × runs (each run's value per question averaged over the kept pairs, for the
    arm-level variance), ``same_cluster`` runs × pairs (NaN when no clusters are stored)."""

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


@dataclass(frozen=True)
class Term:
    """A column of the design: its name, which pairs/arms it varies over and its values."""

    name: str
    kind: str
    """``intercept``, ``arm``, ``distance``, ``interaction``, ``same_cluster``, ``fixed``."""
    values: np.ndarray


@dataclass(frozen=True)
class RegressionResult:
    """A fitted two-stage regression.

    ``table`` has :data:`COLUMNS` (fixed effects only if asked); ``terms`` the names kept;
    ``dropped`` ``(term, why)`` for each term left out (constant, or collinear with the terms
    kept before it); ``notes`` what else the reader must know (pairs or questions left out,
    untestable terms, unpaired arm terms); ``df_between``/``df_within`` the strata's degrees
    of freedom."""

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


def design(data: PairData, arms: list[str]) -> list[Term]:
    """The stage-2 columns (rows: arm-major, ``arm × pair``), before dropping any."""
    A, P = len(arms), len(data.pairs)
    arm_rows = np.repeat(np.arange(A), P)
    dist = np.tile(data.distance, A)
    terms = [Term("intercept", "intercept", np.ones(A * P))]
    for i, a in enumerate(arms[1:], start=1):
        terms.append(Term(f"arm[{a}]", "arm", (arm_rows == i).astype(np.float64)))
    terms.append(Term("distance", "distance", dist))
    for i, a in enumerate(arms[1:], start=1):
        terms.append(Term(f"arm[{a}]:distance", "interaction",
                          (arm_rows == i).astype(np.float64) * dist))
    if not np.all(np.isnan(data.same_cluster)):
        sc = np.vstack([np.nanmean(data.same_cluster[_runs_of(data, a)], axis=0)
                        for a in arms])
        terms.append(Term("same_cluster", "same_cluster", np.nan_to_num(sc.ravel())))
    for pos, col in ((0, "query_lang"), (1, "doc_lang")):
        values = np.array([p[pos] for p in data.pairs])
        for level in sorted(set(values.tolist()))[1:]:
            terms.append(Term(f"{col}[{level}]", "fixed",
                              np.tile((values == level).astype(np.float64), A)))
    return terms


def _runs_of(data: PairData, arm: str) -> list[int]:
    return [i for i, a in enumerate(data.arm_of_run) if a == arm]


@dataclass(frozen=True)
class Strata:
    """The split plot's residual mean squares: between pairs (``σ²_η + σ²_ξ/A``) and within
    pairs (``σ²_ξ``); a stratum without degrees of freedom has ``df`` 0."""

    between: MeanSquare
    within: MeanSquare


def _rss(y: np.ndarray, X: np.ndarray) -> tuple[float, int]:
    if X.size == 0 or not np.any(X):
        return float((y * y).sum()), 0
    beta, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = y - X @ beta
    return float((r * r).sum()), int(np.linalg.matrix_rank(X))


def strata(y: np.ndarray, X: np.ndarray, n_arms: int) -> Strata:
    """The between- and within-pair residual mean squares of ``y`` (arm-major, ``A·P``) on
    ``X`` (see the module docstring)."""
    A = n_arms
    P = y.size // A
    Y = y.reshape(A, P)
    X3 = X.reshape(A, P, X.shape[1])
    yb, Xb = Y.mean(axis=0), X3.mean(axis=0)
    rss_b, k_b = _rss(yb, Xb)
    df_b = P - k_b
    between = MeanSquare(rss_b / df_b if df_b > 0 else float("nan"), df_b)
    if A == 1:
        return Strata(between, MeanSquare(float("nan"), 0))
    yw = (Y - yb).ravel()
    Xw = (X3 - Xb).reshape(A * P, X.shape[1])
    rss_w, k_w = _rss(yw, Xw)
    df_w = P * (A - 1) - k_w
    return Strata(between, MeanSquare(rss_w / df_w if df_w > 0 else float("nan"), df_w))


def split_plot_fit(y: np.ndarray, X: np.ndarray, n_arms: int,
                   extra: dict[int, Variance | None] | None = None,
                   level: float = 0.95) -> tuple[list[Estimate], list[str], Strata]:
    """OLS of ``y`` on ``X`` (full column rank; rows arm-major) with split-plot errors.

    ``extra[j]`` adds a variance (seeds, questions) to coefficient ``j``; ``None`` there
    means it cannot be estimated (the coefficient gets no interval or test). Returns the
    estimates, what each is judged against and the strata."""
    A = n_arms
    xtx = X.T @ X
    C = np.linalg.solve(xtx, X.T)  # k × n: beta = C y
    beta = C @ y
    st = strata(y, X, A)
    out: list[Estimate] = []
    against: list[str] = []
    scale = 1.0 + float(np.abs(y).max())
    for j in range(X.shape[1]):
        c = C[j].reshape(A, -1)
        g = float((c.sum(axis=0) ** 2).sum())
        h = float((c * c).sum())
        w = max(h - g / A, 0.0)
        terms: list[tuple[float, MeanSquare]] = []
        parts: list[str] = []
        ok = True
        if g > _EPS * h:
            parts.append("pairs")
            ok &= st.between.df > 0
            terms.append((g, st.between))
        if w > _EPS * h:
            parts.append("arm × pair")
            ok &= st.within.df > 0
            terms.append((w, st.within))
        var = Variance(tuple(terms), {"pairs": sum(c_ * m.value for c_, m in terms)}) \
            if ok else None
        if extra is not None and j in extra:
            parts.append("seeds & questions")
            more = extra[j]
            var = var + more if (var is not None and more is not None) else None
        against.append(" + ".join(parts))
        out.append(t_estimate(float(beta[j]), var, level, scale=scale))
    return out, against, st


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


def fit_pairs(data: PairData, baseline: str | None = None, level: float = 0.95,
              fixed_effects: bool = False) -> RegressionResult:
    """Stage 2 of :func:`fit_regression` on stage-1 ``data``.

    Raises:
        UsageError: too few pairs for the terms.
    """
    arms = arm_order(sorted(set(data.arm_of_run)), baseline)
    A, P = len(arms), len(data.pairs)
    all_terms = design(data, arms)
    X_all = np.column_stack([t.values for t in all_terms])
    keep, constant = independent_columns(X_all)
    kept = [all_terms[j] for j in keep]
    dropped = [(all_terms[j].name, "constant" if j in constant else
                "collinear with the terms kept before it")
               for j in range(len(all_terms)) if j not in set(keep)]
    X = X_all[:, keep]
    if X.shape[1] >= P * A:
        raise UsageError(f"--regress: too few language pairs ({P}) for {X.shape[1]} terms")
    Y = np.vstack([data.means[_runs_of(data, a)].mean(axis=0) for a in arms])
    notes: list[str] = []
    extra: dict[int, Variance | None] = {}
    base_cols = _runs_of(data, arms[0])
    for j, t in enumerate(kept):
        if t.kind == "intercept":
            Yb = data.pooled[:, base_cols]
            extra[j] = crossed_variance(Yb) if Yb.shape[1] >= 2 and Yb.shape[0] >= 2 else None
        elif t.kind == "arm":
            arm = t.name[4:-1]
            cols = _runs_of(data, arm)
            sel = select_runs(data.pooled[:, cols], data.pooled[:, base_cols],
                              [data.seed_of_run[i] for i in cols],
                              [data.seed_of_run[i] for i in base_cols])
            extra[j] = delta_variance(sel.A, sel.B, sel.paired)
            if extra[j] is None:
                notes.append(f"{t.name}: {'the baseline' if sel.B.shape[1] < 2 else 'the arm'}"
                             " has 1 run, so its seed variance is unknown: no interval or test")
            elif sel.why_unpaired:
                notes.append(f"{t.name}: {sel.why_unpaired}: runs compared unpaired")
            elif sel.fewer_seeds:
                notes.append(f"{t.name}: compared on the seeds both arms ran")
    estimates, against, st = split_plot_fit(Y.ravel(), X, A, extra, level)
    rows = []
    for j, (t, est, ag) in enumerate(zip(kept, estimates, against, strict=True)):
        if est.p is None and t.kind not in ("intercept", "fixed") and not (
                t.kind == "arm" and extra.get(j) is None):
            notes.append(f"{t.name}: nothing left to judge it against (no degrees of "
                         f"freedom or no variance in {ag}): no interval or test")
        if t.kind == "fixed" and not fixed_effects:
            continue
        rows.append({"term": t.name, "coef": est.estimate, "std_err": est.se, "df": est.df,
                     "stat": (est.estimate / est.se) if est.se else None, "p": est.p,
                     "ci_low": est.ci_low, "ci_high": est.ci_high, "against": ag})
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
    return RegressionResult(pl.DataFrame(rows, schema=schema), [t.name for t in kept],
                            dropped, notes, P, data.n_questions, len(data.runs), arms,
                            st.between.df, st.within.df)


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
