"""The Python API (``xlrun.connect``): the CLI's numbers as DataFrames, read-only, silent."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sqlite3
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

import xlrun
from xlrun.cli.report import report_command
from xlrun.db.engine import sqlite_path
from xlrun.errors import UsageError

FAST = ["--permutations", "300"]

REPORTS = [  # (CLI flags, the same as keyword arguments)
    (["--by", "setting", "--compare", "arm"], {"by": "setting", "compare": "arm"}),
    (["--by", "language-pair", "--setting", "cross", "--compare", "arm", "--baseline", "none"],
     {"by": "language-pair", "setting": "cross", "compare": "arm", "baseline": "none"}),
    ([], {}),
    (["--by", "query-language", "--where", "sampler=hybrid", "--compare", "language_sampling"],
     {"by": "query-language", "where": {"sampler": "hybrid"}, "compare": "language_sampling"}),
    (["--bias", "--by", "query-language", "--setting", "multi", "--compare", "arm"],
     {"bias": True, "by": "query-language", "setting": "multi", "compare": "arm"}),
    (["--regress", "--compare", "arm", "--setting", "cross", *FAST],
     {"regress": True, "compare": "arm", "setting": "cross", "permutations": 300}),
    (["--exposure", "pairs", "--top", "3"], {"exposure": "pairs", "top": 3}),
    (["--by", "setting", "--metric", "ndcg@10", "--where", "seed!=2"],
     {"by": "setting", "metric": "ndcg@10", "where": ["seed!=2"]}),
]


def _cli_json(url: str, flags: list[str]) -> dict:
    res = CliRunner().invoke(report_command, ["--db", url, "--experiment", "quickstart",
                                              "--format", "json", *flags])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _digest(url: str) -> str:
    path = sqlite_path(url)
    assert path is not None
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("flags", "kwargs"), REPORTS,
                         ids=["setting", "pairs", "default", "where", "bias", "regress",
                              "exposure", "metric"])
def test_report_table_equals_the_cli_json(quickstart_like_url: str, flags: list[str],
                                          kwargs: dict) -> None:
    cli = _cli_json(quickstart_like_url, flags)
    with xlrun.connect(quickstart_like_url) as res:
        rep = res.report(experiment="quickstart", **kwargs)
        assert rep.table.columns == list(cli["rows"][0])
        assert rep.table.to_dicts() == cli["rows"]  # exactly: same rounding, nulls, order
        assert list(rep.notes) == cli["meta"].get("notes", [])
        assert rep.meta == cli["meta"]
        pandas = res.report(experiment="quickstart", dataframe="pandas", **kwargs).table
        assert list(pandas.columns) == list(cli["rows"][0]) and len(pandas) == len(cli["rows"])


def test_render_latex_and_wide_equal_the_cli(quickstart_like_url: str) -> None:
    flags = ["--by", "setting", "--compare", "arm"]
    with xlrun.connect(quickstart_like_url) as res:
        rep = res.report(experiment="quickstart", by="setting", compare="arm")
        for fmt, layout in (("table", "long"), ("latex", "wide"), ("markdown", "wide")):
            out = CliRunner().invoke(report_command, [
                "--db", quickstart_like_url, "--experiment", "quickstart", *flags,
                "--format", fmt, "--layout", layout])
            assert rep.render(fmt, layout) == out.stdout
        assert rep.to_latex() == rep.render("latex", "wide")
        wide = rep.wide()
        assert wide.columns == ["arm", "mono", "cross", "multi"]
        assert wide["arm"][0] == "hybrid/size" == rep.request.baseline
        assert "Holm" in (rep.legend() or "")
        html = rep._repr_html_()
        assert rep.title.split(":")[0] in html and "<table" in html


def test_experiments_runs_and_query_results(quickstart_like_url: str) -> None:
    with xlrun.connect(quickstart_like_url) as res:
        exps = res.experiments()
        assert exps.select("experiment", "runs", "done", "failed").rows() == [
            ("quickstart", 7, 7, 0)]
        assert exps["description"][0].startswith("Generated for tests")
        runs = res.runs("quickstart")
        assert runs.height == 7
        assert runs["arm"].to_list() == [
            "hybrid/size", "hybrid/size", "hybrid/clustered[script/k=3/average/within]",
            "hybrid/clustered[script/k=3/average/within]", "monolingual/size",
            "monolingual/size", "none"]
        assert res.runs(where="sampler=hybrid")["run_id"].to_list() == [1, 2, 3, 4]
        assert res.runs(where={"seed": [1, 2], "sampler": "monolingual"}).height == 2
        assert res.runs(where={"train.steps": 0})["arm"].to_list() == ["none"]
        assert res.runs(status="failed").height == 0
        q = res.query_results("quickstart", setting="cross",
                              columns=["map", "n_relevant", "first_relevant_rank"])
        assert q.height == 7 * 12 * 30  # runs × ordered pairs × questions
        assert q.schema["ap"] == pl.Float64 and q.schema["n_relevant"] == pl.Int64
        assert q.schema["first_relevant_rank"] == pl.Int64
        assert {"run_id", "arm", "seed", "query_id", "query_lang", "doc_lang"} <= set(q.columns)
        # the per-query rows give the report's numbers: the baseline's cross mean
        rep = res.report(experiment="quickstart", by="setting", compare="arm",
                         setting="cross")
        base = rep.report.frame.filter(pl.col("arm") == "hybrid/size")["mean"][0]
        mine = (q.filter(pl.col("arm") == "hybrid/size")
                .group_by("run_id", "query_id").agg(pl.col("ap").mean())
                .group_by("run_id").agg(pl.col("ap").mean())["ap"].mean())
        assert mine == pytest.approx(base, abs=1e-12)
        pandas = res.query_results("quickstart", setting="mono", dataframe="pandas")
        assert len(pandas) == 7 * 4 * 30 and "ap" in pandas.columns


def test_query_results_are_read_grouped_not_row_by_row(quickstart_like_url: str) -> None:
    """The database concatenates each run × pair's values; ~ a hundred rows cross the driver
    for thousands of results (a million results: ~1,000 rows)."""
    with xlrun.connect(quickstart_like_url) as res:
        statements: list[str] = []
        event.listen(res.engine, "before_cursor_execute",
                     lambda *a: statements.append(a[2]))
        q = res.query_results("quickstart")
    big = [s for s in statements if "query_results" in s]
    assert len(big) == 1 and "group_concat" in big[0].lower()
    assert q.height == 7 * 20 * 30


def test_the_api_never_writes_nor_prints(quickstart_like_url: str,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    before = _digest(quickstart_like_url)
    with xlrun.connect(quickstart_like_url) as res:
        res.experiments()
        res.runs()
        res.query_results()
        rep = res.report(experiment="quickstart", by="setting", compare="arm")
        rep.wide()
        rep.to_latex()
        with pytest.raises(DBAPIError, match="readonly"), res.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM runs")  # a connection that cannot write
    assert _digest(quickstart_like_url) == before
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_plot_writes_a_png(quickstart_like_url: str, tmp_path: Path) -> None:
    with xlrun.connect(quickstart_like_url) as res:
        rep = res.report(experiment="quickstart", by="setting", compare="arm")
        path = rep.plot(tmp_path / "setting.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(importlib.util.find_spec("xlrun.report.html") is None,
                    reason="xlrun.report.html (the HTML page writer) is not in this tree")
def test_to_html_writes_the_page(quickstart_like_url: str, tmp_path: Path) -> None:
    with xlrun.connect(quickstart_like_url) as res:
        rep = res.report(experiment="quickstart", by="setting", compare="arm")
        path = rep.to_html(tmp_path / "page.html")
    text = path.read_text(encoding="utf-8")
    assert "<html" in text.lower() and "hybrid/size" in text


def test_errors_are_the_clis(tmp_path: Path, quickstart_like_url: str) -> None:
    missing = tmp_path / "nothing.db"
    with pytest.raises(UsageError, match="no database"):
        xlrun.connect(missing)
    assert not missing.exists()
    with pytest.raises(UsageError, match="not a database URL"):
        xlrun.connect("postgresql+psycopg2//host/db")
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x INTEGER)").connection.commit()
    with pytest.raises(UsageError, match="holds no xlrun results"):
        xlrun.connect(other)
    with pytest.raises(UsageError, match="dataframe"):
        xlrun.connect(quickstart_like_url, dataframe="arrow")  # type: ignore[arg-type]
    with xlrun.connect(quickstart_like_url) as res:
        assert res.url == quickstart_like_url
        with pytest.raises(UsageError, match="unknown experiment 'nope'; known: quickstart"):
            res.runs("nope")
        with pytest.raises(UsageError, match="unknown --by"):
            res.report(by="nope")
        with pytest.raises(UsageError, match="query_results column"):
            res.query_results(columns=["nope"])
        with pytest.raises(UsageError, match="KEY=VALUE"):
            res.runs(where="sampler")


def test_connect_takes_a_path(quickstart_like_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = sqlite_path(quickstart_like_url)
    with xlrun.connect(path) as res:
        assert res.experiments().height == 1
    monkeypatch.setenv("XLRUN_DB", quickstart_like_url)
    with xlrun.connect() as res:
        assert res.runs().height == 7


@pytest.mark.postgres
def test_postgres_reads_the_same(postgres_url: str) -> None:
    from quickstart_like import build

    build(postgres_url)
    flags, kwargs = REPORTS[0]
    cli = _cli_json(postgres_url, flags)
    with xlrun.connect(postgres_url) as res:
        assert res.url == make_url(postgres_url).render_as_string(hide_password=True)
        rep = res.report(experiment="quickstart", **kwargs)
        assert rep.table.to_dicts() == cli["rows"]
        statements: list[str] = []
        event.listen(res.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        q = res.query_results("quickstart", columns=["map", "n_relevant"])
        assert q.height == 7 * 20 * 30 and q.schema["n_relevant"] == pl.Int64
        assert any("string_agg" in s.lower() for s in statements)
