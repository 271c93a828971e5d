"""No silent pooling (issue 23), through databases written with SQL and the CLI: a cell that
pools language pairs compares its runs on the rows all of them have; runs that are not done
are left out with a note; two seeds in common are compared unpaired on every run; the
regression says which units its degrees of freedom come from."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import sim_study as sim

from xlrun.report.regression import PairData, fit_pairs

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import report_calibration as bench  # a benchmark script, found through sys.path


def _db(tmp_path: Path, name: str, s: sim.Scenario, draws: int, per_experiment: bool = False,
        rng_seed: int = 7) -> str:
    url = f"sqlite:///{tmp_path / name}"
    bench.write_studies(url, s, draws, rng_seed, per_experiment)
    return url


def _sql(url: str, statement: str) -> None:
    from xlrun.db.engine import get_engine

    engine = get_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(statement)
    engine.dispose()


def _rows(url: str, statement: str) -> list[tuple[object, ...]]:
    from xlrun.db.engine import get_engine

    engine = get_engine(url)
    with engine.connect() as conn:
        out = [tuple(r) for r in conn.exec_driver_sql(statement).all()]
    engine.dispose()
    return out


COMPARE = ["--compare", "language_sampling", "--baseline", "a"]
MISSING = sim.Scenario("missing", langs=sim.LANGS5, seed_sd=0.01, pair_sd=0.20, missing_b=8,
                       n_questions=12)
"""Arm b lacks 8 of the 20 pairs in every run; pair offsets (SD 0.20) shared by the arms."""


@pytest.mark.parametrize("by", ["setting", "query-language"])
def test_a_run_missing_pairs_gives_the_delta_of_the_pairs_every_run_has(tmp_path: Path,
                                                                        by: str) -> None:
    """The delta of a pooled cell where arm b lacks some pairs equals the delta where those
    pairs are absent from every run, and a note names them; before issue 23 each run was
    averaged over the pairs it had, so the delta mixed the pair offsets (off by ~0.05 here)."""
    url = _db(tmp_path, "missing.db", MISSING, 3)
    doc, err = bench.report_json(url, ["--by", by, *COMPARE])
    lacked = _rows(url, "SELECT DISTINCT r.dataset, r.query_lang, r.doc_lang "
                        "FROM query_results r JOIN runs u ON u.id = r.run_id "
                        "WHERE u.language_sampling = 'a' EXCEPT "
                        "SELECT DISTINCT r.dataset, r.query_lang, r.doc_lang "
                        "FROM query_results r JOIN runs u ON u.id = r.run_id "
                        "WHERE u.language_sampling = 'b'")
    assert len(lacked) == 3 * 8
    same = _db(tmp_path, "absent.db", MISSING, 3)
    for dataset, q, d in lacked:  # the same pairs, now absent from arm a's runs too
        _sql(same, f"DELETE FROM query_results WHERE dataset = '{dataset}' AND query_lang = "
                   f"'{q}' AND doc_lang = '{d}'")
    ref, _ = bench.report_json(same, ["--by", by, *COMPARE])
    key = [c for c in ("dataset", "setting", "query_lang") if c in doc["rows"][0]]
    got = {tuple(r[k] for k in key): r for r in doc["rows"] if r["arm"] == "b"}
    want = {tuple(r[k] for k in key): r for r in ref["rows"] if r["arm"] == "b"}
    assert got.keys() == want.keys() and len(got) >= 3
    naive_gap = 0.0
    for cell, r in got.items():
        w = want[cell]
        for col in ("delta", "se", "df", "p", "ci_low", "ci_high", "n_paired"):
            assert r[col] == pytest.approx(w[col], abs=2e-6), (cell, col)
        base = next(x for x in doc["rows"] if x["arm"] == "a"
                    and tuple(x[k] for k in key) == cell)
        naive_gap = max(naive_gap, abs((r["mean"] - base["mean"]) - r["delta"]))
    assert naive_gap > 0.01  # each arm's own mean differs: the old delta was this one
    note = next(n for n in doc["meta"]["notes"] if "row(s) that some compared run lacks" in n)
    assert note.startswith("arm 'b' vs baseline 'a': ")
    assert "pair(s) " in note and "missing from some run" in note
    assert not any("some compared run lacks" in n for n in ref["meta"].get("notes", []))
    assert "row(s) that some compared run lacks" in err


def test_a_run_with_one_pair_left_is_compared_on_that_pair(tmp_path: Path) -> None:
    """The issue's extreme: one run of b kept 1 of 20 pairs. Every run of the cell is compared
    on that pair (not b's mean over 1 pair against a's over 20), and the summary without
    --compare describes the cell on the rows every run has, with a note."""
    s = sim.with_(MISSING, missing_b=0)
    url = _db(tmp_path, "one.db", s, 1)
    run = _rows(url, "SELECT min(id) FROM runs WHERE language_sampling = 'b'")[0][0]
    _sql(url, f"DELETE FROM query_results WHERE run_id = {run} AND NOT (query_lang = 'en' AND "
              "doc_lang = 'de')")
    doc, _ = bench.report_json(url, ["--by", "setting", *COMPARE])
    b = next(r for r in doc["rows"] if r["arm"] == "b")
    assert b["n_paired"] == s.n_questions
    kept = _rows(url, "SELECT u.language_sampling, avg(r.ap) FROM query_results r JOIN runs u "
                      "ON u.id = r.run_id WHERE r.query_lang = 'en' AND r.doc_lang = 'de' "
                      "GROUP BY u.language_sampling ORDER BY 1")
    assert b["delta"] == pytest.approx(kept[1][1] - kept[0][1], abs=2e-6)
    note = next(n for n in doc["meta"]["notes"] if "some compared run lacks" in n)
    assert "(19 in all) missing from some run" in note
    summary, err = bench.report_json(url, ["--by", "setting"])
    assert summary["rows"][0]["n_runs"] == 6
    assert summary["rows"][0]["mean"] == pytest.approx(
        _rows(url, "SELECT avg(ap) FROM query_results WHERE query_lang = 'en' AND "
                   "doc_lang = 'de'")[0][0], abs=2e-6)
    assert "row(s) that some run of their cell lacks left out of 1 cell(s)" in err


def test_runs_that_are_not_done_are_left_out_with_a_note(tmp_path: Path) -> None:
    url = _db(tmp_path, "status.db", sim.Scenario("status", langs=("en", "fi")), 1)
    ids = [r[0] for r in _rows(url, "SELECT id FROM runs ORDER BY id")]
    _sql(url, f"UPDATE runs SET status = 'failed' WHERE id = {ids[0]}")
    _sql(url, f"UPDATE runs SET status = 'running' WHERE id = {ids[-1]}")
    doc, err = bench.report_json(url, ["--by", "setting", *COMPARE])
    assert [r["n_runs"] for r in doc["rows"]] == [2, 2]
    note = next(n for n in doc["meta"]["notes"] if "not done" in n)
    assert note.endswith(f"1 failed (run {ids[0]}), 1 running (run {ids[-1]})")
    assert "2 run(s) that are not done are left out" in err
    summary, _ = bench.report_json(url, ["--by", "run"])
    assert len(summary["rows"]) == 4


def test_two_seeds_in_common_compare_every_run_unpaired(tmp_path: Path) -> None:
    """Three seeds per arm, one baseline run gone: the two common seeds would rest the seed
    variance on 1 degree of freedom (10–12 % false positives before issue 23), so the arms
    are compared unpaired on all five runs, with a note."""
    s = sim.Scenario("2 seeds", langs=("en", "fi"), seeds_a=(1, 2, 3), seeds_b=(1, 2, 3),
                     seed_sd=0.02, qa_sd=0.04)
    url = _db(tmp_path, "seeds.db", s, 2)
    _sql(url, "DELETE FROM runs WHERE language_sampling = 'a' AND seed = 3")
    doc, err = bench.report_json(url, ["--by", "setting", *COMPARE])
    b = [r for r in doc["rows"] if r["arm"] == "b"]
    assert [r["design"] for r in b] == ["unpaired 3/2"] * 2
    assert all(r["p"] is not None and r["df"] >= 1 for r in b)
    assert ("arm 'b' vs baseline 'a': only 2 seeds in common (1, 2; pairing needs 3) in 2 "
            "cell(s)" in err)
    assert "every run compared unpaired" in err
    assert "arm 'a' has only 2 runs" in err


def test_regress_says_its_units(tmp_path: Path) -> None:
    """The regression's df come from unordered pairs and languages, and the meta and notes
    say so: 5 languages = 20 ordered cross pairs = 10 unordered; the language effects take 5
    of those degrees of freedom, distance and same_cluster 2, leaving 3."""
    s = sim.with_(bench._BASE5, sym_pair_sd=0.05)
    url = _db(tmp_path, "units.db", s, 1, per_experiment=True)
    doc, err = bench.report_json(url, ["--regress", *COMPARE, "--setting", "cross"])
    meta = doc["meta"]
    assert (meta["n_pairs"], meta["n_unordered_pairs"], meta["n_languages"]) == (20, 10, 5)
    assert meta["df_between_pairs"] == 3 and meta["df_within_pairs"] == 4
    assert meta["df_strata"]["pairs"] == 3 and meta["df_strata"]["arm × pair"] == 4
    assert "unordered language pairs" in meta["df_units"]
    rows = {r["term"]: r for r in doc["rows"]}
    assert rows["same_cluster"]["df"] == pytest.approx(3.0)
    assert rows["same_cluster"]["against"] == "pairs"
    assert "judged against how much the 10 unordered language pairs of 5 languages" in err


def _unordered_design(pairs: list[tuple[str, str]], dist: np.ndarray, sc: np.ndarray,
                      langs: tuple[str, ...]) -> tuple[list[tuple[str, str]], np.ndarray]:
    units = sorted({tuple(sorted(p)) for p in pairs})
    cols = [np.ones(len(units))]
    cols += [np.array([float(lang in u) for u in units]) for lang in langs[1:]]
    d = {tuple(sorted(p)): v for p, v in zip(pairs, dist, strict=True)}
    c = {tuple(sorted(p)): v for p, v in zip(pairs, sc, strict=True)}
    cols += [np.array([d[u] for u in units]), np.array([c[u] for u in units])]
    return units, np.column_stack(cols)


def test_distance_is_the_exact_t_test_on_unordered_pair_means() -> None:
    """Written out independently: with one arm and every ordered cross pair, distance and
    same_cluster are the OLS coefficients of the unordered pairs' means (x→y and y→x
    averaged) on the languages' (symmetric) effects, with the classical standard errors and
    U − L − 2 degrees of freedom. The regression gives exactly that."""
    s = sim.Scenario("one arm", langs=sim.LANGS5, seed_sd=0.01, sym_pair_sd=0.05,
                     pair_sd=0.03, qlang_sd=0.05, dlang_sd=0.05)
    rng = np.random.default_rng(4)
    v = sim.values(s, rng)[0]  # arm a: seed, pair, question
    pairs = s.pairs()
    dist = np.array([s.distance(q, d) for q, d in pairs])
    sc = np.array([float(sim.cluster_of(q) == sim.cluster_of(d)) for q, d in pairs])
    means = v.mean(axis=2)  # runs × pairs
    data = PairData(pairs, [1, 2, 3], ["a"] * 3, [1, 2, 3], means, v.mean(axis=1).T, dist,
                    np.tile(sc, (3, 1)), s.n_questions)
    got = {r["term"]: r for r in fit_pairs(data).table.iter_rows(named=True)}
    y = means.mean(axis=0)
    units, X = _unordered_design(pairs, dist, sc, s.langs)
    yu = np.array([np.mean([y[i] for i, p in enumerate(pairs) if tuple(sorted(p)) == u])
                   for u in units])
    beta, rss, *_ = np.linalg.lstsq(X, yu, rcond=None)
    dof = len(units) - X.shape[1]
    cov = float(rss[0]) / dof * np.linalg.inv(X.T @ X)
    assert dof == 3
    for term, j in (("distance", -2), ("same_cluster", -1)):
        assert got[term]["coef"] == pytest.approx(beta[j], abs=1e-10)
        assert got[term]["std_err"] == pytest.approx(np.sqrt(cov[j, j]), rel=1e-8)
        assert got[term]["df"] == pytest.approx(dof)
        assert got[term]["against"] == "pairs"


def test_blocks_and_one_dense_block_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """The arms' mean and contrasts are computed block by block; merged into one dense
    problem (what happens when a column does not split over the blocks) the numbers are
    the same."""
    from xlrun.report import regression, strata

    s = sim.Scenario("blocks", langs=sim.LANGS5, seed_sd=0.01, sym_pair_sd=0.05,
                     arm_pair_sd=0.02)
    rng = np.random.default_rng(5)
    data = sim.pair_data(s, rng)
    blocked = fit_pairs(data, "a").table
    prepare = strata.prepare
    monkeypatch.setattr(strata, "prepare",
                        lambda X, blocks: prepare(X, [strata._merged(blocks)]))
    regression._PREPARED.clear()
    dense = fit_pairs(data, "a").table
    regression._PREPARED.clear()
    for col in ("coef", "std_err", "df", "p"):
        assert blocked[col].to_list() == pytest.approx(dense[col].to_list(), rel=1e-8), col
    assert blocked["against"].to_list() == dense["against"].to_list()
    assert blocked["term"].to_list()[:2] == ["intercept", "arm[b]"]


def test_a_pair_level_covariate_joins_like_distance() -> None:
    """A further pair-level term (``Covariate(level="pair")``, e.g. a second distance) is
    judged like ``distance``: between unordered pairs beyond the languages' effects, one
    degree of freedom less for each term (10 − 5 − 3 = 2 with 5 languages); with ``by_arm``
    it gets its arm interaction too."""
    from dataclasses import replace

    from xlrun.report.regression import Covariate

    s = sim.Scenario("covariate", langs=sim.LANGS5, seed_sd=0.01, sym_pair_sd=0.05)
    rng = np.random.default_rng(6)
    data = sim.pair_data(s, rng)
    pairs = data.pairs
    other = {tuple(sorted(p)): x for p, x in zip(pairs, rng.uniform(0, 1, len(pairs)),
                                                  strict=True)}
    cov = Covariate("lexical", "pair", np.array([other[tuple(sorted(p))] for p in pairs]),
                    by_arm=True)
    res = fit_pairs(replace(data, covariates=(cov,)), "a")
    rows = {r["term"]: r for r in res.table.iter_rows(named=True)}
    assert list(rows)[-2:] == ["lexical", "arm[b]:lexical"]
    assert rows["lexical"]["against"].startswith("pairs")
    assert rows["same_cluster"]["df"] == pytest.approx(2.0)
    assert rows["arm[b]:lexical"]["against"] == "arm × pair"
    assert res.df_between == 2 and res.df_within == 3  # the arms share same_cluster
