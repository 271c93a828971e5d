"""Statistics of reports: Holm, marks, paired tests, bootstrap, arm comparison, regression."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest

from xlrun.errors import UsageError
from xlrun.report import stats
from xlrun.report.stats import InferenceConfig


def test_holm_matches_hand_example() -> None:
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> max(.06, .04)=.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005, None])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjusted[4] is None
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_significance_marks() -> None:
    assert [stats.significance_mark(p) for p in (0.0005, 0.005, 0.03, 0.05, 0.2, None)] == \
        ["***", "**", "*", "", "", ""]


def test_sign_flip_matches_exact_distribution() -> None:
    d = np.ones(5)  # exact two-sided p = 2 / 2**5
    assert stats.sign_flip_pvalue(d, 20_000, seed=1) == pytest.approx(0.0625, abs=0.01)
    assert stats.sign_flip_pvalue(np.zeros(6), 100) == 1.0
    assert stats.sign_flip_pvalue(np.ones(1), 100) is None


def test_exhaustive_small_case_agrees_with_enumeration() -> None:
    d = np.array([0.3, -0.1, 0.25, 0.4, 0.05, 0.2])
    sums = [abs(np.dot(s, d)) for s in itertools.product((-1, 1), repeat=d.size)]
    exact = np.mean([s >= abs(d.sum()) - 1e-12 for s in sums])
    assert stats.sign_flip_pvalue(d, 20_000, seed=3) == pytest.approx(exact, abs=0.01)


def test_batched_tests_equal_one_by_one() -> None:
    rng = np.random.default_rng(0)
    diffs = [rng.normal(0.02, 0.1, 40), rng.normal(0, 0.1, 40), rng.normal(0, 0.1, 25),
             np.array([0.1]), np.array([])]
    cfg = InferenceConfig(n_permutations=500, n_bootstrap=300, seed=5)
    out = stats.paired_tests(diffs, cfg)
    for d, r in zip(diffs, out, strict=True):
        assert r["n_paired"] == d.size
        if d.size < 2:
            assert r["p_t"] is None and r["p_rand"] is None and r["ci_low"] is None
            continue
        assert r["delta"] == pytest.approx(d.mean())
        assert r["p_t"] == pytest.approx(stats.paired_t_pvalue(d))
        assert r["p_rand"] == pytest.approx(stats.sign_flip_pvalue(d, 500, 5))
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(stats.bootstrap_ci(d, 300, 5))
    assert out[4]["delta"] is None


def test_false_positive_rate_is_near_alpha() -> None:
    rng = np.random.default_rng(42)
    diffs = [rng.normal(0.0, 0.1, 30) for _ in range(200)]  # 200 cells, no effect
    res = stats.paired_tests(diffs, InferenceConfig(n_permutations=400, n_bootstrap=100, seed=7))
    rate_t = np.mean([r["p_t"] < 0.05 for r in res])
    rate_rand = np.mean([r["p_rand"] < 0.05 for r in res])
    assert 0.01 <= rate_t <= 0.10
    assert 0.01 <= rate_rand <= 0.10
    # ... and the tests do find a real effect
    planted = stats.paired_tests([rng.normal(0.05, 0.1, 30) + 0.03 for _ in range(20)],
                                 InferenceConfig(n_permutations=400, n_bootstrap=100))
    assert np.mean([r["p_t"] < 0.05 for r in planted]) > 0.8


def test_bootstrap_interval_covers_true_delta() -> None:
    rng = np.random.default_rng(3)
    true = 0.05
    diffs = [rng.normal(true, 0.1, 50) for _ in range(200)]
    res = stats.paired_tests(diffs, InferenceConfig(n_permutations=100, n_bootstrap=1000, seed=1))
    coverage = np.mean([r["ci_low"] <= true <= r["ci_high"] for r in res])
    assert 0.88 <= coverage <= 0.99
    assert all(r["ci_low"] < r["delta"] < r["ci_high"] for r in res)


def _frame(rows: list[tuple[str, str, str, int, str, float]]) -> pl.DataFrame:
    df = pl.DataFrame(rows, schema=["arm", "query_lang", "doc_lang", "run_id", "query_id",
                                    "ap"], orient="row")
    return df.with_columns(pl.lit("d").alias("dataset"), pl.lit("test").alias("split"),
                           pl.lit("cross").alias("setting"))


def test_missing_arm_gives_nulls_not_zeros() -> None:
    rows = []
    for arm, run0 in (("random", 0), ("clustered", 10)):
        for seed in range(2):
            for i in range(5):
                rows.append((arm, "en", "de", run0 + seed, f"q{i}", 0.5 + 0.01 * i))
                if arm == "random":  # clustered has no en->fi results
                    rows.append((arm, "en", "fi", run0 + seed, f"q{i}", 0.4))
    out = stats.compare_arms(_frame(rows), ["query_lang", "doc_lang"], "ap", "random",
                             InferenceConfig(n_permutations=100, n_bootstrap=100))
    assert out.height == 4
    missing = out.filter(pl.col("doc_lang") == "fi", pl.col("arm") == "clustered").row(
        0, named=True)
    for col in ("mean", "n_queries", "n_runs", "delta", "ci_low", "p_t", "p_rand", "p_holm"):
        assert missing[col] is None, col
    assert missing["mark"] in (None, "")
    present = out.filter(pl.col("doc_lang") == "de", pl.col("arm") == "clustered").row(
        0, named=True)
    assert present["delta"] == pytest.approx(0.0)
    assert present["n_queries"] == 5 and present["n_runs"] == 2


def test_seeds_are_averaged_before_pairing() -> None:
    rows = []
    for seed in range(4):
        for i in range(6):
            rows.append(("a", "en", "de", seed, f"q{i}", 0.5 + 0.02 * i))
            rows.append(("b", "en", "de", 10 + seed, f"q{i}", 0.5 + 0.02 * i + 0.1 * seed))
    out = stats.compare_arms(_frame(rows), ["query_lang"], "ap", "a",
                             InferenceConfig(n_permutations=100, n_bootstrap=100))
    b = out.filter(pl.col("arm") == "b").row(0, named=True)
    assert b["n_paired"] == 6  # one pair per query, not per query × seed
    assert b["delta"] == pytest.approx(0.15)
    assert b["p_t"] is None  # every paired difference is the same: no variance


def test_compare_needs_two_arms_and_known_baseline() -> None:
    rows = [("a", "en", "de", 0, f"q{i}", 0.5) for i in range(3)]
    with pytest.raises(UsageError, match="two arms"):
        stats.compare_arms(_frame(rows), ["query_lang"], "ap")
    with pytest.raises(UsageError, match="baseline"):
        stats.arm_order(["a", "b"], "c")
    assert stats.arm_order(["b", "a", "c"]) == ["a", "b", "c"]
    assert stats.arm_order(["b", "a", "c"], "c") == ["c", "a", "b"]
    with pytest.raises(UsageError, match="--by"):
        stats.cell_columns("language")


def test_regression_recovers_planted_distance_slope() -> None:
    rng = np.random.default_rng(11)
    langs = ["en", "de", "fi", "sw"]
    pos = {"en": 0.0, "de": 0.2, "fi": 0.7, "sw": 1.0}
    dist = {(a, b): abs(pos[a] - pos[b]) for a in langs for b in langs}
    clusters = {"en": 0, "de": 0, "fi": 1, "sw": 1}
    rows = []
    difficulty = {(q, i): rng.normal(0.5, 0.1) for q in langs for i in range(40)}
    for arm, run0 in (("random", 0), ("clustered", 10)):
        for seed in range(2):
            for q in langs:
                for d in langs:
                    slope = -0.1 + (0.2 if arm == "clustered" else 0.0)  # planted: +0.2
                    for i in range(40):
                        v = difficulty[(q, i)] + slope * dist[(q, d)] + rng.normal(0, 0.02)
                        rows.append((arm, q, d, run0 + seed, f"q{i}", v))
    df = _frame(rows)
    distances = pl.DataFrame([(a, b, v) for (a, b), v in dist.items()],
                             schema=["query_lang", "doc_lang", "distance"], orient="row")
    cl = pl.DataFrame([(10 + s, lang, c) for s in range(2) for lang, c in clusters.items()],
                      schema={"run_id": pl.Int64, "lang": pl.String, "cluster": pl.Int64},
                      orient="row")
    table = stats.regress(df, "ap", distances, cl, baseline="random")
    assert set(table["model"]) == {"ols_cluster", "mixedlm"}
    for model in ("ols_cluster", "mixedlm"):
        t = {r["term"]: r for r in table.filter(pl.col("model") == model).iter_rows(named=True)}
        inter = t["arm[clustered]:distance"]
        assert inter["coef"] == pytest.approx(0.2, abs=0.02)
        assert inter["ci_low"] < 0.2 < inter["ci_high"]
        assert inter["p"] < 0.001
        assert t["distance"]["coef"] == pytest.approx(-0.1, abs=0.02)
        assert "same_cluster" in t
        assert not any(k.startswith("query_lang[") for k in t)  # fixed effects hidden
    full = stats.regress(df, "ap", distances, cl, baseline="random", mixed=False,
                         fixed_effects=True)
    assert any(k.startswith("doc_lang[") for k in full["term"])


def test_bias_table_per_arm_and_language() -> None:
    df = pl.DataFrame({
        "arm": ["a", "a", "b", "b"], "query_lang": ["en", "en", "en", "en"],
        "doc_lang": ["all"] * 4, "run_id": [1, 1, 2, 2], "query_id": ["q1", "q2"] * 2,
        "rank_distance": [1.0, 3.0, 0.5, 0.5], "same_lang_at_10": [0.6, 0.4, 0.9, 0.7],
        "same_lang_expected": [0.25] * 4, "dataset": ["d"] * 4, "split": ["t"] * 4,
        "setting": ["multi"] * 4})
    out = stats.bias_table(df, ["query_lang"])
    a = out.filter(pl.col("arm") == "a").row(0, named=True)
    assert a["rank_distance"] == pytest.approx(2.0)
    assert a["same_lang_excess"] == pytest.approx(0.25)
    b = out.filter(pl.col("arm") == "b").row(0, named=True)
    assert b["same_lang_excess"] == pytest.approx(0.55)
    assert b["n_queries"] == 2
