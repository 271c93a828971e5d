"""Simulated studies with planted effects for the calibration tests of the report statistics.

One *draw* is one simulated study: two arms (``a`` the baseline, ``b``), a few seeds each, a
set of language pairs and parallel questions (every question in every pair). A draw's rows
carry their own ``dataset`` (``sim0000``, ``sim0001``, ...), so one call of the statistics
over many draws tests each draw separately (its questions are its own units) and is fast.

The value of run ``(arm, seed)`` on question ``q`` of pair ``p`` is::

    0.5 + v[q]                      question difficulty      (question_sd)
        + t[p, q]                   a translation's own difficulty (translation_sd)
        + o[p]                      language-pair offset, both arms  (pair_sd), drawn per
                                    *ordered* pair
        + o_sym[{x, y}]             symmetric pair offset: x→y and y→x share it (sym_pair_sd)
        + l_q[x] + l_d[y]           query- and document-language main effects (qlang_sd,
                                    dlang_sd): a language easier as a query or as a target
        + slope * distance[p]       distance effect, both arms (slope)
        + u[arm, seed]              the training run's offset  (seed_sd), independent per arm
        + s[arm, seed, p]           seed x pair interaction   (seed_pair_sd)
        + [arm b] effect + b_slope * distance[p] + w[q] + x[p] + x_sym[{x, y}]
                                    planted delta, its distance slope, question x arm
                                    interaction (qa_sd), pair x arm interaction (arm_pair_sd;
                                    symmetric: arm_sym_pair_sd)
        + e                         run x pair x question noise  (noise)

The *true* delta of a cell is ``effect`` (+ ``b_slope`` x its distance): the interactions
``w`` and ``x`` are random with mean zero, so a conclusion that generalises over questions and
language pairs must not take them for an effect.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

if TYPE_CHECKING:  # only pair_data needs xlrun: the benchmark also runs older checkouts
    from xlrun.report.regression import Covariate, PairData

LANGS: tuple[str, ...] = ("en", "de", "fi", "sw")
POSITION: dict[str, float] = {"en": 0.0, "de": 0.25, "fi": 0.7, "sw": 1.0, "ru": 0.45,
                              "hi": 0.9, "ar": 0.6, "tr": 0.8, "fr": 0.1, "zh": 0.35,
                              "th": 0.55, "vi": 0.95, "el": 0.15}
"""Languages on a line: the distance of two languages is how far apart they are."""

LANGS5: tuple[str, ...] = ("en", "de", "ru", "fi", "sw")
LANGS8: tuple[str, ...] = ("en", "fr", "de", "ru", "ar", "fi", "tr", "sw")
"""Five and eight languages (20 and 56 ordered cross pairs) for the regression's nulls."""


def cluster_of(lang: str) -> int:
    """The language's cluster: 1 for the far half of the line (fi, sw, ...), else 0."""
    return int(POSITION[lang] >= 0.5)


@dataclass(frozen=True)
class Scenario:
    """The parameters of a simulated study (see the module docstring)."""

    name: str = "base"
    langs: tuple[str, ...] = LANGS
    cross_only: bool = True
    n_questions: int = 30
    seeds_a: tuple[int, ...] = (1, 2, 3)
    seeds_b: tuple[int, ...] = (1, 2, 3)
    question_sd: float = 0.15
    translation_sd: float = 0.05
    pair_sd: float = 0.0
    slope: float = 0.0
    seed_sd: float = 0.0
    seed_pair_sd: float = 0.0
    effect: float = 0.0
    b_slope: float = 0.0
    qa_sd: float = 0.0
    arm_pair_sd: float = 0.0
    noise: float = 0.05
    sym_pair_sd: float = 0.0
    qlang_sd: float = 0.0
    dlang_sd: float = 0.0
    arm_sym_pair_sd: float = 0.0
    missing_b: int = 0
    """Language pairs that arm b's runs lack (chosen at random per draw; see :func:`present`)."""
    only_pairs: tuple[tuple[str, str], ...] = ()
    """If given, the study's language pairs (else every pair of ``langs``)."""

    def pairs(self) -> list[tuple[str, str]]:
        """The language pairs (query, document language) of the study."""
        if self.only_pairs:
            return list(self.only_pairs)
        return [(q, d) for q in self.langs for d in self.langs
                if not (self.cross_only and q == d)]

    def distance(self, q: str, d: str) -> float:
        """The distance of two languages (0 for a language with itself)."""
        return abs(POSITION[q] - POSITION[d])


NULLS: dict[str, Scenario] = {
    "a_seed_sd_0.01_3_seeds": Scenario("a", seed_sd=0.01),
    "b_seed_sd_0_5_seeds": Scenario("b", seeds_a=(1, 2, 3, 4, 5), seeds_b=(1, 2, 3, 4, 5)),
    "c_question_x_arm_0.04": Scenario("c", qa_sd=0.04, seed_sd=0.005),
    "d_pair_offsets_0.05": Scenario("d", pair_sd=0.05, seed_sd=0.01),
}
"""The planted nulls of issue 13: (a) seed SD 0.01 with 3 seeds, (b) no seed variance and 5
seeds, (c) an arm effect that varies by question (SD 0.04, zero on average), (d) language-pair
offsets (SD 0.05)."""

POWER = Scenario("power", n_questions=1000, seeds_a=(1, 2, 3, 4, 5), seeds_b=(1, 2, 3, 4, 5),
                 seed_sd=0.003, effect=0.01, only_pairs=(("en", "de"),))
"""Issue 13's power case: a planted 0.01 difference, seed SD 0.003, 5 seeds, 1,000 questions
(one language pair: en→de)."""


def values(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """One draw as an array ``[arm, seed, pair, question]`` (arm 0 = ``a``, 1 = ``b``; the
    seed axis has ``max(len(seeds_a), len(seeds_b))`` entries, NaN beyond an arm's seeds)."""
    pairs = s.pairs()
    n_p, n_q = len(pairs), s.n_questions
    n_s = max(len(s.seeds_a), len(s.seeds_b))
    dist = np.array([s.distance(q, d) for q, d in pairs])
    base = (0.5 + rng.normal(0, s.question_sd, n_q)[None, :]
            + rng.normal(0, s.translation_sd, (n_p, n_q))
            + rng.normal(0, s.pair_sd, n_p)[:, None] + s.slope * dist[:, None])
    unordered = _unordered(pairs)
    if s.sym_pair_sd:
        base = base + rng.normal(0, s.sym_pair_sd, unordered.max() + 1)[unordered][:, None]
    for sd, side in ((s.qlang_sd, 0), (s.dlang_sd, 1)):
        if sd:
            effect = dict(zip(s.langs, rng.normal(0, sd, len(s.langs)), strict=True))
            base = base + np.array([effect[p[side]] for p in pairs])[:, None]
    out = np.full((2, n_s, n_p, n_q), np.nan)
    w = rng.normal(0, s.qa_sd, n_q)[None, :]
    x = rng.normal(0, s.arm_pair_sd, n_p)[:, None]
    if s.arm_sym_pair_sd:
        x = x + rng.normal(0, s.arm_sym_pair_sd, unordered.max() + 1)[unordered][:, None]
    for arm, seeds in ((0, s.seeds_a), (1, s.seeds_b)):
        for j in range(len(seeds)):
            v = (base + rng.normal(0, s.seed_sd)
                 + rng.normal(0, s.seed_pair_sd, n_p)[:, None]
                 + rng.normal(0, s.noise, (n_p, n_q)))
            if arm:
                v = v + s.effect + s.b_slope * dist[:, None] + w + x
            out[arm, j] = v
    return out


def _unordered(pairs: list[tuple[str, str]]) -> np.ndarray:
    """Each pair's unordered pair as an index (x→y and y→x the same)."""
    keys = sorted({tuple(sorted(p)) for p in pairs})
    return np.array([keys.index(tuple(sorted(p))) for p in pairs])


def present(s: Scenario, rng: np.random.Generator) -> np.ndarray:
    """Which pairs each arm has in a draw (``[arm, pair]`` booleans): all, except the
    ``missing_b`` pairs arm b lacks (drawn at random; at least one pair is kept)."""
    n_p = len(s.pairs())
    have = np.ones((2, n_p), dtype=bool)
    if s.missing_b:
        gone = rng.choice(n_p, size=min(s.missing_b, n_p - 1), replace=False)
        have[1, gone] = False
    return have


def frame(s: Scenario, draws: int, rng_seed: int) -> pl.DataFrame:
    """``draws`` simulated studies as report rows (``dataset`` = the draw), with the columns
    the statistics read: ``dataset, split, setting, query_lang, doc_lang, query_id, arm,
    run_id, seed, ap``."""
    rng = np.random.default_rng(rng_seed)
    pairs = s.pairs()
    n_p, n_q = len(pairs), s.n_questions
    cols: dict[str, list[np.ndarray]] = {k: [] for k in (
        "draw", "arm", "run_id", "seed", "pair", "question", "ap")}
    run_id = 0
    for k in range(draws):
        vals = values(s, rng)
        have = present(s, rng) if s.missing_b else np.ones((2, n_p), dtype=bool)
        for arm, seeds in ((0, s.seeds_a), (1, s.seeds_b)):
            kept = np.flatnonzero(have[arm])
            for j, seed in enumerate(seeds):
                run_id += 1
                n = len(kept) * n_q
                cols["draw"].append(np.full(n, k))
                cols["arm"].append(np.full(n, arm))
                cols["run_id"].append(np.full(n, run_id))
                cols["seed"].append(np.full(n, seed))
                cols["pair"].append(np.repeat(kept, n_q))
                cols["question"].append(np.tile(np.arange(n_q), len(kept)))
                cols["ap"].append(vals[arm, j][kept].ravel())
    c = {k: np.concatenate(v) for k, v in cols.items()}
    qlang = np.array([q for q, _ in pairs])
    dlang = np.array([d for _, d in pairs])
    df = pl.DataFrame({
        "dataset": pl.Series([f"sim{k:04d}" for k in range(draws)]).gather(c["draw"]),
        "query_lang": qlang[c["pair"]], "doc_lang": dlang[c["pair"]],
        "query_id": pl.Series([f"q{i}" for i in range(n_q)]).gather(c["question"]),
        "arm": np.array(["a", "b"])[c["arm"]], "run_id": c["run_id"].astype(np.int64),
        "seed": c["seed"].astype(np.int64), "ap": c["ap"]})
    return df.with_columns(pl.lit("test").alias("split"), pl.lit("cross").alias("setting"))


def distances(s: Scenario) -> pl.DataFrame:
    """The languages' distances as ``language_distances`` gives them (both orders)."""
    rows = [(q, d, s.distance(q, d)) for q in s.langs for d in s.langs]
    return pl.DataFrame(rows, schema=["query_lang", "doc_lang", "distance"], orient="row")


def with_(s: Scenario, **kw: object) -> Scenario:
    """``s`` with some fields replaced."""
    return replace(s, **kw)  # type: ignore[arg-type]


def pair_data(s: Scenario, rng: np.random.Generator,
              covariates: tuple[Covariate, ...] = ()) -> PairData:
    """Stage 1 of the regression straight from a simulated draw (what
    :func:`xlrun.report.regression.pair_data` makes of its rows)."""
    from xlrun.report.regression import PairData

    v = values(s, rng)  # arm, seed, pair, question
    runs, arms, seeds, means, pooled = [], [], [], [], []
    for arm, labels in ((0, s.seeds_a), (1, s.seeds_b)):
        for j, seed in enumerate(labels):
            runs.append(len(runs) + 1)
            arms.append("ab"[arm])
            seeds.append(seed)
            means.append(v[arm, j].mean(axis=1))
            pooled.append(v[arm, j].mean(axis=0))
    pairs = s.pairs()
    same = np.array([float(cluster_of(q) == cluster_of(d)) for q, d in pairs])
    return PairData(pairs, runs, arms, seeds, np.array(means), np.array(pooled).T,
                    np.array([s.distance(q, d) for q, d in pairs]),
                    np.tile(same, (len(runs), 1)), s.n_questions, covariates=covariates)
