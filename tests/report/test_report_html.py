"""``xlrun report --html``: the page's numbers are ``--format json``'s, it is self-contained,
and it writes nothing on a bad request (the browser tests are in
``test_report_html_browser.py``)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from html_study import Study, build
from report_db import new_engine

from xlrun.cli.report import report_command
from xlrun.report.build import ReportRequest
from xlrun.report.frames import ReportFilter
from xlrun.report.html import write_page
from xlrun.report.html.data import drilldown
from xlrun.report.html.overview import safe_url

BASE = ["--experiment", "study", "--compare", "arm", "--baseline", "hybrid/size"]


def _invoke(args: list[str]):
    return CliRunner().invoke(report_command, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:
    """(url, page path, page text) of the small study's page."""
    folder = tmp_path_factory.mktemp("html")
    url = f"sqlite:///{folder / 'study.db'}"
    engine = new_engine(url)
    build(engine, Study())
    engine.dispose()
    page = folder / "study.html"
    res = _invoke(["--db", url, *BASE, "--html", str(page)])
    assert res.exit_code == 0, res.output
    assert f"wrote {page}" in res.stderr
    return url, page, page.read_text(encoding="utf-8")


def page_data(text: str) -> dict:
    """The JSON embedded in a page."""
    m = re.search(r'<script type="application/json" id="xlrun-data">(.*?)</script>', text,
                  re.S)
    assert m is not None
    return json.loads(m.group(1))


def _json(url: str, *args: str) -> dict:
    res = _invoke(["--db", url, *BASE, "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_every_report_in_the_page_is_the_json_report(study: tuple[str, Path, str]) -> None:
    url, _, text = study
    reports = page_data(text)["reports"]
    assert reports["settings"] == _json(url, "--by", "setting")
    for setting in ("mono", "cross", "multi"):
        assert reports[f"pairs/{setting}"] == _json(url, "--by", "language-pair",
                                                    "--setting", setting)
    assert reports["regress"] == _json(url, "--regress", "--setting", "cross")
    assert reports["bias"] == _json(url, "--bias", "--by", "query-language")
    assert reports["exposure"] == _json(url, "--exposure")
    assert reports["curves"] == _json(url, "--curves")
    # and the rows are real: 4 arms × 3 settings, deltas against the baseline
    rows = reports["settings"]["rows"]
    assert len(rows) == 12
    assert all(r["delta"] is not None for r in rows if r["arm"] != "hybrid/size")


def test_visible_tables_print_the_json_numbers(study: tuple[str, Path, str]) -> None:
    from xlrun.report.render import format_value

    _, _, text = study
    settings = page_data(text)["reports"]["settings"]["rows"]
    for r in settings:
        for col in ("mean", "p_holm"):
            if r[col] is not None:
                assert f">{format_value(col, r[col])}<" in text or \
                    f"{format_value(col, r[col])} " in text, (col, r[col])


class _Tags(HTMLParser):
    """Every tag and attribute of a page outside script and style text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def test_page_is_self_contained(study: tuple[str, Path, str]) -> None:
    _, _, text = study
    parser = _Tags()
    parser.feed(text)
    names = [t for t, _ in parser.tags]
    assert "link" not in names and "iframe" not in names and "img" not in names
    for tag, attrs in parser.tags:
        for key in ("src", "href", "action", "data", "poster"):
            value = attrs.get(key)
            assert value is None or value.startswith("#"), (tag, key, value)
    csp = [a["content"] for t, a in parser.tags
           if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0] and "connect-src 'none'" in csp[0]
    assert text.count("Plotly.newPlot(") >= 8  # every chart drawn by plotly.js …
    assert len(re.findall(r"<script>", text)) == 2 + text.count("Plotly.newPlot(")
    assert text.count("plotly.js v") <= 2  # … which is inlined once (its banner)


def test_page_has_every_section_and_the_notes(study: tuple[str, Path, str]) -> None:
    url, _, text = study
    for section in ("overview", "settings", "pairs", "regression", "bias", "exposure",
                    "curves", "drilldown"):
        assert f'<section id="{section}">' in text
    for chart in ("timings", "forest", "pairs-0", "pairs-1", "pairs-2",
                  "regress-points-0", "coefficients-0", "bias", "exposure", "curves"):
        assert f'data-chart="{chart}"' in text, chart
    # every note the text report prints is on the page
    res = _invoke(["--db", url, *BASE, "--by", "language-pair", "--setting", "cross"])
    notes = [line[len("note: "):] for line in res.stderr.splitlines()
             if line.startswith("note: ")]
    assert notes
    from html import escape

    for note in notes:
        assert escape(note) in text, note
    assert "1 failed" in text  # the overview counts the failed run


def test_drilldown_keeps_the_largest_changes(study: tuple[str, Path, str]) -> None:
    url, _, text = study
    engine = new_engine(url)
    req = ReportRequest(filter=ReportFilter(experiment="study"), compare="arm")
    with engine.connect() as conn:
        top = drilldown(conn, req, "hybrid/size", per_pair=2, per_setting=3)
        from xlrun.report.frames import load_report_frame

        df = load_report_frame(conn, req.filter, ["ap"], "arm")
    engine.dispose()
    key = ["setting", "query_lang", "doc_lang", "query_id"]
    means = df.group_by([*key, "arm"]).agg(pl.col("ap").mean())
    base = means.filter(pl.col("arm") == "hybrid/size").drop("arm").rename({"ap": "b"})
    full = (means.filter(pl.col("arm") != "hybrid/size").join(base, on=key)
            .with_columns((pl.col("ap") - pl.col("b")).alias("d")))
    for (setting, arm), part in full.group_by("setting", "arm"):
        want = sorted(part["d"].abs().to_list(), reverse=True)[:3]
        got = top.filter(pl.col("setting") == setting, pl.col("arm") == arm)
        assert sorted(got["delta"].abs().to_list(), reverse=True)[:3] == pytest.approx(want)
        pair = part.filter(pl.col("query_lang") == "en", pl.col("doc_lang") == "de")
        if pair.height:
            want2 = sorted(pair["d"].abs().to_list(), reverse=True)[:2]
            got2 = got.filter(pl.col("query_lang") == "en", pl.col("doc_lang") == "de")
            assert sorted(got2["delta"].abs().to_list(), reverse=True)[:2] == \
                pytest.approx(want2)
    rows = page_data(text)["drilldown"]["rows"]
    assert len(rows) > 0


def test_regression_line_is_the_tables_arm_terms(study: tuple[str, Path, str]) -> None:
    """The fitted line of the pair deltas equals arm[a] + arm[a]:distance × distance."""
    url, _, _ = study
    from xlrun.report.html.data import build_page_data

    engine = new_engine(url)
    req = ReportRequest(filter=ReportFilter(experiment="study"), compare="arm",
                        baseline="hybrid/size")
    with engine.connect() as conn:
        data = build_page_data(conn, req)
    engine.dispose()
    table = {r[0]: r[1] for r in data.regress[0].report.frame.select("term", "coef").iter_rows()}
    lines = {ln.arm: ln for ln in data.regress_lines[""]}
    for arm in ("hybrid/clustered[script/k=3/average/within]", "monolingual/size"):
        assert lines[arm].intercept == pytest.approx(table[f"arm[{arm}]"], abs=1e-9)
        assert lines[arm].slope == pytest.approx(table[f"arm[{arm}]:distance"], abs=1e-9)


def test_bad_requests_write_nothing(study: tuple[str, Path, str], tmp_path: Path) -> None:
    url, _, _ = study
    page = tmp_path / "p.html"
    res = _invoke(["--db", url, "--experiment", "nope", "--html", str(page)])
    assert res.exit_code == 2 and "unknown experiment" in res.output
    res = _invoke(["--db", url, *BASE, "--html", str(page), "--regress"])
    assert res.exit_code == 2 and "--html writes every view" in res.output
    res = _invoke(["--db", url, "--compare", "arm", "--baseline", "x", "--html", str(page)])
    assert res.exit_code == 2 and "--baseline" in res.output
    res = _invoke(["--db", url, *BASE, "--html", str(tmp_path / "no" / "p.html")])
    assert res.exit_code == 2 and "does not exist" in res.output
    assert not page.exists() and not list(tmp_path.iterdir())


def test_write_page_is_the_api_entry_point(study: tuple[str, Path, str],
                                           tmp_path: Path) -> None:
    url, _, _ = study
    engine = new_engine(url)
    out = write_page(engine, ReportRequest(filter=ReportFilter(experiment="study")),
                     tmp_path / "api.html")
    engine.dispose()
    assert out == tmp_path / "api.html" and out.stat().st_size < 10_000_000
    assert page_data(out.read_text(encoding="utf-8"))["request"]["compare"] == "arm"


def test_database_url_is_shown_without_secrets() -> None:
    shown = safe_url("postgresql+psycopg2://alice:s3cret@db:5432/x?sslpassword=hush&app=y")
    assert "s3cret" not in shown and "hush" not in shown and "alice" in shown
    assert "app=y" in shown


@pytest.mark.postgres
def test_page_on_postgres_has_the_sqlite_numbers(study: tuple[str, Path, str], postgres_url: str,
                                                 tmp_path: Path) -> None:
    _, _, text = study
    engine = new_engine(postgres_url)
    build(engine, Study())
    out = write_page(engine, ReportRequest(filter=ReportFilter(experiment="study"),
                                           compare="arm", baseline="hybrid/size"),
                     tmp_path / "pg.html")
    engine.dispose()
    pg = page_data(out.read_text(encoding="utf-8"))
    lite = page_data(text)
    assert pg["reports"] == lite["reports"]
    assert pg["drilldown"]["rows"] == lite["drilldown"]["rows"]
