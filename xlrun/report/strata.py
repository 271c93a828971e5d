"""A linear model whose errors are a sum of random components, analysed by strata.

``y = Xβ + ε`` with ``Cov(ε) = Σ_k σ²_k K_k``: each *component* ``K_k`` says which
observations share a random effect (two rows of the same unordered language pair, of the same
query language, …). The coefficients are estimated by ordinary least squares,
``β̂ = C y`` with ``C = (XᵀX)⁻¹Xᵀ``, and judged by the method of moments:

* the residual ``e = M y`` (``M = I − X C``) is split into *strata*, orthogonal projections
  ``P_m`` that sum to the identity (between unordered pairs, between the two directions of a
  pair, the same for the arms' contrasts, …), giving the sums of squares ``q_m = eᵀP_m e``;
* ``E[q_m] = Σ_k σ²_k tr(P_m M K_k M)``, so the components are estimated by solving these
  equations (Henderson's method III in its general form; in a balanced design the strata are
  the classical ANOVA strata and ``q_m/df_m`` their mean squares);
* a coefficient's variance ``Σ_k σ²_k c_jᵀK_k c_j`` is then a linear combination
  ``Σ_m w_m q_m`` of the strata, unbiased whatever the components are;
* its degrees of freedom are Satterthwaite's for that combination, with the normal-theory
  variance ``Var(eᵀBe) = 2 tr((B V)²)``, ``B = Σ_m w_m M P_m M`` and ``V`` the fitted
  covariance.

When a coefficient lives in one stratum (a symmetric pair covariate in a design whose
language effects are fixed, the usual case), its variance is that stratum's residual mean
square times a constant and its test is the exact t-test on the stratum's residual degrees of
freedom; otherwise Satterthwaite's approximation combines the strata it draws on.

The observations may come in **blocks** (:class:`Block`) in which every component and
stratum is block-diagonal, e.g. the arms' mean and their orthonormal contrasts: when the
design's columns split over the blocks too, each block is computed on its own (identical
blocks once), so the cost grows with the block size cubed, not with the number of rows cubed;
otherwise the blocks are merged into one dense problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.linalg import block_diag
from scipy.special import chdtri

from xlrun.report.inference import SHARE_CONFIDENCE

_TOL = 1e-9


@dataclass(frozen=True)
class Block:
    """Consecutive rows of the observations (``size`` of them) and, on them, each random
    component's structure ``K[name]`` (``size × size``; ``K[i, j] = 1`` where rows ``i`` and
    ``j`` share the effect; absent: the component does not reach this block) and each
    stratum's orthogonal projection ``P[name]`` (absent: the stratum has no part here). Over
    all blocks the projections of the strata sum to the identity. Blocks whose ``key`` is the
    same (not ``None``) have the same ``K`` and ``P``."""

    size: int
    K: dict[str, np.ndarray]
    P: dict[str, np.ndarray]
    key: object = None


@dataclass(frozen=True)
class CoefficientVariance:
    """The estimated variance of one linear combination ``c·y`` of the observations.

    ``value`` is ``Σ_m w_m q_m`` (may be ≤ 0 by chance, then there is no test); ``df`` its
    Satterthwaite degrees of freedom; ``shares`` each stratum's part of ``value`` (what the
    estimate is judged against); ``estimable`` is false when the strata left by the fixed
    effects cannot tell the variance (no degrees of freedom where it is needed)."""

    value: float
    df: float
    shares: dict[str, float]
    estimable: bool = True


@dataclass(frozen=True)
class _Part:
    """One block's residual projections per stratum, ``R = M P M``."""

    start: int
    block: Block
    R: dict[str, np.ndarray]


@dataclass(frozen=True)
class Structure:
    """What a fit needs from the design and the blocks alone (the same for every ``y``):
    ``C`` (``β̂ = C y``), the residual maker per block, the strata's residual degrees of
    freedom ``df``, the moment equations ``G`` (``E[q] = G σ²``) and the fourth-moment
    tensor ``S[a, b, k, l] = tr(R_a K_k R_b K_l)`` (``Var`` of the strata's sums of
    squares is ``2 Σ_kl σ²_k σ²_l S``)."""

    X: np.ndarray
    C: np.ndarray
    strata: tuple[str, ...]
    components: tuple[str, ...]
    df: np.ndarray
    G: np.ndarray
    S: np.ndarray
    parts: tuple[_Part, ...]

    def structure_of(self, c: np.ndarray) -> np.ndarray:
        """``cᵀK_k c`` per component (``var(c·y) = Σ_k σ²_k · that``)."""
        v = np.zeros(len(self.components))
        for part in self.parts:
            cb = c[part.start:part.start + part.block.size]
            for k, name in enumerate(self.components):
                K = part.block.K.get(name)
                if K is not None:
                    v[k] += float(cb @ K @ cb)
        return v

    def weights(self, c: np.ndarray, minus: np.ndarray | None = None) -> np.ndarray | None:
        """The strata weights ``w`` with ``var(c·y) − var(minus·y) = Σ_m w_m E[q_m]`` for
        every value of the components, or ``None`` when the strata cannot tell it."""
        v = self.structure_of(c)
        if minus is not None:
            v = v - self.structure_of(minus)
        w, *_ = np.linalg.lstsq(self.G.T, v, rcond=None)
        scale = max(float(np.abs(v).max(initial=0.0)), 1e-300)
        if float(np.abs(self.G.T @ w - v).max(initial=0.0)) > 1e-6 * scale:
            return None
        return np.where(self.df > 0, w, 0.0)


@dataclass(frozen=True)
class StrataFit:
    """A fitted model (see the module docstring): ``beta``, ``C`` (``β̂ = C y``), the strata's
    names, residual sums of squares ``q`` and residual degrees of freedom ``df``, the moment
    equations ``G`` (``E[q] = G σ²``) and the estimated components ``sigma2``."""

    beta: np.ndarray
    structure: Structure
    q: np.ndarray
    sigma2: np.ndarray
    _spread: np.ndarray
    """``tr(R_a V R_b V)`` summed over the blocks, per pair of strata."""

    @property
    def C(self) -> np.ndarray:
        return self.structure.C

    @property
    def strata(self) -> tuple[str, ...]:
        return self.structure.strata

    @property
    def df(self) -> np.ndarray:
        return self.structure.df

    @property
    def G(self) -> np.ndarray:
        return self.structure.G

    def variance(self, c: np.ndarray, minus: np.ndarray | None = None,
                 weights: np.ndarray | None = None, difference: bool = False
                 ) -> CoefficientVariance:
        """The variance of ``c·y`` (``c`` = a row of ``C`` for a coefficient), less that of
        ``minus·y`` if given, with its Satterthwaite degrees of freedom (``weights``: the
        strata weights of :meth:`Structure.weights`, if already known; ``difference``: they
        are those of a difference of variances, which is not truncated).

        The degrees of freedom take each stratum's share at its
        :data:`~xlrun.report.inference.SHARE_CONFIDENCE` upper confidence bound (as for a
        lone few-df mean square, :func:`~xlrun.report.inference.satterthwaite_df`): a
        combination of strata with few degrees of freedom each must not borrow the larger
        df of one when the other happens to be small; a single stratum keeps its own df."""
        w = weights if weights is not None else self.structure.weights(c, minus)
        if w is None:
            return CoefficientVariance(float("nan"), float("nan"), {}, estimable=False)
        parts = w * self.q
        if minus is None and not difference and np.any(w < 0) and np.any(w > 0):
            # Like ``MS_run + max(MS_q − MS_res, 0)``: the stratum with the largest share is
            # kept whole and the others are added only when they add up to more than zero
            # (an unbiased sum can fall below zero by chance; conservative, never lower).
            own = int(np.argmax(np.where(w > 0, parts, -np.inf)))
            if float(parts.sum() - parts[own]) < 0:
                w = np.where(np.arange(w.size) == own, w, 0.0)
                parts = w * self.q
        shares = {name: float(v) for name, v in zip(self.strata, parts, strict=True)}
        value = float(parts.sum())
        wb = w * np.where(w > 0, _bound(self.df), 1.0)
        expected = float(wb @ (self.G @ np.maximum(self.sigma2, 0.0)))
        spread = float(wb @ self._spread @ wb)
        df = expected * expected / spread if spread > 0 and expected > 0 else float("nan")
        return CoefficientVariance(value, df, shares)

    def stratum_df(self) -> dict[str, int]:
        """Residual degrees of freedom per stratum."""
        return {name: round(float(d)) for name, d in zip(self.strata, self.df, strict=True)}


def _bound(df: np.ndarray) -> np.ndarray:
    """Each stratum's upper-confidence factor ``df/χ²_df(1 − γ)`` (1 without df)."""
    return np.array([d / float(chdtri(d, SHARE_CONFIDENCE)) if d > 0 else 1.0 for d in df])


def _orthonormal(X: np.ndarray) -> np.ndarray:
    """An orthonormal basis of the column space of ``X``."""
    if X.size == 0:
        return np.zeros((X.shape[0], 0))
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    return U[:, s > _TOL * max(float(s[0]), 1e-300)] if s.size else U[:, :0]


def _merged(blocks: Sequence[Block]) -> Block:
    """All blocks as one (block-diagonal matrices)."""
    names_k = list(dict.fromkeys(k for b in blocks for k in b.K))
    names_p = list(dict.fromkeys(p for b in blocks for p in b.P))

    def diag(get: str, name: str) -> np.ndarray:
        return block_diag(*[getattr(b, get).get(name, np.zeros((b.size, b.size)))
                            for b in blocks])

    return Block(sum(b.size for b in blocks), {k: diag("K", k) for k in names_k},
                 {p: diag("P", p) for p in names_p})


def prepare(X: np.ndarray, blocks: Sequence[Block]) -> Structure:
    """The parts of a fit that depend on the design ``X`` (full column rank) and the
    ``blocks`` only (see :class:`Structure`)."""
    C = np.linalg.solve(X.T @ X, X.T)
    starts = np.cumsum([0, *[b.size for b in blocks]])[:-1].tolist()
    bases = [_orthonormal(X[s:s + b.size]) for s, b in zip(starts, blocks, strict=True)]
    if len(blocks) > 1 and sum(q.shape[1] for q in bases) != X.shape[1]:
        blocks, starts = [_merged(blocks)], [0]  # the columns do not split over the blocks
        bases = [_orthonormal(X)]
    names_k = list(dict.fromkeys(k for b in blocks for k in b.K))
    names_p = list(dict.fromkeys(p for b in blocks for p in b.P))
    parts: list[_Part] = []
    cache: dict[object, dict[str, np.ndarray]] = {}
    for start, b, Q in zip(starts, blocks, bases, strict=True):
        if b.key is not None and b.key in cache:
            parts.append(_Part(start, b, cache[b.key]))
            continue
        M = np.eye(b.size) - Q @ Q.T
        R = {name: M @ Pm @ M for name, Pm in b.P.items()}
        if b.key is not None:
            cache[b.key] = R
        parts.append(_Part(start, b, R))
    nm, nk = len(names_p), len(names_k)
    df = np.zeros(nm)
    G = np.zeros((nm, nk))
    S = np.zeros((nm, nm, nk, nk))
    done: dict[object, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for part in parts:
        if part.block.key is not None and part.block.key in done:
            d_b, G_b, S_b = done[part.block.key]
        else:
            d_b, G_b, S_b = np.zeros(nm), np.zeros((nm, nk)), np.zeros((nm, nm, nk, nk))
            RK: dict[tuple[int, int], np.ndarray] = {}
            for m, name in enumerate(names_p):
                R = part.R.get(name)
                if R is None:
                    continue
                d_b[m] = float(np.trace(R))
                for k, comp in enumerate(names_k):
                    K = part.block.K.get(comp)
                    if K is not None:
                        G_b[m, k] = float(np.sum(R * K))
                        RK[m, k] = R @ K
            for (a, k), X1 in RK.items():
                for (b_, l_), X2 in RK.items():
                    if (b_, l_) >= (a, k):
                        S_b[a, b_, k, l_] = S_b[b_, a, l_, k] = float(np.sum(X1 * X2.T))
            if part.block.key is not None:
                done[part.block.key] = (d_b, G_b, S_b)
        df += d_b
        G += G_b
        S += S_b
    df = np.where(df > 0.5, df, 0.0)
    return Structure(X, C, tuple(names_p), tuple(names_k), df, G, S, tuple(parts))


def fit(y: np.ndarray, X: np.ndarray | None = None, blocks: Sequence[Block] = (),
        structure: Structure | None = None) -> StrataFit:
    """OLS of ``y`` on ``X`` (full column rank) and the method-of-moments components (see the
    module docstring) for observations in ``blocks``; or on a prepared ``structure``
    (:func:`prepare`), which saves the work that does not depend on ``y``."""
    st = structure if structure is not None else prepare(X, blocks)  # type: ignore[arg-type]
    beta = st.C @ y
    e = y - st.X @ beta
    q = np.zeros(len(st.strata))
    for part in st.parts:
        eb = e[part.start:part.start + part.block.size]
        for m, name in enumerate(st.strata):
            R = part.R.get(name)
            if R is not None:
                q[m] += float(eb @ R @ eb)
    usable = st.df > 0
    sigma2 = np.zeros(len(st.components))
    if usable.any():
        sigma2, *_ = np.linalg.lstsq(st.G[usable], q[usable], rcond=None)
    s2 = np.maximum(sigma2, 0.0)
    spread = np.einsum("abkl,k,l->ab", st.S, s2, s2)
    return StrataFit(beta, st, q, sigma2, spread)


def indicator(labels: Sequence[object]) -> np.ndarray:
    """``Z`` (rows × levels) with ``Z[i, l] = 1`` where row ``i`` has level ``l`` (levels in
    order of first appearance)."""
    levels = list(dict.fromkeys(labels))
    index = {lv: i for i, lv in enumerate(levels)}
    Z = np.zeros((len(labels), len(levels)))
    Z[np.arange(len(labels)), [index[lv] for lv in labels]] = 1.0
    return Z


def nested_strata(spaces: Sequence[tuple[str, np.ndarray]], n: int
                  ) -> list[tuple[str, np.ndarray]]:
    """Orthogonal strata of ``R^n`` from growing spaces: ``spaces`` are ``(name, Z)`` whose
    column spans are added one after the other; each stratum is what its space adds to those
    before, and an entry with an empty ``Z`` takes the rest of ``R^n``. Strata with nothing
    in them are left out."""
    out = []
    previous = np.zeros((n, n))
    span = np.zeros((n, 0))
    for name, Z in spaces:
        if Z.size:
            span = np.hstack([span, Z])
            basis = _orthonormal(span)
            current = basis @ basis.T
        else:
            current = np.eye(n)
        stratum = current - previous
        if np.trace(stratum) > 0.5:
            out.append((name, stratum))
        previous = current
    return out


def arm_basis(n_arms: int) -> np.ndarray:
    """An orthonormal ``A × A`` basis of the arms: the first row the mean direction
    (``1/√A``), the others contrasts (they sum to zero)."""
    A = n_arms
    Q, _ = np.linalg.qr(np.column_stack([np.ones(A), np.eye(A)[:, 1:]]))
    H = Q.T
    return H * np.sign(H[0, 0])
