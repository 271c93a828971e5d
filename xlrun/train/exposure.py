"""Exposure plans: how often a run trains on each language, as query and as passage.

A plan is the joint probability ``J[X, Y]`` that one training pair has its query in language X
and its passage in language Y. Diagonal cells are monolingual pairs, off-diagonal cells
cross-lingual ones; the diagonal holds the monolingual share ``m`` (``sampling.mono_ratio``).
A language's **query share** is its row sum, its **passage share** its column sum: the share of
all query (passage) texts of the run that are in that language, monolingual and cross-lingual
batches together.

Three plans exist:

* :func:`random_arm_plan` — unclustered sampling (``language_sampling = "size"`` or
  ``"uniform"``): monolingual X with ``p_X``; cross-lingual X with ``p_X`` (over languages that
  have partners), then Y among X's partners in proportion to ``p_Y``.
* :func:`free_clustered_plan` — clustered sampling with ``exposure = "free"`` (xlrun ≤ 0.1
  behaviour): a cluster first, then languages inside it. Changes which languages share a batch
  *and* how often each language is trained on.
* :func:`matched_plan` — clustered sampling with ``exposure = "matched"`` (the default): the
  plan closest to the random arm's (smallest Kullback–Leibler divergence, found by iterative
  proportional fitting) that uses only the language pairs the clustering allows and keeps the
  random arm's query shares, passage shares and monolingual share. Clustering then decides
  only *which languages meet*.

**What matching cannot do.** Within-cluster pairing moves no text between clusters, so each
cluster's query shares and passage shares must sum to the same total. The random arm does not
guarantee that on unbalanced data: a large language is drawn first as the query language more
often than it is drawn as a partner (MLQA-R: English is 27.3 % of cross-lingual queries but
22.6 % of cross-lingual passages). That imbalance is spread evenly over the cluster's query and
passage shares (the smallest possible largest deviation); plans whose deviation exceeds
:data:`EXPOSURE_TOLERANCE` are rejected with a :class:`~xlrun.errors.SpecError` naming the
clusters and languages, as are plans that cannot be met at all (e.g. a singleton cluster whose
language would need more monolingual batches than the run has).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from xlrun.errors import SpecError

EXPOSURE_TOLERANCE = 0.005
"""Default largest deviation (as a share, 0.005 = 0.5 percentage points) of a language's query
or passage share from the random arm's that a matched plan may have
(``sampling.exposure_tolerance``)."""

_IPF_TOL = 1e-12
_IPF_MAX_ITER = 20_000
_IPF_GOOD_ENOUGH = 1e-7  # 1e-5 percentage points: a boundary solution IPF approaches slowly


@dataclass(frozen=True, eq=False)
class ExposurePlan:
    """The expected composition of a run's training pairs.

    Attributes:
        languages: the training languages (sorted), indexing ``joint``.
        joint: ``J[X, Y]``, the probability that a pair has its query in X and passage in Y.
        mono_ratio: the monolingual share (sum of the diagonal).
        allowed: cells the sampler may use (``joint`` is zero elsewhere).
        clusters: the clusters the plan was built for (empty for unclustered sampling).
        target_query, target_passage: the random arm's shares a matched plan aims at
            (``None`` for the other plans).
        kind: ``random``, ``free`` or ``matched``.
    """

    languages: tuple[str, ...]
    joint: np.ndarray
    mono_ratio: float
    allowed: np.ndarray
    clusters: tuple[tuple[str, ...], ...] = ()
    target_query: np.ndarray | None = None
    target_passage: np.ndarray | None = None
    kind: str = "random"
    notes: tuple[str, ...] = field(default=())

    @property
    def query_share(self) -> np.ndarray:
        """Share of query texts per language (row sums)."""
        return self.joint.sum(axis=1)

    @property
    def passage_share(self) -> np.ndarray:
        """Share of passage texts per language (column sums)."""
        return self.joint.sum(axis=0)

    def mono_weights(self) -> np.ndarray:
        """Probability of each language for a monolingual pair (zeros without mono pairs)."""
        diag = np.diag(self.joint).copy()
        total = diag.sum()
        return diag / total if total > 0 else diag

    def cross_pairs(self) -> list[tuple[str, str]]:
        """The cross-lingual cells with positive probability, in row-major order."""
        n = len(self.languages)
        return [(self.languages[i], self.languages[j]) for i in range(n) for j in range(n)
                if i != j and self.joint[i, j] > 0]

    def cross_weights(self) -> np.ndarray:
        """Probability of each of :meth:`cross_pairs` for a cross-lingual pair."""
        idx = {lang: i for i, lang in enumerate(self.languages)}
        w = np.array([self.joint[idx[x], idx[y]] for x, y in self.cross_pairs()])
        return w / w.sum() if w.size and w.sum() > 0 else w

    def deviation(self) -> float:
        """Largest absolute difference from the target shares (0 without targets)."""
        if self.target_query is None or self.target_passage is None:
            return 0.0
        return float(max(np.abs(self.query_share - self.target_query).max(),
                         np.abs(self.passage_share - self.target_passage).max()))

    def shares(self) -> dict[str, tuple[float, float]]:
        """``{lang: (query share, passage share)}``."""
        return {lang: (float(q), float(d)) for lang, q, d in
                zip(self.languages, self.query_share, self.passage_share, strict=True)}


def _index(languages: Sequence[str]) -> dict[str, int]:
    return {lang: i for i, lang in enumerate(languages)}


def partner_mask(languages: Sequence[str], partners: Mapping[str, Sequence[str]]) -> np.ndarray:
    """Boolean ``L × L`` matrix: ``[X, Y]`` is true when Y is a cross-lingual partner of X."""
    idx = _index(languages)
    mask = np.zeros((len(languages), len(languages)), dtype=bool)
    for x, ys in partners.items():
        for y in ys:
            mask[idx[x], idx[y]] = True
    np.fill_diagonal(mask, False)
    return mask


def random_arm_plan(languages: Sequence[str], weights: np.ndarray,
                    partners: Mapping[str, Sequence[str]], mono_ratio: float) -> ExposurePlan:
    """The plan of unclustered sampling with language ``weights`` (``n_X ** temperature``)."""
    langs = tuple(languages)
    w = np.asarray(weights, dtype=np.float64)
    n = len(langs)
    joint = np.zeros((n, n))
    if mono_ratio > 0:
        joint[np.diag_indices(n)] = mono_ratio * w / w.sum()
    mask = partner_mask(langs, partners)
    if mono_ratio < 1 and mask.any():
        has = mask.any(axis=1)
        p_x = np.where(has, w, 0.0)
        p_x /= p_x.sum()
        for i in np.flatnonzero(has):
            wy = np.where(mask[i], w, 0.0)
            joint[i] += (1 - mono_ratio) * p_x[i] * wy / wy.sum()
    allowed = mask.copy()
    if mono_ratio > 0:
        np.fill_diagonal(allowed, True)
    return ExposurePlan(langs, joint, mono_ratio, allowed, kind="random")


def allowed_cells(languages: Sequence[str], partners: Mapping[str, Sequence[str]],
                  clusters: Sequence[Sequence[str]], pairing: str,
                  mono_ratio: float) -> np.ndarray:
    """Cells clustered sampling may use: the diagonal (when ``mono_ratio > 0``) and the partner
    pairs inside one cluster (``within``, ``cluster_batch``) or across two (``across``)."""
    idx = _index(languages)
    label = np.full(len(languages), -1)
    for c, members in enumerate(clusters):
        for lang in members:
            label[idx[lang]] = c
    same = label[:, None] == label[None, :]
    mask = partner_mask(languages, partners) & (~same if pairing == "across" else same)
    if mono_ratio > 0:
        np.fill_diagonal(mask, True)
    return mask


def _components(mask: np.ndarray) -> list[list[int]]:
    """Connected components of the languages linked by allowed cross-lingual cells."""
    n = mask.shape[0]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    links = mask | mask.T
    np.fill_diagonal(links, False)
    for i, j in zip(*np.nonzero(links), strict=True):
        parent[find(int(i))] = find(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _fmt_pp(x: float) -> str:
    return f"{100 * x:.2f} pp"


def matched_plan(random_plan: ExposurePlan, clusters: Sequence[Sequence[str]], pairing: str,
                 partners: Mapping[str, Sequence[str]],
                 tolerance: float = EXPOSURE_TOLERANCE) -> ExposurePlan:
    """The exposure-matched plan of clustered sampling (see the module docstring).

    Raises:
        SpecError: (at ``sampling.exposure``) the clustering cannot keep every language's
            shares within ``tolerance`` of the random arm's; the message names the clusters,
            the languages and what would work.
    """
    langs = random_plan.languages
    m = random_plan.mono_ratio
    target = random_plan.joint
    q, d = target.sum(axis=1), target.sum(axis=0)
    allowed = allowed_cells(langs, partners, clusters, pairing, m)
    cluster_names = "; ".join("[" + " ".join(c) + "]" for c in clusters)
    other = "'within'" if pairing == "across" else "'across'"
    advice = (f"another n_clusters, sampling.min_cluster_size = 2, pairing = {other}, or "
              "sampling.exposure = 'free' (which changes how often each language is trained)")
    looser = f"; or accept more with sampling.exposure_tolerance (now {_fmt_pp(tolerance)})"
    stranded = [langs[i] for i in range(len(langs))
                if (q[i] > 0 or d[i] > 0) and not allowed[i].any() and not allowed[:, i].any()]
    if stranded:
        raise SpecError(
            "sampling.exposure",
            f"clusters {cluster_names} with pairing {pairing!r} leave {', '.join(stranded)} "
            "without any language pair to train in (a singleton cluster can only be trained "
            "in monolingual batches, and this strategy has none); try " + advice,
            value="matched", has_value=False)

    # 1. within a component of allowed cross-lingual cells, query and passage totals must agree
    q_adj, d_adj = q.copy(), d.copy()
    worst: list[tuple[float, list[str]]] = []
    for comp in _components(allowed & ~np.eye(len(langs), dtype=bool)):
        delta = float(q[comp].sum() - d[comp].sum())
        shift = delta / (2 * len(comp))
        q_adj[comp] -= shift
        d_adj[comp] += shift
        worst.append((abs(shift), [langs[i] for i in comp]))
    deviation = max((w for w, _ in worst), default=0.0)
    if deviation > tolerance:
        bad = [f"{' '.join(c)} (±{_fmt_pp(w)})" for w, c in sorted(worst, reverse=True)
               if w > tolerance]
        raise SpecError(
            "sampling.exposure",
            f"clusters {cluster_names} with pairing {pairing!r} cannot keep each language's "
            f"query and passage shares within {_fmt_pp(tolerance)} of the random arm's: the "
            f"random arm trains these languages more often as queries than as passages (or the "
            f"reverse), which pairs inside one cluster cannot carry: {', '.join(bad)}; "
            f"try {advice}{looser}", value="matched", has_value=False)

    # 2. can the targets be met at all on the allowed cells? (a linear program)
    diag = np.eye(len(langs), dtype=bool)
    exact = _feasible_joint(allowed, q_adj, d_adj, m)
    # 3. iterative proportional fitting from the random arm's joint: the closest plan (KL)
    joint = np.where(allowed, target, 0.0)
    # a cell the random arm never uses but clustering allows (cannot happen with the
    # random arm's own partners) still needs a positive start
    joint = np.where(allowed & (joint <= 0), 1e-12, joint)
    err = np.inf
    for _ in range(_IPF_MAX_ITER if exact is not None else 2_000):
        r = joint.sum(axis=1)
        joint *= np.divide(q_adj, r, out=np.zeros_like(r), where=r > 0)[:, None]
        c = joint.sum(axis=0)
        joint *= np.divide(d_adj, c, out=np.zeros_like(c), where=c > 0)[None, :]
        if 0 < m < 1:
            t = joint[diag].sum()
            if 0 < t < 1:
                joint[diag] *= m / t
                joint[~diag] *= (1 - m) / (1 - t)
        err = max(np.abs(joint.sum(axis=1) - q_adj).max(),
                  np.abs(joint.sum(axis=0) - d_adj).max(),
                  abs(joint[diag].sum() - m) if 0 < m < 1 else 0.0)
        if err < _IPF_TOL:
            break
    if exact is None:
        res = np.maximum(np.abs(joint.sum(axis=1) - q_adj), np.abs(joint.sum(axis=0) - d_adj))
        order = np.argsort(-res)[:3]
        names = ", ".join(f"{langs[i]} (off by {_fmt_pp(float(res[i]))})" for i in order)
        singles = [c[0] for c in clusters if len(c) == 1]
        why = ""
        if singles and pairing != "across":
            why = (f"; singleton clusters {', '.join(singles)} can only be trained in "
                   f"monolingual batches under {pairing!r} pairing"
                   + (", and this strategy has none" if m == 0 else ""))
        raise SpecError(
            "sampling.exposure",
            f"clusters {cluster_names} with pairing {pairing!r} and mono_ratio {m:g} cannot "
            f"give each language the random arm's query and passage shares: {names}{why}; "
            f"try {advice}", value="matched", has_value=False)
    if err > _IPF_GOOD_ENOUGH:
        # feasible only on the boundary and IPF has not got there: take the exact vertex
        joint = exact
    joint = np.clip(joint, 0.0, None)
    joint /= joint.sum()
    notes = []
    singles = [c[0] for c in clusters if len(c) == 1]
    if singles and pairing != "across":
        notes.append(f"{', '.join(singles)}: a singleton cluster, trained only in monolingual "
                     f"batches under {pairing!r} pairing (its text shares are kept)")
    if deviation > 1e-9:
        notes.append(f"largest share deviation from the random arm: {_fmt_pp(deviation)} "
                     "(within-cluster pairing cannot carry the random arm's query/passage "
                     "imbalance between clusters)")
    return ExposurePlan(langs, joint, m, allowed, tuple(tuple(c) for c in clusters),
                        q, d, kind="matched", notes=tuple(notes))


def _feasible_joint(allowed: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    mono_ratio: float) -> np.ndarray | None:
    """A joint on the ``allowed`` cells with these row and column sums and diagonal total
    ``mono_ratio`` (a linear program, scipy's HiGHS), or ``None`` when none exists."""
    cells = np.argwhere(allowed)
    n, k = allowed.shape[0], len(cells)
    a_eq, b_eq = [], []
    for i in range(n):
        a_eq.append((cells[:, 0] == i).astype(float))
        b_eq.append(rows[i])
        a_eq.append((cells[:, 1] == i).astype(float))
        b_eq.append(cols[i])
    if 0 < mono_ratio < 1:
        a_eq.append((cells[:, 0] == cells[:, 1]).astype(float))
        b_eq.append(mono_ratio)
    if k == 0:
        return None
    res = linprog(np.zeros(k), A_eq=np.array(a_eq), b_eq=np.array(b_eq), bounds=(0, None),
                  method="highs")
    if res.status != 0:
        return None
    out = np.zeros_like(allowed, dtype=np.float64)
    out[cells[:, 0], cells[:, 1]] = np.clip(res.x, 0.0, None)
    return out


def free_clustered_plan(languages: Sequence[str], weights: np.ndarray,
                        partners: Mapping[str, Sequence[str]],
                        clusters: Sequence[Sequence[str]], pairing: str, cluster_choice: str,
                        mono_ratio: float) -> ExposurePlan:
    """The expected plan of clustered sampling with ``exposure = "free"``: a cluster (by the
    sum of its languages' weights, or uniformly), then X inside it by weight, then Y among X's
    allowed partners by weight. The same per slot under ``cluster_batch``."""
    langs = tuple(languages)
    idx = _index(langs)
    w = np.asarray(weights, dtype=np.float64)
    n = len(langs)
    joint = np.zeros((n, n))
    allowed = allowed_cells(langs, partners, clusters, pairing, mono_ratio)

    def cluster_probs(cands: list[Sequence[str]]) -> np.ndarray:
        if cluster_choice == "size":
            cw = np.array([sum(w[idx[x]] for x in c) for c in cands])
        else:
            cw = np.ones(len(cands))
        return cw / cw.sum()

    if mono_ratio > 0:
        for pc, c in zip(cluster_probs(list(clusters)), clusters, strict=True):
            cw = np.array([w[idx[x]] for x in c])
            for x, px in zip(c, cw / cw.sum(), strict=True):
                joint[idx[x], idx[x]] += mono_ratio * pc * px
    if mono_ratio < 1:
        pairs_of = [[(x, y) for x in c for y in langs if allowed[idx[x], idx[y]] and x != y]
                    for c in clusters]
        cands = [(c, p) for c, p in zip(clusters, pairs_of, strict=True) if p]
        if cands:
            for pc, (_, pairs) in zip(cluster_probs([c for c, _ in cands]), cands, strict=True):
                xs = sorted({x for x, _ in pairs})
                xw = np.array([w[idx[x]] for x in xs])
                for x, px in zip(xs, xw / xw.sum(), strict=True):
                    ys = sorted(y for xx, y in pairs if xx == x)
                    yw = np.array([w[idx[y]] for y in ys])
                    for y, py in zip(ys, yw / yw.sum(), strict=True):
                        joint[idx[x], idx[y]] += (1 - mono_ratio) * pc * px * py
    return ExposurePlan(langs, joint, mono_ratio, allowed, tuple(tuple(c) for c in clusters),
                        kind="free")


def apportion(probabilities: np.ndarray, total: int) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``probabilities`` (largest
    remainder; ties go to the earlier index)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if total <= 0 or p.size == 0 or p.sum() <= 0:
        return np.zeros(p.size, dtype=np.int64)
    exact = p / p.sum() * total
    counts = np.floor(exact).astype(np.int64)
    rest = total - int(counts.sum())
    if rest > 0:
        order = sorted(range(p.size), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in order[:rest]:
            counts[i] += 1
    return counts


def round_half_up(x: float) -> int:
    """``round`` with halves rounded up (``round(2.5) == 3``), as the exact schedule counts."""
    return int(np.floor(x + 0.5))


def round_matrix(exact: np.ndarray) -> np.ndarray:
    """Integer counts for a matrix of expected counts whose cells, row sums and column sums
    each round up or down ("controlled rounding", Cox 1987) and whose total is kept.

    Solved as a small 0/1 program (scipy's HiGHS): each cell is its floor plus 0 or 1, the
    row and column sums stay between the floor and ceiling of their exact values, and the
    cells whose fractional parts are largest are preferred; a tiny index-based tie-break
    makes the answer unique, so it does not depend on the solver version. Falls back to
    largest remainders over the cells if the program fails.
    """
    e = np.asarray(exact, dtype=np.float64)
    eps = 1e-9
    base = np.floor(e + eps)
    frac = np.where(e - base > eps, e - base, 0.0)
    free = np.argwhere(frac > 0)
    total = int(np.floor(e.sum() + 0.5)) - int(base.sum())
    if total <= 0 or len(free) == 0:
        return base.astype(np.int64)
    n = len(free)
    rows, cols = e.shape
    a_row = np.zeros((rows, n))
    a_col = np.zeros((cols, n))
    for k, (i, j) in enumerate(free):
        a_row[i, k] = 1
        a_col[j, k] = 1
    row_exact, col_exact = e.sum(axis=1) - base.sum(axis=1), e.sum(axis=0) - base.sum(axis=0)
    constraints = [
        LinearConstraint(a_row, np.floor(row_exact + eps), np.ceil(row_exact - eps)),
        LinearConstraint(a_col, np.floor(col_exact + eps), np.ceil(col_exact - eps)),
        LinearConstraint(np.ones((1, n)), total, total),
    ]
    cost = 1.0 - 2.0 * frac[free[:, 0], free[:, 1]] + 1e-7 * np.arange(1, n + 1) / n
    res = milp(cost, integrality=np.ones(n), bounds=Bounds(0, 1), constraints=constraints,
               options={"mip_rel_gap": 0.0})
    out = base.copy()
    if res.status == 0 and res.x is not None:
        out[free[:, 0], free[:, 1]] += np.round(res.x)
    else:  # not expected (controlled roundings always exist); keep the total at least
        return apportion(e.ravel(), int(np.floor(e.sum() + 0.5))).reshape(e.shape)
    return out.astype(np.int64)
