"""``xlrun report`` and ``xlrun sql`` end to end on synthetic databases."""

from __future__ import annotations

import json
import os
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from report_db import Synth, new_engine, populate
from sqlalchemy import func, insert, select

from xlrun.cli.report import report_command, sql_command
from xlrun.db.models import Experiment, QueryResult, Run
from xlrun.report import frames as rquery
from xlrun.report.build import ReportRequest, build_report
from xlrun.report.frames import ReportFilter, load_report_frame
from xlrun.report.inference import InferenceConfig

GOLDEN = Path(__file__).resolve().parent / "golden"
FAST = ["--permutations", "500"]
PLANTED = {("en", "de"): 0.05, ("de", "fi"): 0.05, ("fi", "en"): 0.05}


def _invoke(cmd, args: list[str]):
    return CliRunner().invoke(cmd, args, catch_exceptions=False)


@pytest.fixture
def golden_url(sqlite_url: str) -> str:
    """A tiny database whose values are a formula (no random numbers): stable goldens."""
    engine = new_engine(sqlite_url)
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="golden", spec_toml="")
                           .returning(Experiment.id)).scalar_one()
        rows = []
        for a, arm in enumerate(("random", "clustered")):
            for seed in (0, 1):
                rid = conn.execute(insert(Run).values(
                    experiment_id=exp, run_key=f"{arm}{seed}", status="done",
                    config_json=json.dumps({"train": {"lr": 1e-5 * (a + 1), "seed": seed}}),
                    model="m", sampler="hybrid", language_sampling=arm, seed=seed)
                    .returning(Run.id)).scalar_one()
                for qi, q in enumerate(("de", "en")):
                    for di, d in enumerate(("de", "en")):
                        for i in range(6):
                            v = ((7 * i + 3 * qi + 5 * di + 2 * seed) % 10) / 20 + 0.1
                            v += 0.04 * a * (q != d) + 0.01 * a * (i % 3)
                            rows.append({"run_id": rid, "dataset": "toy", "split": "test",
                                         "setting": "cross" if q != d else "mono",
                                         "query_lang": q, "doc_lang": d, "query_id": f"q{i}",
                                         "n_relevant": 1, "ap": v, "ndcg_at_10": v,
                                         "mrr_at_10": v, "recall_at_100": v,
                                         "first_relevant_rank": 1})
        failed = conn.execute(insert(Run).values(
            experiment_id=exp, run_key="failed", status="failed", config_json="{}", model="m",
            sampler="hybrid", language_sampling="random", seed=9).returning(Run.id)
        ).scalar_one()
        rows.append({**rows[0], "run_id": failed, "ap": 99.0})  # must never be counted
        conn.execute(insert(QueryResult), rows)
    engine.dispose()
    return sqlite_url


@pytest.mark.parametrize("fmt,ext", [("table", "txt"), ("csv", "csv"), ("json", "json"),
                                     ("markdown", "md")])
@pytest.mark.parametrize("kind", ["summary", "compare", "arm", "query"])
def test_outputs_match_golden_files(golden_url: str, kind: str, fmt: str, ext: str) -> None:
    args = ["--by", "language-pair", "--experiment", "golden", "--format", fmt, "--db", golden_url]
    if kind == "compare":
        args += ["--compare", "language_sampling", "--baseline", "random", *FAST]
    if kind == "query":  # the question-only test, labelled as such, with the sign-flip p
        args += ["--compare", "language_sampling", "--baseline", "random", "--test", "query",
                 *FAST]
    if kind == "arm":  # whole arms, one seed, lr given as 1e-5 (stored 1e-05)
        args += ["--compare", "arm", "--baseline", "hybrid/random", "--where", "seed=1",
                 "--where", "train.lr=1e-5", "--where", "train.lr=2e-5", *FAST]
    res = _invoke(report_command, args)
    assert res.exit_code == 0, res.output
    path = GOLDEN / f"{kind}.{ext}"
    if os.environ.get("XLRUN_UPDATE_GOLDEN"):
        path.write_text(res.stdout, encoding="utf-8")
    assert res.stdout == path.read_text(encoding="utf-8")


def test_summary_agrees_with_sql_view(golden_url: str) -> None:
    engine = new_engine(golden_url)
    rep = build_report(engine, ReportRequest(by="language-pair"))
    with engine.connect() as c:
        view = c.exec_driver_sql(
            "SELECT query_lang, doc_lang, SUM(map * n_queries) / SUM(n_queries), "
            "SUM(n_queries) FROM arm_pair_metrics GROUP BY query_lang, doc_lang "
            "ORDER BY query_lang, doc_lang").all()
    engine.dispose()
    assert [(r[0], r[1]) for r in view] == list(rep.frame.select("query_lang", "doc_lang")
                                                .iter_rows())
    assert [r[2] for r in view] == pytest.approx(rep.frame["mean"].to_list())
    assert rep.frame["n_runs"].to_list() == [4] * 4  # the failed run is left out
    assert rep.frame["n_queries"].to_list() == [6] * 4


def test_planted_effect_is_significant_only_where_planted(make_db) -> None:
    # 5 seeds per arm: the seed-level test (df = 4) has power; with 3 it rarely survives Holm.
    _, engine = make_db(Synth(effect=PLANTED, n_queries=60, seeds=(0, 1, 2, 3, 4)))
    rep = build_report(engine, ReportRequest(
        by="language-pair", compare="language_sampling", baseline="random"))
    rows = rep.frame.filter(pl.col("arm") == "clustered")
    assert rows.height == 9
    for r in rows.iter_rows(named=True):
        planted = (r["query_lang"], r["doc_lang"]) in PLANTED
        assert (r["p_holm"] < 0.05) == planted, r
        assert (r["mark"] != "") == planted
        assert (r["ci_low"] > 0 or r["ci_high"] < 0) == (r["p"] < 0.05)
        if planted:
            assert r["ci_low"] < 0.05 < r["ci_high"]
    query = build_report(engine, ReportRequest(
        by="language-pair", compare="language_sampling", baseline="random",
        tests=InferenceConfig(test="query", n_permutations=1000)))
    planted_rows = query.frame.filter(pl.col("arm") == "clustered", pl.col("delta") > 0.03)
    assert planted_rows["p_rand"].max() < 0.01
    assert "question-only paired t" in query.title
    base = rep.frame.filter(pl.col("arm") == "random")
    assert base["delta"].null_count() == base.height


def test_compare_on_config_key_and_other_cells(make_db) -> None:
    url, _ = make_db(Synth(effect=PLANTED, n_queries=20))
    res = _invoke(report_command, ["--by", "query-language", "--compare", "train.lr",
                                   "--format", "json", "--db", url, *FAST])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["meta"]["baseline"] == "1e-05" and doc["meta"]["arms"] == ["1e-05", "2e-05"]
    assert {r["query_lang"] for r in doc["rows"]} == {"en", "de", "fi"}
    for by in ("doc-language", "setting", "run", "sampler"):
        res = _invoke(report_command, ["--by", by, "--format", "csv", "--db", url])
        assert res.exit_code == 0, res.output
        assert res.stdout.startswith({"doc-language": "doc_lang", "setting": "setting",
                                      "run": "run_id", "sampler": "sampler"}[by])
    res = _invoke(report_command, ["--by", "run", "--format", "csv", "--db", url])
    assert len(res.stdout.strip().splitlines()) == 1 + 6


def test_errors_exit_2_with_message(make_db) -> None:
    url, _ = make_db(Synth(n_queries=5))
    res = _invoke(report_command, ["--experiment", "nope", "--db", url])
    assert res.exit_code == 2 and "Error: unknown experiment 'nope'" in res.stderr
    res = _invoke(report_command, ["--dataset", "nothing", "--db", url])
    assert res.exit_code == 2 and "Error: no query results" in res.stderr
    res = _invoke(report_command, ["--by", "lang", "--db", url])
    assert res.exit_code == 2
    res = _invoke(report_command, ["--compare", "train.nonexistent", "--db", url])
    assert res.exit_code == 2 and "config key" in res.stderr
    res = _invoke(report_command, ["--compare", "language_sampling", "--baseline", "x",
                                   "--db", url])
    assert res.exit_code == 2 and "--baseline 'x' is not an arm" in res.stderr
    res = _invoke(report_command, ["--metric", "rank_distance", "--db", url])
    assert res.exit_code == 2 and "multi" in res.stderr


def test_plots_are_written(make_db, tmp_path: Path) -> None:
    url, _ = make_db(Synth(effect=PLANTED, n_queries=10))
    for args, name in ((["--compare", "language_sampling"], "delta.png"), ([], "map.png"),
                       (["--by", "query-language", "--compare", "language_sampling"],
                        "bars.png")):
        png = tmp_path / name
        res = _invoke(report_command, [*args, "--plot", str(png), "--format", "csv",
                                       "--out", str(tmp_path / "r.csv"), "--db", url, *FAST])
        assert res.exit_code == 0, res.output
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 2000


def test_regress_and_bias_views(make_db) -> None:
    s = Synth(langs=("en", "de", "fi", "sw"), n_queries=30, slope=0.2, noise=0.02,
              distances={("en", "de"): 0.2, ("en", "fi"): 0.7, ("en", "sw"): 1.0,
                         ("de", "fi"): 0.5, ("de", "sw"): 0.8, ("fi", "sw"): 0.3},
              clusters={"en": 0, "de": 0, "fi": 1, "sw": 1}, with_multi=True)
    url, _ = make_db(s)
    res = _invoke(report_command, ["--regress", "--compare", "language_sampling",
                                   "--baseline", "random", "--setting", "cross",
                                   "--format", "json", "--db", url])
    assert res.exit_code == 0, res.output
    rows = {r["term"]: r for r in json.loads(res.stdout)["rows"]}
    inter = rows["arm[clustered]:distance"]
    assert inter["coef"] == pytest.approx(0.2, abs=0.03) and inter["p"] < 0.001
    assert "same_cluster" in rows
    res = _invoke(report_command, ["--bias", "--by", "query-language", "--compare",
                                   "language_sampling", "--format", "csv", "--db", url])
    assert res.exit_code == 0, res.output
    lines = res.stdout.strip().splitlines()
    assert lines[0].startswith("query_lang,arm,n_queries,n_runs,rank_distance,rd_ci_low,"
                               "rd_ci_high,rd_median,pool_size,rd_norm,same_lang_at_10")
    assert len(lines) == 1 + 4 * 2
    assert "pool size unknown" in res.stderr  # the synthetic runs name no evaluation data


def test_fast_fetch_equals_row_fetch(make_db, monkeypatch) -> None:
    _, engine = make_db(Synth(n_queries=7, with_multi=True))
    cols = ["ap", "rank_distance", "same_lang_at_10"]
    with engine.connect() as c:
        fast = load_report_frame(c, ReportFilter(), cols, "language_sampling")
        monkeypatch.setattr(rquery, "_fetch_grouped", lambda *a, **k: None)
        slow = load_report_frame(c, ReportFilter(), cols, "language_sampling")
    key = ["run_id", "setting", "query_lang", "doc_lang", "query_id"]
    assert fast.sort(key).equals(slow.sort(key))
    assert fast["rank_distance"].null_count() == slow["rank_distance"].null_count() > 0


def _sql(url: str, query: str):
    return _invoke(sql_command, [query, "--db", url, "--format", "csv"])


def _count(url: str) -> int:
    engine = new_engine(url)
    with engine.connect() as c:
        n = c.execute(select(func.count()).select_from(QueryResult)).scalar_one()
    engine.dispose()
    return n


def _check_sql(url: str, n_seeds: int) -> None:
    res = _sql(url, "SELECT language_sampling, COUNT(*) AS n FROM runs "
                    "GROUP BY language_sampling ORDER BY 1;")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == ["language_sampling,n", f"clustered,{n_seeds}",
                                      f"random,{n_seeds}"]
    res = _sql(url, "SELECT 'a;b' AS s -- trailing; comment")
    assert res.exit_code == 0 and res.stdout.splitlines()[1] == "a;b"
    before = _count(url)
    for bad in ("INSERT INTO experiments (name, spec_toml) VALUES ('x', '')",
                "DELETE FROM query_results", "DROP TABLE runs",
                "SELECT 1; DELETE FROM query_results", "SELECT 1; COMMIT; DROP TABLE runs",
                "WITH x AS (SELECT 1) DELETE FROM query_results",
                "  /* c */ update runs set seed = 3"):
        res = _sql(url, bad)
        assert res.exit_code == 2, (bad, res.output)
        assert res.stderr.startswith("Error:")
    assert _count(url) == before


def test_sql_is_read_only_sqlite(make_db) -> None:
    url, _ = make_db(Synth(n_queries=2, seeds=(0,)))
    _check_sql(url, 1)


def _pg_report(url: str, s: Synth) -> pl.DataFrame:
    engine = new_engine(url)
    populate(engine, s)
    rep = build_report(engine, ReportRequest(
        by="language-pair", compare="language_sampling",
        tests=InferenceConfig(n_permutations=300)))
    engine.dispose()
    return rep.frame


@pytest.mark.postgres
def test_same_results_on_sqlite_and_postgres(sqlite_url: str, postgres_url: str) -> None:
    s = Synth(effect=PLANTED, n_queries=15, seeds=(0, 1))
    a, b = _pg_report(sqlite_url, s), _pg_report(postgres_url, s)
    assert a.columns == b.columns and a.height == b.height
    for c in a.columns:
        x, y = a[c].to_list(), b[c].to_list()
        assert [v is None for v in x] == [v is None for v in y], c
        if a.schema[c].is_float():
            x, y = [v for v in x if v is not None], [v for v in y if v is not None]
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12), c
        else:
            assert x == y, c
    _check_sql(postgres_url, 2)


def test_bias_intervals_median_and_pool_size(make_db) -> None:
    """--bias: each arm's mean rank distance with an interval (seeds and questions random),
    its median, and divided by the pool size, which comes from the evaluation data the runs'
    configs name (the generated quickstart corpus: 8 languages × 240 documents)."""
    url, engine = make_db(Synth(n_queries=20, with_multi=True))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE query_results SET dataset = 'quickstart'")
        for rid, cfg in conn.exec_driver_sql("SELECT id, config_json FROM runs").all():
            doc = json.loads(cfg)
            doc["eval"] = [{"dataset": "quickstart", "split": "test", "settings": ["multi"]},
                           {"dataset": "xquad-r", "path": "/nonexistent/xquad-r",
                            "settings": ["multi"]}]
            conn.exec_driver_sql("UPDATE runs SET config_json = ? WHERE id = ?",
                                 (json.dumps(doc), rid))
    res = _invoke(report_command, ["--bias", "--by", "query-language", "--compare",
                                   "language_sampling", "--format", "json", "--db", url])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    for r in doc["rows"]:
        assert r["pool_size"] == 8 * 240
        assert r["rd_norm"] == pytest.approx(r["rank_distance"] / 1920, abs=1e-6)
        assert r["rd_ci_low"] < r["rank_distance"] < r["rd_ci_high"]
        assert r["rd_median"] in (2.0, 3.0)  # rank distances 0..4 (+1 for the second arm)
        assert r["n_runs"] == 3 and r["n_queries"] == 20
    assert any("pool size of xquad-r/test unknown" in n for n in doc["meta"]["notes"])


def test_bias_by_setting_lines_up_query_languages_through_the_cli(make_db) -> None:
    """--bias --by setting pools the multilingual setting's query languages: after one run's
    rows of one (hard) query language are deleted by SQL, every run of the cell is summarised
    without that language (a note names it), so the arms' means and intervals equal those of
    the report with that language gone from every run."""
    url, engine = make_db(Synth(n_queries=20, with_multi=True))
    with engine.begin() as conn:
        rid, lang = conn.exec_driver_sql(
            "SELECT MIN(run_id), MIN(query_lang) FROM query_results "
            "WHERE setting = 'multi'").one()
        conn.exec_driver_sql("UPDATE query_results SET rank_distance = rank_distance + 50 "
                             "WHERE setting = 'multi' AND query_lang = ?", (lang,))
        conn.exec_driver_sql("DELETE FROM query_results WHERE setting = 'multi' AND "
                             "run_id = ? AND query_lang = ?", (rid, lang))
    args = ["--bias", "--by", "setting", "--compare", "language_sampling", "--format", "json",
            "--db", url]
    doc = json.loads(_invoke(report_command, args).stdout)
    assert any(f"({lang}→all" in n and "left out" in n for n in doc["meta"]["notes"]), doc
    with engine.begin() as conn:  # the same rows gone from every run: nothing left to line up
        conn.exec_driver_sql("DELETE FROM query_results WHERE setting = 'multi' AND "
                             "query_lang = ?", (lang,))
    same = json.loads(_invoke(report_command, args).stdout)
    assert not any("left out" in n for n in same["meta"]["notes"])
    for col in ("rank_distance", "rd_ci_low", "rd_ci_high", "rd_median"):
        assert [r[col] for r in doc["rows"]] == \
            pytest.approx([r[col] for r in same["rows"]], rel=1e-12), col
