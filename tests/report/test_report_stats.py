"""The inference core (crossed variance, Satterthwaite, t interval and p, Holm, sign flips),
the comparison table, the regression and the bias table on small hand-made inputs."""

from __future__ import annotations

import itertools

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from xlrun.errors import UsageError
from xlrun.report import inference as inf
from xlrun.report.bias import bias_table
from xlrun.report.cells import arm_order, cell_columns
from xlrun.report.compare import compare_arms
from xlrun.report.regression import regress


def test_holm_matches_hand_example() -> None:
    # sorted: .005*4=.02, .01*3=.03, .03*2=.06, .04*1=.04 -> max(.06, .04)=.06
    adjusted = inf.holm([0.01, 0.04, 0.03, 0.005, None])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjusted[4] is None
    assert inf.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert inf.holm([]) == []


def test_significance_marks() -> None:
    assert [inf.significance_mark(p) for p in (0.0005, 0.005, 0.03, 0.05, 0.2, None)] == \
        ["***", "**", "*", "", "", ""]


def test_sign_flip_matches_exact_distribution() -> None:
    d = np.ones(5)  # exact two-sided p = 2 / 2**5
    assert inf.sign_flip_pvalue(d, 20_000, seed=1) == pytest.approx(0.0625, abs=0.01)
    assert inf.sign_flip_pvalue(np.zeros(6), 100) == 1.0
    assert inf.sign_flip_pvalue(np.ones(1), 100) is None
    d = np.array([0.3, -0.1, 0.25, 0.4, 0.05, 0.2])
    sums = [abs(np.dot(s, d)) for s in itertools.product((-1, 1), repeat=d.size)]
    exact = np.mean([s >= abs(d.sum()) - 1e-12 for s in sums])
    assert inf.sign_flip_pvalue(d, 20_000, seed=3) == pytest.approx(exact, abs=0.01)


def test_batched_sign_flips_equal_one_by_one() -> None:
    rng = np.random.default_rng(0)
    diffs = [rng.normal(0.02, 0.1, 40), rng.normal(0, 0.1, 40), rng.normal(0, 0.1, 25),
             np.array([0.1]), np.array([])]
    out = inf.sign_flip_many(diffs, 500, 5)
    for d, p in zip(diffs, out, strict=True):
        assert p == (inf.sign_flip_pvalue(d, 500, 5) if d.size >= 2 else None)


def _ms(M: np.ndarray) -> tuple[float, float, float]:
    """Two-way ANOVA mean squares (rows, columns, residual) written out by hand."""
    r, c = M.shape
    g = M.mean()
    rows = c * ((M.mean(axis=1) - g) ** 2).sum() / (r - 1)
    cols = r * ((M.mean(axis=0) - g) ** 2).sum() / (c - 1)
    res = ((M - M.mean(axis=1, keepdims=True) - M.mean(axis=0, keepdims=True) + g) ** 2
           ).sum() / ((r - 1) * (c - 1))
    return rows, cols, res


def test_crossed_variance_is_the_documented_formula() -> None:
    rng = np.random.default_rng(1)
    q, s = 40, 4
    D = (rng.normal(0, 0.05, (1, s)) + rng.normal(0, 0.05, (q, 1))
         + rng.normal(0, 0.02, (q, s)))  # seed, question and residual variance all there
    ms_q, ms_s, ms_e = _ms(D)
    assert ms_s > ms_e and ms_q > ms_e
    var = inf.crossed_variance(D)
    assert var.value == pytest.approx((ms_s + ms_q - ms_e) / (q * s))
    # Satterthwaite's df with the seed term's share at its 70 % upper confidence bound
    seed = ms_s * (s - 1) / sps.chi2.ppf(0.3, s - 1)
    expected_df = (seed + ms_q - ms_e) ** 2 / (
        seed ** 2 / (s - 1) + ms_q ** 2 / (q - 1) + ms_e ** 2 / ((q - 1) * (s - 1)))
    assert var.df == pytest.approx(expected_df)
    plain = (ms_s + ms_q - ms_e) ** 2 / (
        ms_s ** 2 / (s - 1) + ms_q ** 2 / (q - 1) + ms_e ** 2 / ((q - 1) * (s - 1)))
    assert s - 1 <= var.df < plain  # never more than the plain formula lends
    assert sum(var.components.values()) == pytest.approx(var.value)


def test_paired_delta_reduces_to_the_seed_level_t_test() -> None:
    """No question × arm interaction and no residual: the per-seed deltas carry all the
    variance and the crossed model is the paired t-test on per-seed means."""
    rng = np.random.default_rng(2)
    q, s = 30, 5
    B = rng.normal(0.5, 0.1, (q, 1)) + rng.normal(0, 0.01, (1, s))
    A = B + 0.01 + rng.normal(0, 0.01, (1, s))
    est = inf.delta_estimate(A, B, paired=True)
    seed_deltas = (A - B).mean(axis=0)
    ref = sps.ttest_1samp(seed_deltas, 0.0)
    assert est.design == "paired" and est.df == pytest.approx(s - 1)
    assert est.p == pytest.approx(ref.pvalue)
    lo, hi = ref.confidence_interval(0.95)
    assert (est.ci_low, est.ci_high) == pytest.approx((lo, hi))


def test_paired_delta_reduces_to_the_question_level_t_test() -> None:
    """No seed variance and no residual: the arm × question interaction carries it all."""
    rng = np.random.default_rng(3)
    q, s = 25, 3
    d = rng.normal(0.01, 0.05, (q, 1))
    B = rng.normal(0.5, 0.1, (q, 1)) + np.zeros((1, s))
    A = B + d
    est = inf.delta_estimate(A, B, paired=True)
    ref = sps.ttest_1samp(d[:, 0], 0.0)
    assert est.df == pytest.approx(q - 1) and est.p == pytest.approx(ref.pvalue)


def test_unpaired_delta_reduces_to_welch_on_run_means() -> None:
    rng = np.random.default_rng(4)
    v = rng.normal(0.5, 0.1, (20, 1))  # the same questions, no interaction, no residual
    A = v + 0.02 + rng.normal(0, 0.01, (1, 3))
    B = v + rng.normal(0, 0.02, (1, 4))
    est = inf.delta_estimate(A, B, paired=False)
    ref = sps.ttest_ind(A.mean(axis=0), B.mean(axis=0), equal_var=False)
    assert est.design == "unpaired" and est.p == pytest.approx(ref.pvalue)
    assert est.df == pytest.approx(ref.df)


def test_unpaired_variance_is_the_documented_formula() -> None:
    rng = np.random.default_rng(5)
    q = 50
    A = (rng.normal(0.5, 0.1, (q, 1)) + rng.normal(0, 0.05, (q, 1))
         + rng.normal(0, 0.03, (1, 4)) + rng.normal(0, 0.02, (q, 4)))
    B = rng.normal(0.5, 0.1, (q, 1)) + rng.normal(0, 0.03, (1, 3)) + rng.normal(0, 0.02, (q, 3))
    _, run_a, res_a = _ms(A)
    _, run_b, res_b = _ms(B)
    ms_d = (A.mean(axis=1) - B.mean(axis=1)).var(ddof=1)
    assert run_a > res_a and run_b > res_b and ms_d / q > res_a / (4 * q) + res_b / (3 * q)
    expected = ((run_a - res_a) / (4 * q) + (run_b - res_b) / (3 * q) + ms_d / q)
    assert inf.unpaired_variance(A, B).value == pytest.approx(expected)


def test_interval_and_p_come_from_one_t() -> None:
    rng = np.random.default_rng(6)
    for _ in range(300):
        q, s = int(rng.integers(2, 30)), int(rng.integers(2, 6))
        A = rng.normal(0, 1, (q, s)) + rng.normal(0, rng.uniform(0, 1), (1, s))
        B = rng.normal(0, 1, (q, s)) + rng.normal(0, rng.uniform(0, 1), (1, s))
        for paired in (True, False):
            e = inf.delta_estimate(A + rng.normal(0, 0.5), B, paired)
            assert (e.ci_low > 0 or e.ci_high < 0) == (e.p < 0.05)
            t = e.estimate / e.se
            assert e.p == pytest.approx(2 * sps.t.sf(abs(t), e.df))
            assert e.ci_high - e.estimate == pytest.approx(sps.t.ppf(0.975, e.df) * e.se)


def test_no_test_without_seed_or_question_variance_information() -> None:
    A, B = np.ones((10, 1)), np.zeros((10, 3))
    e = inf.delta_estimate(A, B, paired=False)
    assert e.design == "one run" and e.estimate == 1.0 and e.p is None and e.ci_low is None
    e = inf.delta_estimate(np.ones((1, 3)), np.zeros((1, 3)), paired=True)
    assert e.design == "one question" and e.p is None
    e = inf.delta_estimate(np.ones((5, 3)), np.zeros((5, 3)), paired=True)  # no variance
    assert e.estimate == 1.0 and e.p is None
    m = inf.mean_estimate(np.arange(12.0).reshape(6, 2))
    assert m.estimate == pytest.approx(5.5) and m.ci_low < 5.5 < m.ci_high


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
    out = compare_arms(_frame(rows), ["query_lang", "doc_lang"], "ap", "random").frame
    assert out.height == 4
    missing = out.filter(pl.col("doc_lang") == "fi", pl.col("arm") == "clustered").row(
        0, named=True)
    for col in ("mean", "n_queries", "n_runs", "delta", "ci_low", "p", "p_holm"):
        assert missing[col] is None, col
    assert missing["mark"] in (None, "")
    present = out.filter(pl.col("doc_lang") == "de", pl.col("arm") == "clustered").row(
        0, named=True)
    assert present["delta"] == pytest.approx(0.0)
    assert present["n_queries"] == 5 and present["n_runs"] == 2


def test_seeds_are_averaged_and_questions_count_once() -> None:
    rows = []
    for seed in range(4):
        for i in range(6):
            rows.append(("a", "en", "de", seed, f"q{i}", 0.5 + 0.02 * i))
            rows.append(("b", "en", "de", 10 + seed, f"q{i}", 0.5 + 0.02 * i + 0.1 * seed))
    res = compare_arms(_frame(rows), ["query_lang"], "ap", "a")
    b = res.frame.filter(pl.col("arm") == "b").row(0, named=True)
    assert b["n_paired"] == 6  # one pair per question, not per question × seed
    assert b["delta"] == pytest.approx(0.15)
    # no seed column: runs cannot pair, which the notes say; the spread of b's runs is the
    # only variance, so the test is Welch's on the run means
    assert b["design"] == "unpaired 4/4"
    assert any("seeds unknown" in n for n in res.notes)
    se = np.std([0.1 * s for s in range(4)], ddof=1) / 2.0  # arm a's runs are all equal
    assert b["df"] == pytest.approx(3.0) and b["se"] == pytest.approx(se)
    assert b["p"] == pytest.approx(2 * sps.t.sf(0.15 / se, 3))


def test_compare_needs_two_arms_and_known_baseline() -> None:
    rows = [("a", "en", "de", 0, f"q{i}", 0.5) for i in range(3)]
    with pytest.raises(UsageError, match="two arms"):
        compare_arms(_frame(rows), ["query_lang"], "ap")
    with pytest.raises(UsageError, match="baseline"):
        arm_order(["a", "b"], "c")
    assert arm_order(["b", "a", "c"]) == ["a", "b", "c"]
    assert arm_order(["b", "a", "c"], "c") == ["c", "a", "b"]
    with pytest.raises(UsageError, match="--by"):
        cell_columns("languages")


def test_regression_recovers_planted_distance_slope() -> None:
    rng = np.random.default_rng(11)
    langs = ["en", "de", "fi", "sw"]
    pos = {"en": 0.0, "de": 0.2, "fi": 0.7, "sw": 1.0}
    dist = {(a, b): abs(pos[a] - pos[b]) for a in langs for b in langs}
    clusters = {"en": 0, "de": 0, "fi": 1, "sw": 1}
    rows = []
    difficulty = {(q, i): rng.normal(0.5, 0.1) for q in langs for i in range(40)}
    for arm, run0 in (("random", 0), ("clustered", 10)):
        for seed in range(3):
            for q in langs:
                for d in langs:
                    slope = -0.1 + (0.2 if arm == "clustered" else 0.0)  # planted: +0.2
                    for i in range(40):
                        v = difficulty[(q, i)] + slope * dist[(q, d)] + rng.normal(0, 0.02)
                        rows.append((arm, q, d, run0 + seed, f"q{i}", v))
    df = _frame(rows)
    distances = pl.DataFrame([(a, b, v) for (a, b), v in dist.items()],
                             schema=["query_lang", "doc_lang", "distance"], orient="row")
    cl = pl.DataFrame([(10 + s, lang, c) for s in range(3) for lang, c in clusters.items()],
                      schema={"run_id": pl.Int64, "lang": pl.String, "cluster": pl.Int64},
                      orient="row")
    table = regress(df, "ap", distances, cl, baseline="random")
    t = {r["term"]: r for r in table.iter_rows(named=True)}
    inter = t["arm[clustered]:distance"]
    assert inter["coef"] == pytest.approx(0.2, abs=0.02)
    assert inter["ci_low"] < 0.2 < inter["ci_high"]
    # mono pairs (x→x) have one direction, so the arm × pair variance is told apart from the
    # direction's with the help of the cross pairs' two directions
    assert inter["p"] < 0.001 and inter["against"].startswith("arm × pair")
    assert t["distance"]["coef"] == pytest.approx(-0.1, abs=0.02)
    assert t["distance"]["df"] < 16  # judged against the pairs, not the 40 questions
    assert "same_cluster" in t and t["same_cluster"]["against"].startswith("pairs")
    assert "seeds & questions" in t["arm[clustered]"]["against"]
    assert not any(k.startswith("query_lang[") for k in t)  # fixed effects hidden
    full = regress(df, "ap", distances, cl, baseline="random", fixed_effects=True)
    assert any(k.startswith("doc_lang[") for k in full["term"])


def test_bias_table_per_arm_and_language() -> None:
    df = pl.DataFrame({
        "arm": ["a", "a", "b", "b"], "query_lang": ["en", "en", "en", "en"],
        "doc_lang": ["all"] * 4, "run_id": [1, 1, 2, 2], "query_id": ["q1", "q2"] * 2,
        "rank_distance": [1.0, 3.0, 0.5, 0.5], "same_lang_at_10": [0.6, 0.4, 0.9, 0.7],
        "same_lang_expected": [0.25] * 4, "dataset": ["d"] * 4, "split": ["t"] * 4,
        "setting": ["multi"] * 4})
    pools = pl.DataFrame({"run_id": [1, 2], "dataset": ["d", "d"], "split": ["t", "t"],
                          "pool_size": [10, 10]})
    res = bias_table(df, ["query_lang"], pools)
    a = res.frame.filter(pl.col("arm") == "a").row(0, named=True)
    assert a["rank_distance"] == pytest.approx(2.0) and a["rd_median"] == pytest.approx(2.0)
    assert a["rd_norm"] == pytest.approx(0.2) and a["pool_size"] == 10
    assert a["same_lang_excess"] == pytest.approx(0.25)
    assert a["rd_ci_low"] is None  # one run: no seed variance, no interval
    b = res.frame.filter(pl.col("arm") == "b").row(0, named=True)
    assert b["same_lang_excess"] == pytest.approx(0.55)
    assert b["n_queries"] == 2
    assert any("single run" in n for n in res.notes)


def test_satterthwaite_df_never_below_the_smallest_positive_term() -> None:
    """MS_seed (1 df) + MS_q − MS_res with MS_q ≈ MS_res: the raw formula gives df < 1 (an
    interval of ±millions); the df stays at least 1."""
    ms_s, ms_q, ms_e = inf.MeanSquare(0.001, 1), inf.MeanSquare(1.0, 119), inf.MeanSquare(0.999, 119)
    terms = ((1.0, ms_s), (1.0, ms_q), (-1.0, ms_e))
    raw = (0.001 + 1.0 - 0.999) ** 2 / (0.001 ** 2 / 1 + 1.0 / 119 + 0.999 ** 2 / 119)
    assert raw < 0.01
    assert inf.satterthwaite_df(terms) == 1.0
    two = ((1.0, inf.MeanSquare(2.0, 4)), (1.0, inf.MeanSquare(1.0, 30)))
    assert inf.satterthwaite_df(two) == pytest.approx(9.0 / (4.0 / 4 + 1.0 / 30))


def test_bias_cells_line_up_the_query_languages_of_their_runs() -> None:
    """A run that lacks a query language is not averaged over a different set of languages:
    every run of a cell is summarised on the (question, language) rows all of them have."""
    rows = []
    for run, arm in ((1, "a"), (2, "a"), (3, "b")):
        for q in ("q1", "q2", "q3"):
            for lang, rd in (("en", 1.0 + run * 0.1), ("th", 20.0)):
                if run == 2 and lang == "th":
                    continue  # run 2 never evaluated Thai queries
                rows.append({"arm": arm, "run_id": run, "query_id": q, "query_lang": lang,
                             "doc_lang": "all", "setting": "multi", "dataset": "d",
                             "split": "t", "rank_distance": rd, "same_lang_at_10": 0.5,
                             "same_lang_expected": 0.25})
    res = bias_table(pl.DataFrame(rows), ["setting"])
    a = res.frame.filter(pl.col("arm") == "a").row(0, named=True)
    b = res.frame.filter(pl.col("arm") == "b").row(0, named=True)
    # on English alone: runs 1 and 2 → (1.1 + 1.2) / 2, run 3 → 1.3 (Thai left out for all)
    assert a["rank_distance"] == pytest.approx(1.15) and b["rank_distance"] == pytest.approx(1.3)
    assert a["n_queries"] == 3
    assert any("(th→all)" in n and "left out" in n for n in res.notes), res.notes
