"""The HTML page in a real browser: headless Chromium (Debian's ``chromium``; CI installs it)
driven by Playwright. The page loads without a console error or any request beyond its own
file, every chart renders (its DOM and its pixels), the charts hold the JSON's numbers, and
the drill-down's controls change its table. Skipped, with the reason, where Chromium or the
``playwright`` package is absent."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from html_study import Study, build
from report_db import new_engine

from xlrun.report.build import ReportRequest
from xlrun.report.frames import ReportFilter
from xlrun.report.html import write_page

CHROMIUM = os.environ.get("XLRUN_TEST_CHROMIUM", "/usr/bin/chromium")
"""The browser (Debian's chromium package; another path through ``XLRUN_TEST_CHROMIUM``)."""

PAGE_DB = os.environ.get("XLRUN_TEST_HTML_DB")
"""Run the same checks on the page of another database (e.g. the quickstart's:
``XLRUN_TEST_HTML_DB=sqlite:///xlrun.db XLRUN_TEST_HTML_EXPERIMENT=quickstart``, baseline
``XLRUN_TEST_HTML_BASELINE``, default ``hybrid/size``); by default a small study is built."""


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The small study's page loaded in headless Chromium, with what it logged and asked."""
    missing = None
    if not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    else:
        try:
            from playwright import sync_api
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[test]')"
    if missing:
        if os.environ.get("XLRUN_TEST_REQUIRE_CHROMIUM"):  # CI installed the browser
            pytest.fail(missing)
        pytest.skip(missing)
    folder = tmp_path_factory.mktemp("browser")
    url = PAGE_DB or f"sqlite:///{folder / 'study.db'}"
    engine = new_engine(url)
    if PAGE_DB is None:
        build(engine, Study())
    experiment = os.environ.get("XLRUN_TEST_HTML_EXPERIMENT", "study")
    baseline = os.environ.get("XLRUN_TEST_HTML_BASELINE", "hybrid/size")
    path = write_page(engine, ReportRequest(filter=ReportFilter(experiment=experiment),
                                            compare="arm", baseline=baseline),
                      folder / "study.html")
    engine.dispose()
    text = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="xlrun-data">(.*?)</script>', text, re.S)
    assert m is not None
    console: list[tuple[str, str]] = []
    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})

        def route(r: Any) -> None:  # record every request; only the page's own file loads
            if r.request.url == path.as_uri():
                r.continue_()
            else:
                requests.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda msg: console.append((msg.type, msg.text)))
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("request", lambda req: req.url == path.as_uri() or requests.append(req.url))
        page.goto(path.as_uri(), wait_until="load")
        page.wait_for_function(
            "document.querySelectorAll('figure.chart .js-plotly-plot').length === "
            "document.querySelectorAll('figure.chart').length", timeout=60_000)
        yield {"page": page, "console": console, "errors": errors, "requests": requests,
               "data": json.loads(m.group(1)), "path": path}
        browser.close()


def test_page_loads_without_console_errors_or_requests(browser_page: dict[str, Any]) -> None:
    page = browser_page["page"]
    page.wait_for_timeout(300)
    assert browser_page["errors"] == []
    assert [m for m in browser_page["console"] if m[0] in ("error", "warning")] == []
    assert browser_page["requests"] == []
    assert page.title().startswith("xlrun report")


def _non_blank(png: bytes) -> tuple[float, int]:
    """The share of pixels that are not (near) white and the number of distinct colours."""
    from PIL import Image

    im = Image.open(io.BytesIO(png)).convert("RGB")
    im.thumbnail((400, 400))
    pixels = list(im.getdata())
    inked = sum(1 for r, g, b in pixels if min(r, g, b) < 235)
    return inked / len(pixels), len(set(pixels))


def test_every_chart_renders(browser_page: dict[str, Any]) -> None:
    page = browser_page["page"]
    charts = page.query_selector_all("figure.chart")
    names = [c.get_attribute("data-chart") for c in charts]
    assert {"timings", "forest", "pairs-0", "pairs-1", "pairs-2", "regress-points-0",
            "coefficients-0", "bias", "exposure", "curves"} <= set(names)
    for chart, name in zip(charts, names, strict=True):
        drawn = chart.evaluate(
            """el => {
                const gd = el.querySelector('.js-plotly-plot');
                const svg = gd && gd.querySelector('svg.main-svg');
                const box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
                return {traces: gd ? gd._fullData.length : 0,
                        marks: el.querySelectorAll('g.trace, g.hm').length,
                        width: box.width, height: box.height};
            }""")
        assert drawn["traces"] > 0 and drawn["marks"] > 0, (name, drawn)
        assert drawn["width"] > 200 and drawn["height"] > 150, (name, drawn)
        chart.scroll_into_view_if_needed()
        inked, colours = _non_blank(chart.screenshot())
        assert inked > 0.03 and colours > 20, (name, inked, colours)


def test_chart_numbers_are_the_json_numbers(browser_page: dict[str, Any]) -> None:
    page, data = browser_page["page"], browser_page["data"]
    base = data["request"]["baseline"]
    rows = [r for r in data["reports"]["settings"]["rows"] if r["arm"] != base]
    drawn = page.evaluate(
        """() => document.getElementById('chart-forest')._fullData
              .map(t => ({name: t.name, x: Array.from(t.x), y: Array.from(t.y)}))""")
    got = {(t["name"], y.split(" · ")[0]): x for t in drawn for x, y in zip(t["x"], t["y"],
                                                                              strict=True)}
    want = {(r["arm"], r["setting"]): r["delta"] for r in rows}
    assert set(got) == set(want)
    for key, delta in want.items():
        assert got[key] == pytest.approx(delta, abs=1e-6), key


def test_drilldown_controls_change_the_table(browser_page: dict[str, Any]) -> None:
    page, drill = browser_page["page"], browser_page["data"]["drilldown"]
    col = {c: i for i, c in enumerate(drill["columns"])}

    def table() -> list[list[str]]:
        return page.eval_on_selector_all(
            "#drill-body tr", "trs => trs.map(tr => Array.from(tr.cells, c => c.textContent))")

    page.select_option("#drill-setting", "cross")
    arms = page.eval_on_selector_all("#drill-arm option", "os => os.map(o => o.value)")
    assert arms == list(dict.fromkeys(r[col["arm"]] for r in drill["rows"]))
    assert len(arms) >= 2
    page.select_option("#drill-arm", arms[0])
    first = table()
    assert 0 < len(first) <= 25
    deltas = [abs(float(r[4])) for r in first]
    assert deltas == sorted(deltas, reverse=True)
    page.select_option("#drill-arm", arms[1])
    assert table() != first
    pairs = page.eval_on_selector_all("#drill-pair option", "os => os.map(o => o.value)")
    expected = {f"{r[col['query_lang']]}→{r[col['doc_lang']]}" for r in drill["rows"]
                if r[col["setting"]] == "cross" and r[col["arm"]] == arms[1]}
    assert pairs[0] == "all pairs" and sorted(pairs[1:]) == sorted(expected)
    assert len(pairs) >= 1 + 12
    page.select_option("#drill-pair", pairs[3])
    one_pair = table()
    assert 0 < len(one_pair) <= 10 and {r[1] for r in one_pair} == {pairs[3]}
    page.select_option("#drill-setting", "multi")
    assert table() != one_pair
    assert "multi" in page.inner_text("#drill-caption")
