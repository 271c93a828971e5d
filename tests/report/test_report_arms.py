"""``--compare arm``, ``--where`` filters, borrowed distances and notes, on a synthetic study
whose arms differ in sampler *and* language sampling (the confounding the features remove)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from report_db import new_engine
from sqlalchemy import Engine, insert

from xlrun.cli.report import report_command
from xlrun.db.models import Experiment, LanguageCluster, LanguageDistance, QueryResult, Run
from xlrun.errors import UsageError
from xlrun.report import cells
from xlrun.report.build import ReportRequest, build_report
from xlrun.report.frames import (
    ReportFilter,
    WhereClause,
    arm_label,
    parse_where,
    value_matches,
)
from xlrun.report.inference import InferenceConfig
from xlrun.report.render import format_value

FAST = ["--permutations", "300"]
TESTS = InferenceConfig(n_permutations=300)
LANGS = ("en", "de", "ru")
CLUSTERED = "clustered"
CLUSTERING = "script/k=2/average/within"
PLANTED = {("en", "ru"): 0.08, ("ru", "de"): 0.08}
DIST = {("en", "de"): 0.0, ("en", "ru"): 1.0, ("de", "ru"): 1.0}
LEX = {("en", "de"): 0.3, ("en", "ru"): 0.6, ("de", "ru"): 0.5}


@dataclass(frozen=True)
class Arm:
    """One arm of the synthetic study and its planted effect per language pair."""

    sampler: str
    language_sampling: str | None
    clustering: str | None = None
    lr: float = 2e-5
    steps: int = 100
    effect: dict[tuple[str, str], float] = field(default_factory=dict)
    cross_effect: float = 0.0  # added to every cross-language pair
    distances: bool = False


ARMS = (
    Arm("hybrid", "size"),
    Arm("hybrid", CLUSTERED, CLUSTERING, effect=PLANTED, distances=True),
    Arm("monolingual", "size", lr=1e-5, cross_effect=-0.2),
    Arm("none", None, steps=0),
)


def populate_arms(engine: Engine, arms: tuple[Arm, ...] = ARMS, seeds: tuple[int, ...] = (1, 2),
                  n_queries: int = 30, experiment: str = "study", rng_seed: int = 0) -> None:
    """Write a study: ``value = query difficulty + pair offset + arm effect + noise``."""
    rng = np.random.default_rng(rng_seed)
    pairs = [(q, d) for q in LANGS for d in LANGS]
    difficulty = {(q, i): rng.normal(0.5, 0.15) for q in LANGS for i in range(n_queries)}
    offset = {p: rng.normal(0, 0.05) for p in pairs}
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name=experiment, spec_toml="")
                           .returning(Experiment.id)).scalar_one()
        rows: list[dict[str, object]] = []
        for arm in arms:
            for seed in seeds if arm.steps else (0,):
                cfg = {"sampling": {"strategy": arm.sampler,
                                    "language_sampling": arm.language_sampling,
                                    "pairing": "within"},
                       "train": {"lr": arm.lr, "steps": arm.steps, "seed": seed}}
                label = arm_label(arm.sampler, arm.language_sampling, arm.clustering)
                rid = conn.execute(insert(Run).values(
                    experiment_id=exp, run_key=f"{label}-{seed}", status="done",
                    config_json=json.dumps(cfg), model="m", sampler=arm.sampler,
                    language_sampling=arm.language_sampling, clustering=arm.clustering,
                    seed=seed).returning(Run.id)).scalar_one()
                if arm.distances:
                    conn.execute(insert(LanguageDistance), [
                        {"run_id": rid, "source": src, "lang_a": a, "lang_b": b, "distance": v}
                        for src, table in (("script", DIST), ("lex", LEX))
                        for (a, b), v in table.items()])
                    conn.execute(insert(LanguageCluster), [
                        {"run_id": rid, "lang": lang, "cluster": int(lang == "ru")}
                        for lang in LANGS])
                for q, d in pairs:
                    delta = arm.effect.get((q, d), 0.0) + (arm.cross_effect if q != d else 0.0)
                    noise = rng.normal(0, 0.03, size=n_queries)
                    for i in range(n_queries):
                        v = float(difficulty[(q, i)] + offset[(q, d)] + delta + noise[i])
                        rows.append({"run_id": rid, "dataset": "synth", "split": "test",
                                     "setting": "mono" if q == d else "cross",
                                     "query_lang": q, "doc_lang": d, "query_id": f"q{i}",
                                     "n_relevant": 1, "ap": v, "ndcg_at_10": v,
                                     "mrr_at_10": v, "recall_at_100": v,
                                     "first_relevant_rank": 1, "rank_distance": None,
                                     "same_lang_at_10": None, "same_lang_expected": None})
                for q in LANGS:
                    for i in range(n_queries):
                        rows.append({"run_id": rid, "dataset": "synth", "split": "test",
                                     "setting": "multi", "query_lang": q, "doc_lang": "all",
                                     "query_id": f"q{i}", "n_relevant": 1, "ap": 0.4,
                                     "ndcg_at_10": 0.4, "mrr_at_10": 0.4, "recall_at_100": 0.4,
                                     "first_relevant_rank": 1,
                                     "rank_distance": 1.0 + (arm.sampler == "monolingual"),
                                     "same_lang_at_10": 0.5, "same_lang_expected": 1 / 3})
        conn.execute(insert(QueryResult), rows)


@pytest.fixture
def study_url(sqlite_url: str) -> str:
    engine = new_engine(sqlite_url)
    populate_arms(engine)
    engine.dispose()
    return sqlite_url


def _invoke(args: list[str]):
    return CliRunner().invoke(report_command, args, catch_exceptions=False)


# ----------------------------------------------------------------------------- units


def test_arm_labels_and_value_matching() -> None:
    assert arm_label("hybrid", "size", None) == "hybrid/size"
    assert arm_label("hybrid", "clustered", "script/k=3/average/within") == \
        "hybrid/clustered[script/k=3/average/within]"
    assert arm_label("none", None, None) == "none"
    assert value_matches(2e-05, "2e-5") and value_matches(150, "150.0")
    assert not value_matches(2e-05, "2e-4")
    assert value_matches("2e-05", "2e-5")  # an arm label that is a number
    assert value_matches(True, "true") and value_matches(None, "null")
    assert value_matches("hybrid", "hybrid") and not value_matches("hybrid", "Hybrid")
    assert parse_where(["a.b=1", "sampler != none"]) == (
        WhereClause("a.b", "1"), WhereClause("sampler", "none", negate=True))
    with pytest.raises(UsageError, match="KEY=VALUE"):
        parse_where(["sampler"])
    assert cells.arm_order(["1e-05", "2e-05"], "2e-5") == ["2e-05", "1e-05"]
    assert format_value("p_t", 0.0) == "<1e-300" and format_value("p_t", 2e-7) == "2.0e-07"


# ----------------------------------------------------------------------------- reports


def _report(url_or_engine, **kw) -> object:
    engine = new_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        return build_report(engine, ReportRequest(tests=TESTS, **kw))
    finally:
        engine.dispose()


def test_compare_arm_finds_planted_effect_without_confounding(db_url: str) -> None:
    """On SQLite and Postgres: whole arms separate the clustered effect from the monolingual
    arm's cross-language loss; pooling by language_sampling mixes them (and says so)."""
    engine = new_engine(db_url)
    populate_arms(engine, seeds=(1, 2, 3, 4, 5))  # enough seeds for the seed-level test
    rep = _report(engine, compare="arm", baseline="hybrid/size", filter=ReportFilter(
        setting="cross"))
    clustered = f"hybrid/{CLUSTERED}[{CLUSTERING}]"
    assert rep.meta["arms"] == ["hybrid/size", clustered, "monolingual/size", "none"]
    assert rep.meta["runs_per_arm"] == {"hybrid/size": 5, clustered: 5, "monolingual/size": 5,
                                        "none": 1}
    assert len(rep.notes) == 1 and rep.notes[0].startswith(
        "arm 'none' has 1 run in 6 cell(s)")
    assert "without interval, test or mark" in rep.notes[0]
    assert "arms with 1 run: no test" in rep.title
    none = rep.frame.filter(pl.col("arm") == "none")
    # One run: the delta is shown, but no interval or test (seed variance unknown), and no
    # query-level p stands in for it in Holm's family or the marks (issue 13).
    assert none["delta"].null_count() == 0 and none["design"].to_list() == ["one run"] * 6
    for col in ("ci_low", "ci_high", "p", "p_holm"):
        assert none[col].null_count() == none.height, col
    assert set(none["mark"]) == {""}
    rows = rep.frame.filter(pl.col("arm") == clustered)
    assert rows.height == 6  # cross pairs only
    for r in rows.iter_rows(named=True):
        planted = (r["query_lang"], r["doc_lang"]) in PLANTED
        assert (r["p_holm"] < 0.05) == planted, r
        assert r["delta"] == pytest.approx(0.08 if planted else 0.0, abs=0.03)
        assert r["design"] == "paired 5"
        assert (r["ci_low"] > 0 or r["ci_high"] < 0) == (r["p"] < 0.05)  # one model
    mono = rep.frame.filter(pl.col("arm") == "monolingual/size")
    assert mono["delta"].max() < -0.15 and mono["p_holm"].max() < 0.05

    pooled = _report(engine, compare="language_sampling", baseline="size",
                     filter=ReportFilter(setting="cross"))
    assert any("pools runs that differ in sampler (hybrid, monolingual)" in n
               for n in pooled.notes)
    en_ru = pooled.frame.filter(pl.col("arm") == CLUSTERED, pl.col("query_lang") == "en",
                                pl.col("doc_lang") == "ru")["delta"][0]
    assert en_ru == pytest.approx(0.08 + 0.1, abs=0.03)  # the confounded estimate
    where = _report(engine, compare="language_sampling", baseline="size", filter=ReportFilter(
        setting="cross", where=parse_where(["sampler=hybrid"])))
    assert where.notes == ()  # 5 runs per arm: no seed warnings either
    d = where.frame.filter(pl.col("arm") == CLUSTERED)
    assert d.select("query_lang", "doc_lang", "delta").equals(
        rows.select("query_lang", "doc_lang", "delta"))
    engine.dispose()


def _runs(url: str, *where: str) -> set[str]:
    res = _invoke(["--by", "run", "--format", "json", "--db", url,
                   *[x for w in where for x in ("--where", w)]])
    assert res.exit_code == 0, res.output
    return {r["run_key"] for r in json.loads(res.stdout)["rows"]}


def test_where_filters_runs(study_url: str) -> None:
    clustered = f"hybrid/{CLUSTERED}[{CLUSTERING}]"
    assert _runs(study_url, "train.lr=1e-5") == {"monolingual/size-1", "monolingual/size-2"}
    assert _runs(study_url, "train.lr=0.00002", "sampler=hybrid") == {
        "hybrid/size-1", "hybrid/size-2", f"{clustered}-1", f"{clustered}-2"}
    assert _runs(study_url, "seed=2", "language_sampling=size") == {
        "hybrid/size-2", "monolingual/size-2"}
    assert _runs(study_url, "sampler=monolingual", "sampler=none") == {
        "monolingual/size-1", "monolingual/size-2", "none-0"}  # same key: any value
    assert _runs(study_url, "language_sampling=null") == {"none-0"}
    assert _runs(study_url, "sampler!=none", "clustering!=null") == {
        f"{clustered}-1", f"{clustered}-2"}
    assert len(_runs(study_url, "sampling.pairing=within")) == 7
    assert _runs(study_url, "train.steps=0.0") == {"none-0"}


def test_where_and_baseline_errors_exit_2(study_url: str) -> None:
    res = _invoke(["--where", "colour=red", "--db", study_url])
    assert res.exit_code == 2
    assert "unknown --where key 'colour'" in res.stderr
    assert "sampler, language_sampling, clustering, model, seed" in res.stderr
    res = _invoke(["--where", "sampler=cross", "--db", study_url])
    assert res.exit_code == 2
    assert "no finished run matches --where sampler=cross" in res.stderr
    assert "hybrid, monolingual, none" in res.stderr
    res = _invoke(["--where", "train.lr=3e-5", "--db", study_url])
    assert res.exit_code == 2 and "values of train.lr" in res.stderr and "2e-05" in res.stderr
    res = _invoke(["--where", "sampler", "--db", study_url])
    assert res.exit_code == 2 and "KEY=VALUE" in res.stderr
    for compare in ("arm", "language_sampling", "train.lr"):
        res = _invoke(["--compare", compare, "--baseline", "random", "--db", study_url])
        assert res.exit_code == 2, compare
        assert "--baseline 'random' is not an arm" in res.stderr
    res = _invoke(["--compare", "arm", "--baseline", "random", "--db", study_url])
    assert "arms: hybrid/clustered[script/k=2/average/within], hybrid/size, " \
           "monolingual/size, none" in res.stderr
    res = _invoke(["--compare", "arm", "--baseline", "none", "--where", "sampler=hybrid",
                   "--db", study_url])
    assert res.exit_code == 2 and "not an arm of the selected runs" in res.stderr
    res = _invoke(["--baseline", "hybrid/size", "--db", study_url])
    assert res.exit_code == 2 and "--compare" in res.stderr
    res = _invoke(["--compare", "train.lr", "--baseline", "1e-5", "--format", "json",
                   "--setting", "cross", "--db", study_url, *FAST])
    assert res.exit_code == 0 and json.loads(res.stdout)["meta"]["baseline"] == "1e-05"


@pytest.mark.parametrize("by", ["language-pair", "query-language", "doc-language", "setting",
                                "run", "sampler"])
def test_compare_arm_with_every_by(study_url: str, by: str, tmp_path: Path) -> None:
    png = tmp_path / "p.png"
    res = _invoke(["--by", by, "--compare", "arm", "--baseline", "hybrid/size",
                   "--where", "sampler!=none", "--format", "json", "--plot", str(png),
                   "--db", study_url, *FAST])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["meta"]["where"] == ["sampler!=none"]
    arms = {r["arm"] for r in doc["rows"]}
    assert arms == {"hybrid/size", f"hybrid/{CLUSTERED}[{CLUSTERING}]", "monolingual/size"}
    assert png.read_bytes()[:4] == b"\x89PNG"
    if by not in ("run", "sampler"):  # fully paired: delta is the difference of the means
        cell = [k for k in doc["rows"][0] if k not in ("arm",) and k in (
            "query_lang", "doc_lang", "setting")]
        base = {tuple(r[k] for k in cell): r["mean"] for r in doc["rows"]
                if r["arm"] == "hybrid/size"}
        for r in doc["rows"]:
            if r["arm"] != "hybrid/size":
                assert r["n_paired"] == r["n_queries"]
                expected = r["mean"] - base[tuple(r[k] for k in cell)]
                assert r["delta"] == pytest.approx(expected, abs=2e-6)
    if by == "run":
        assert len(doc["rows"]) == 6 and "nothing to pair" in res.stderr
        assert all("delta" not in r for r in doc["rows"])
    if by == "sampler":  # arms absent from a sampler's cell are left out, not null rows
        assert {(r["sampler"], r["arm"]) for r in doc["rows"]} == {
            ("hybrid", "hybrid/size"), ("hybrid", f"hybrid/{CLUSTERED}[{CLUSTERING}]"),
            ("monolingual", "monolingual/size")}
        mono = next(r for r in doc["rows"] if r["sampler"] == "monolingual")
        assert mono["delta"] is None and mono["mean"] is not None


def test_bias_and_markdown_with_arms(study_url: str) -> None:
    res = _invoke(["--bias", "--by", "query-language", "--compare", "arm", "--setting",
                   "multi", "--format", "csv", "--db", study_url])
    assert res.exit_code == 0, res.output
    rows = list(pl.read_csv(res.stdout.encode()).iter_rows(named=True))
    assert len(rows) == 3 * 4
    assert {r["rank_distance"] for r in rows if r["arm"] == "monolingual/size"} == {2.0}
    res = _invoke(["--compare", "arm", "--where", "sampler=hybrid", "--setting", "cross",
                   "--format", "markdown", "--db", study_url, *FAST])
    assert res.exit_code == 0, res.output
    assert "where sampler=hybrid" in res.stdout.splitlines()[0]
    assert "| en | ru | hybrid/clustered[script/k=2/average/within] |" in res.stdout


def test_regress_borrows_distances_and_explains(study_url: str, tmp_path: Path) -> None:
    # hybrid/size and monolingual/size store no distances: taken from the clustered runs
    args = ["--regress", "--compare", "arm", "--baseline", "hybrid/size", "--where",
            "language_sampling=size", "--format", "json", "--db", study_url]
    res = _invoke([*args, "--plot", str(tmp_path / "coef.png")])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["meta"]["distance_source"] == "lex" and doc["meta"]["distances_borrowed"]
    assert doc["meta"]["distances_from_runs"] == [3, 4]
    assert "come from run(s) 3, 4 of the same experiment" in res.stderr
    assert "other distance sources stored: script" in res.stderr
    assert "multi setting" in res.stderr  # no --setting: multi rows have no distance
    terms = {r["term"] for r in doc["rows"]}
    assert "arm[monolingual/size]:distance" in terms
    inter = next(r for r in doc["rows"] if r["term"] == "arm[monolingual/size]:distance")
    assert inter["coef"] < -0.15  # the planted cross-language loss
    # 3 languages: 6 unordered pairs (3 cross, 3 mono) less each arm's language effects leave
    # the arm × pair slope 2 degrees of freedom, so no small p is asserted (issue 23)
    assert inter["against"].startswith("arm × pair") and inter["df"] == pytest.approx(2.0, abs=0.05)
    assert doc["meta"]["n_unordered_pairs"] == 6 and doc["meta"]["n_languages"] == 3
    # script distance is 0 exactly within a cluster: same_cluster is collinear and dropped
    res = _invoke([*args[:-2], "--distance-source", "script", "--setting", "cross", "--db", study_url])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert "same_cluster" in doc["meta"]["dropped_terms"]
    assert "collinear" in res.stderr and "same_cluster" in res.stderr
    res = _invoke([*args[:-2], "--distance-source", "wals", "--db", study_url])
    assert res.exit_code == 2 and "lex, script" in res.stderr


def test_regress_without_any_distances_explains(sqlite_url: str) -> None:
    engine = new_engine(sqlite_url)
    populate_arms(engine, arms=ARMS[:1] + ARMS[2:], n_queries=5)
    engine.dispose()
    res = _invoke(["--regress", "--compare", "arm", "--db", sqlite_url])
    assert res.exit_code == 2
    assert "no run of experiment(s) study stored any" in res.stderr


def test_documented_arm_sql_matches_report(db_url: str) -> None:
    """docs/sql.md section 8's SQL arm label equals ``--compare arm``'s (both backends)."""
    from xlrun.cli.report import sql_command

    docs = Path(__file__).resolve().parents[2] / "docs" / "sql.md"
    section = docs.read_text(encoding="utf-8").split("## 8.")[1]
    query = section.split("```sql")[1].split("```")[0].replace("'my-exp'", "'study'")
    engine = new_engine(db_url)
    populate_arms(engine, n_queries=4)
    rep = _report(engine, compare="arm", filter=ReportFilter(setting="cross"), by="setting")
    engine.dispose()
    res = CliRunner().invoke(sql_command, [query, "--db", db_url, "--format", "csv"])
    assert res.exit_code == 0, res.output
    sql = pl.read_csv(res.stdout.encode())
    # the default baseline (hybrid/size) comes first in meta; the SQL lists arms sorted
    assert rep.meta["arms"][0] == "hybrid/size"
    assert sql["arm"].to_list() == sorted(rep.meta["arms"])
    by_arm = dict(rep.frame.select("arm", "mean").iter_rows())
    assert sql["map"].to_list() == pytest.approx([by_arm[a] for a in sql["arm"]], abs=6e-5)


def test_regress_says_what_it_left_out(study_url: str) -> None:
    """Three languages, cross pairs only: 3 unordered pairs, which the languages' own
    effects (query and document language, fixed) explain completely, so distance, its arm
    interaction and same_cluster are left out (with 3 languages a pair's distance is no
    information beyond its two languages: issue 23). What is left out is a note and part of
    the title, never silent (issue 13: a title still said "+ language fixed effects" after
    they were dropped)."""
    res = _invoke(["--regress", "--compare", "arm", "--baseline", "hybrid/size", "--where",
                   "sampler=hybrid", "--setting", "cross", "--format", "json",
                   "--db", study_url])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    meta = doc["meta"]
    clustered = f"hybrid/{CLUSTERED}[{CLUSTERING}]"
    assert meta["dropped_terms"] == ["distance", f"arm[{clustered}]:distance", "same_cluster"]
    assert "query_lang[en]" in meta["terms"] and "doc_lang[en]" in meta["terms"]
    assert meta["n_pairs"] == 6 and meta["n_unordered_pairs"] == 3 and meta["n_languages"] == 3
    assert meta["df_between_pairs"] == 0
    assert any(n.startswith("term distance left out of the model: collinear") and
               "effects of the 3 languages already explain it on the 3 unordered pairs" in n
               for n in meta["notes"])
    res = _invoke(["--regress", "--compare", "arm", "--baseline", "hybrid/size", "--where",
                   "sampler=hybrid", "--setting", "cross", "--db", study_url])
    title = " ".join(res.stdout.split("\n\n")[0].split())
    assert title.startswith("map ~ arm + query-language and doc-language fixed effects (")
    assert f"left out: distance, arm[{clustered}]:distance, same_cluster" in title
    assert "6 language-pair means (3 unordered pairs of 3 languages) × 2 arm(s)" in title
    for r in doc["rows"]:  # every interval and p from one t
        if r["p"] is not None:
            assert (r["p"] < 0.05) == (r["ci_low"] > 0 or r["ci_high"] < 0), r
