"""Calibration of the report's statistics on simulated studies (issues 13 and 23).

Under each planted null of :data:`sim_study.NULLS` the test must reject at α = 0.05 in at most
8 % of draws and the 95 % interval must cover the true delta in 92–98 % of them, for
``--compare`` by language pair and by setting and for the ``--regress`` terms, also under the
pair structure of issue 23 (:data:`REGRESS_NULLS`: symmetric pair offsets, query- and
document-language effects) and for a language-level covariate; a planted 0.01 difference
(seed SD 0.003, 5 seeds, 1,000 questions) must be found in ≥ 80 %. The observed rates are
printed (``pytest -s``) and recorded as test properties (``--junitxml``). Fixed seeds; the
statistics functions are called directly (``test_report_calibration_cli.py`` goes through the
database and the CLI).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl
import pytest
import sim_study as sim

from xlrun.report.compare import compare_arms
from xlrun.report.inference import InferenceConfig
from xlrun.report.regression import Covariate, fit_pairs

ALPHA = 0.05
MAX_REJECT = 0.08
COVERAGE = (0.92, 0.98)
CFG = InferenceConfig()

PAIR_DRAWS = 200
"""Draws for ``--by language-pair`` (12 pairs each: 2,400 cells per scenario)."""
SETTING_DRAWS = 1000
"""Draws for ``--by setting`` (one cell each; 2 language pairs pooled per draw)."""
REGRESS_DRAWS = 500
"""Draws for ``--regress`` (one model over 20 pairs of 5 languages each): more than 200, so
that a calibrated test (5 %) stays under 8 % (and its coverage in 92–98 %) in every one of
the ~50 checks by more than two binomial standard errors."""
POWER_DRAWS = 200
"""Draws for the power case (one language pair, 1,000 questions)."""


def _report(record: Callable[[str, object], None], what: str, name: str, reject: float,
            cover: float, n: int) -> None:
    line = (f"{what:<26} {name:<24} reject {reject:6.1%}  cover {cover:6.1%}  "
            f"({n} tests)")
    print(f"\ncalibration: {line}")
    record(f"{what}:{name}", f"reject={reject:.4f} cover={cover:.4f} n={n}")


def _check_compare(out: pl.DataFrame, truth: float) -> tuple[float, float]:
    b = out.filter(pl.col("arm") == "b")
    p = b["p"].to_numpy()
    lo, hi = b["ci_low"].to_numpy(), b["ci_high"].to_numpy()
    assert not np.isnan(p).any()
    # one model: the interval excludes the null value exactly when p < α
    assert np.array_equal((lo > 0) | (hi < 0), p < ALPHA)
    return float((p < ALPHA).mean()), float(((lo <= truth) & (truth <= hi)).mean())


@pytest.mark.parametrize("name", list(sim.NULLS))
def test_compare_by_language_pair_is_calibrated(name: str, record_property) -> None:
    s = sim.NULLS[name]
    df = sim.frame(s, PAIR_DRAWS, rng_seed=101)
    out = compare_arms(df, ["dataset", "query_lang", "doc_lang"], "ap", "a", CFG).frame
    reject, cover = _check_compare(out, s.effect)
    _report(record_property, "compare by language pair", name, reject, cover,
            PAIR_DRAWS * len(s.pairs()))
    assert reject <= MAX_REJECT
    assert COVERAGE[0] <= cover <= COVERAGE[1]


@pytest.mark.parametrize("name", list(sim.NULLS))
def test_compare_by_setting_is_calibrated(name: str, record_property) -> None:
    s = sim.with_(sim.NULLS[name], langs=("en", "fi"))
    df = sim.frame(s, SETTING_DRAWS, rng_seed=202)
    out = compare_arms(df, ["dataset", "setting"], "ap", "a", CFG).frame
    reject, cover = _check_compare(out, s.effect)
    _report(record_property, "compare by setting", name, reject, cover, SETTING_DRAWS)
    assert reject <= MAX_REJECT
    assert COVERAGE[0] <= cover <= COVERAGE[1]


def test_compare_unpaired_seeds_is_calibrated(record_property) -> None:
    """Arms that ran different seeds: compared unpaired, still calibrated."""
    for name in ("a_seed_sd_0.01_3_seeds", "c_question_x_arm_0.04"):
        s = sim.with_(sim.NULLS[name], seeds_b=(4, 5, 6))
        df = sim.frame(s, PAIR_DRAWS // 2, rng_seed=303)  # 1,200 cells
        out = compare_arms(df, ["dataset", "query_lang", "doc_lang"], "ap", "a", CFG).frame
        assert set(out.filter(pl.col("arm") == "b")["design"]) == {"unpaired 3/3"}
        reject, cover = _check_compare(out, s.effect)
        _report(record_property, "compare unpaired", name, reject, cover, out.height // 2)
        assert reject <= MAX_REJECT
        assert COVERAGE[0] <= cover <= COVERAGE[1]


def test_compare_two_seeds_keeps_its_level(record_property) -> None:
    """Two seeds with a large seed SD (0.02): compared unpaired (pairing needs 3 seeds), each
    arm's seed term kept, so a cell whose two seeds happen to agree does not borrow the
    questions' degrees of freedom (setting a negative seed component to zero instead rejected
    ~11 % of these nulls)."""
    s = sim.with_(sim.Scenario("two seeds"), seed_sd=0.02, seeds_a=(1, 2), seeds_b=(1, 2))
    df = sim.frame(s, PAIR_DRAWS // 2, rng_seed=707)
    out = compare_arms(df, ["dataset", "query_lang", "doc_lang"], "ap", "a", CFG).frame
    reject, cover = _check_compare(out, s.effect)
    _report(record_property, "compare by language pair", "2 seeds, seed SD 0.02", reject,
            cover, out.height // 2)
    assert reject <= MAX_REJECT
    assert COVERAGE[0] <= cover <= COVERAGE[1]


def test_compare_power(record_property) -> None:
    s = sim.POWER
    df = sim.frame(s, POWER_DRAWS, rng_seed=404)
    out = compare_arms(df, ["dataset", "query_lang", "doc_lang"], "ap", "a", CFG).frame
    reject, cover = _check_compare(out, s.effect)
    _report(record_property, "compare power", "0.01 delta", reject, cover, POWER_DRAWS)
    assert reject >= 0.80
    assert COVERAGE[0] <= cover <= COVERAGE[1]


REGRESS_TRUTH = {"distance": "slope", "same_cluster": None, "arm[b]": "effect",
                 "arm[b]:distance": "b_slope"}

_FIVE = sim.Scenario("regress", langs=sim.LANGS5, seed_sd=0.01)
REGRESS_NULLS: dict[str, sim.Scenario] = {
    **{key: sim.with_(s, langs=sim.LANGS5) for key, s in sim.NULLS.items()},
    "e_symmetric_pairs_0.05": sim.with_(_FIVE, sym_pair_sd=0.05),
    "f_symmetric_pairs_0.10": sim.with_(_FIVE, sym_pair_sd=0.10),
    "g_half_symmetric_0.05+0.05": sim.with_(_FIVE, sym_pair_sd=0.05, pair_sd=0.05),
    "h_query_doc_language_0.05": sim.with_(_FIVE, qlang_sd=0.05, dlang_sd=0.05),
    "i_8_languages_symmetric_0.10": sim.with_(_FIVE, langs=sim.LANGS8, sym_pair_sd=0.10),
    "j_arm_x_symmetric_pair_0.05": sim.with_(_FIVE, arm_sym_pair_sd=0.05),
}
"""The regression's nulls on 5 languages (20 ordered cross pairs, 10 unordered): issue 13's
(a)–(d) and issue 23's pair structure: (e, f) an affinity of the unordered pair, x→y and y→x
alike; (g) half of the pair variance symmetric; (h) query- and document-language main
effects; (i) symmetric offsets with 8 languages; (j) an arm effect that varies by unordered
pair (for ``arm[b]:distance``)."""

REGRESS_CHECKED: dict[str, tuple[str, ...]] = {
    "j_arm_x_symmetric_pair_0.05": ("same_cluster", "arm[b]", "arm[b]:distance")}
"""Terms checked where not all are: in (j) only arm b varies by pair, so ``distance`` (the
baseline's slope) is judged against arm × pair variation the baseline does not have and is
conservative (~1.5 % rejections, docs/statistics.md's limits)."""


@pytest.mark.parametrize("name", list(REGRESS_NULLS))
def test_regress_distance_is_calibrated(name: str, record_property) -> None:
    """Before issue 23 (ordered pairs as independent units, language effects dropped when
    they did not fit) (e)–(i) rejected 10–30 % for distance and same_cluster; now the terms
    are judged against unordered pairs beyond the languages' effects."""
    s = REGRESS_NULLS[name]
    rng = np.random.default_rng([505, list(REGRESS_NULLS).index(name)])  # own draws each
    hits: dict[str, list[tuple[bool, bool]]] = {
        t: [] for t in REGRESS_CHECKED.get(name, tuple(REGRESS_TRUTH))}
    for _ in range(REGRESS_DRAWS):
        res = fit_pairs(sim.pair_data(s, rng), baseline="a")
        for r in res.table.iter_rows(named=True):
            if r["term"] in hits:
                field = REGRESS_TRUTH[r["term"]]
                truth = getattr(s, field) if field else 0.0
                assert (r["p"] < ALPHA) == (r["ci_low"] > 0 or r["ci_high"] < 0)  # one t
                hits[r["term"]].append((r["p"] < ALPHA, r["ci_low"] <= truth <= r["ci_high"]))
    for term, h in hits.items():
        reject = float(np.mean([a for a, _ in h]))
        cover = float(np.mean([c for _, c in h]))
        _report(record_property, f"regress {term}", name, reject, cover, len(h))
        assert len(h) == REGRESS_DRAWS
        assert reject <= MAX_REJECT, term
        assert COVERAGE[0] <= cover <= COVERAGE[1], term


def test_regress_interaction_against_arm_by_pair_variation(record_property) -> None:
    """The arm's effect varies by pair (SD 0.05), but not with distance: arm:distance keeps
    its level; a planted slope difference of 0.25 per unit distance is found in most draws
    (8 languages: 28 unordered pairs less 8 language effects of the arm's difference and the
    slope leave 19 degrees of freedom)."""
    null = sim.with_(sim.Scenario("arm x pair", langs=sim.LANGS8), arm_pair_sd=0.05,
                     seed_sd=0.01)
    planted = sim.with_(null, b_slope=0.25)
    rng = np.random.default_rng(606)
    for s, name in ((null, "null, arm x pair 0.05"), (planted, "planted slope 0.25")):
        rows = [r for _ in range(REGRESS_DRAWS)
                for r in fit_pairs(sim.pair_data(s, rng), baseline="a").table.iter_rows(named=True)
                if r["term"] == "arm[b]:distance"]
        reject = float(np.mean([r["p"] < ALPHA for r in rows]))
        cover = float(np.mean([r["ci_low"] <= s.b_slope <= r["ci_high"] for r in rows]))
        _report(record_property, "regress arm[b]:distance", name, reject, cover, len(rows))
        assert COVERAGE[0] <= cover <= COVERAGE[1]
        if s.b_slope:
            assert reject >= 0.8
        else:
            assert reject <= MAX_REJECT


@pytest.mark.parametrize("langs", [sim.LANGS5, sim.LANGS8], ids=["5 languages", "8 languages"])
def test_regress_language_level_covariate_is_calibrated(langs: tuple[str, ...],
                                                        record_property) -> None:
    """The way later language-level terms join (issue 27's distance to the training
    languages): a covariate of the query language, here a random number per language, under
    query- and document-language effects and symmetric pair offsets. It is judged between
    query languages (their effects random in its fit), so its degrees of freedom come from
    the languages: about L − 2."""
    s = sim.with_(_FIVE, langs=langs, qlang_sd=0.05, dlang_sd=0.05, sym_pair_sd=0.05)
    rng = np.random.default_rng(909)
    pairs = s.pairs()
    z = dict(zip(langs, rng.normal(0, 1, len(langs)), strict=True))  # the languages' property
    cov = Covariate("z", "query_lang", np.array([z[q] for q, _ in pairs]))
    hits, dfs = [], []
    for _ in range(REGRESS_DRAWS):
        res = fit_pairs(sim.pair_data(s, rng, (cov,)), baseline="a")
        r = res.table.filter(pl.col("term") == "z").row(0, named=True)
        assert r["against"].startswith("query languages")
        hits.append((r["p"] < ALPHA, r["ci_low"] <= 0.0 <= r["ci_high"]))
        dfs.append(r["df"])
    reject = float(np.mean([a for a, _ in hits]))
    cover = float(np.mean([c for _, c in hits]))
    _report(record_property, "regress language covariate", f"{len(langs)} languages", reject,
            cover, len(hits))
    assert len(langs) - 3 <= np.median(dfs) <= len(langs) - 1
    assert reject <= MAX_REJECT
    assert COVERAGE[0] <= cover <= COVERAGE[1]
