"""``xlrun report --html FILE``: one self-contained HTML page of a study.

The page holds every script, style and datum inline (plotly.js once, from the plotly Python
package; the data of its tables as JSON; the drill-down's few lines of script) and declares
a Content-Security-Policy that allows no request to anywhere, so it opens offline and sends
nothing when viewed. Its numbers are those of ``xlrun report --format json``: every table
and chart is drawn from the reports :mod:`xlrun.report.html.data` builds with the report
code, and the JSON of each report is embedded (``<script id="xlrun-data">``).
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

import plotly.io as pio
import polars as pl
from plotly.offline import get_plotlyjs
from sqlalchemy import Connection, Engine

from xlrun.errors import UsageError
from xlrun.report import plots
from xlrun.report.build import Report, ReportRequest
from xlrun.report.frames import describe_where
from xlrun.report.html import figures
from xlrun.report.html.data import (
    DRILL_PER_PAIR,
    DRILL_PER_SETTING,
    PageData,
    View,
    build_page_data,
)
from xlrun.report.render import format_value, to_json

CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; "
       "style-src 'unsafe-inline'; img-src data: blob:; font-src data:; connect-src 'none'")
"""The page's Content-Security-Policy: inline scripts and styles only, no request anywhere."""

PLOTLY_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True,
                                 "modeBarButtonsToRemove": ["sendDataToCloud"]}


def write_page(engine: Engine | Connection, request: ReportRequest, path: str | Path,
               *, title: str | None = None) -> Path:
    """Write the HTML page of ``request`` (its filters, ``--compare``, ``--baseline``,
    ``--metric`` and ``--test``) to ``path`` and return the path.

    Nothing is written when the page cannot be built.

    Raises:
        UsageError: what ``xlrun report --by setting --compare …`` raises for the request
            (unknown experiment, no finished runs, a bad ``--where`` or ``--baseline``), or
            the folder of ``path`` does not exist.
    """
    out = Path(path)
    if not out.parent.is_dir():
        raise UsageError(f"cannot write the page to {out}: folder {out.parent} does not exist")
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            return write_page(conn, request, out, title=title)
    data = build_page_data(engine, request)
    text = render_page(data, title=title)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out


# --------------------------------------------------------------------------- pieces
def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _json_script(obj: object) -> str:
    """JSON safe inside ``<script>``: ``</`` and the HTML-significant characters escaped."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def report_json(report: Report) -> dict[str, Any]:
    """The report as ``xlrun report --format json`` prints it (``meta`` and ``rows``)."""
    return json.loads(to_json(report.frame, report.meta))


def table(frame: pl.DataFrame, *, limit: int | None = None, cls: str = "") -> str:
    """``frame`` as an HTML table, every cell as the text table prints it (numbers right
    aligned; at most ``limit`` rows, saying how many are left out)."""
    numeric = [frame.schema[c].is_numeric() for c in frame.columns]
    head = "".join(f'<th class="num">{_e(c)}</th>' if n else f"<th>{_e(c)}</th>"
                   for c, n in zip(frame.columns, numeric, strict=True))
    rows = []
    shown = frame if limit is None else frame.head(limit)
    for row in shown.iter_rows():
        cells = []
        for c, v, n in zip(frame.columns, row, numeric, strict=True):
            text = _e(format_value(c, v))
            klass = "num" + (" mark" if c == "mark" else "") if n else (
                "mark" if c == "mark" else "")
            cells.append(f'<td class="{klass}">{text}</td>' if klass else f"<td>{text}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if limit is not None and frame.height > limit:
        more = (f'<p class="missing">{frame.height - limit} more row(s): see '
                "<code>--format csv</code></p>")
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>{more}")


def notes(items: Iterable[str]) -> str:
    """The notes as a list (nothing when there are none)."""
    items = list(items)
    if not items:
        return ""
    return '<ul class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in items) + "</ul>"


def chart(fig: Any, name: str, caption: str | None = None) -> str:
    """A plotly figure as a ``<figure>`` with an optional caption (plotly.js itself is in
    the page's head, once)."""
    div = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"chart-{name}",
                      config=PLOTLY_CONFIG, include_mathjax=False)
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure class="chart" data-chart="{_e(name)}">{div}{cap}</figure>'


def _missing(view: View) -> str:
    return f'<p class="missing">Not shown: {_e(view.missing)}</p>'


def _details(summary: str, body: str, open_: bool = False) -> str:
    return (f"<details{' open' if open_ else ''}><summary>{_e(summary)}</summary>{body}"
            "</details>")


# --------------------------------------------------------------------------- sections
def _overview(data: PageData) -> str:
    ov, req = data.overview, data.request
    counts = ov.counts()
    done = int((ov.runs["status"] == "done").sum())
    failed = int((ov.runs["status"] == "failed").sum())
    facts = [
        ("experiments", ", ".join(ov.experiments["experiment"].to_list()) or "-"),
        ("arms", f"{len(data.arms)} (--compare {data.compare}; baseline {data.baseline})"),
        ("runs", f"{ov.runs.height}: {done} done, {failed} failed, "
                 f"{ov.runs.height - done - failed} other (only finished runs are analysed)"),
        ("seeds", ", ".join(str(s) for s in sorted(set(ov.runs["seed"].drop_nulls().to_list())))),
        ("models", ", ".join(sorted(set(ov.runs["model"].to_list())))),
        ("datasets", "; ".join(f"{d}/{s} ({st})" for d, s, st, _ in ov.datasets.iter_rows())
         or "-"),
        ("metric", req.metric),
        ("test", f"--test {req.tests.test}, {round(100 * req.tests.level)}% intervals"),
        ("filters", _filters(req) or "none"),
        ("database", ov.database),
        ("xlrun", f"{ov.version}; page made {ov.generated_at}"),
    ]
    kv = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in facts)
    parts = [f'<table class="kv"><tbody>{kv}</tbody></table>',
             "<h3>Arms</h3>", table(counts)]
    if ov.timings.height:
        parts += ["<h3>Stage timings</h3>",
                  chart(figures.timings_figure(ov.timings), "timings"),
                  _details("timings table (mean wall seconds per arm and stage)",
                           table(ov.timings))]
    parts += ["<h3>Provenance</h3>",
              '<p class="lead">Spec hashes are the SHA-256 of each experiment\'s stored spec '
              "(first 16 hex digits); run keys are the hashes of the runs' resolved configs "
              "(<code>xlrun show RUN_ID</code> prints a run's config).</p>",
              table(ov.experiments),
              _details(f"runs ({ov.runs.height}): id, arm, seed, status, run key, model, "
                       "device, seconds", table(ov.runs))]
    return _section("overview", "Overview", "".join(parts))


def _filters(req: ReportRequest) -> str:
    f = req.filter
    parts = [f"--{k} {v}" for k, v in (("experiment", f.experiment), ("dataset", f.dataset),
                                       ("setting", f.setting), ("split", f.split)) if v]
    if f.where:
        parts.append(f"--where {describe_where(f.where)}")
    return " ".join(parts)


def _wide(frame: pl.DataFrame, baseline: str, level: float) -> str:
    """Arms (rows) × settings (columns): mean, and for the other arms the delta with its
    interval, p, Holm-adjusted p and mark."""
    cell_cols = [c for c in ("dataset", "split", "setting") if c in frame.columns]
    cells = list(dict.fromkeys(frame.select(cell_cols).iter_rows()))
    arms = list(dict.fromkeys(frame["arm"].to_list()))
    lookup = {(*[r[c] for c in cell_cols], r["arm"]): r for r in frame.iter_rows(named=True)}
    pct = round(100 * level)
    head = "<th>arm</th>" + "".join(f"<th>{_e(' · '.join(map(str, c)))}</th>" for c in cells)
    body = []
    for arm in arms:
        tds = [f"<td><b>{_e(arm)}</b>{' (baseline)' if arm == baseline else ''}</td>"]
        for c in cells:
            r = lookup.get((*c, arm))
            if r is None:
                tds.append('<td class="missing">no runs</td>')
                continue
            inner = (f'<div class="mean">{_e(format_value("mean", r["mean"]))} '
                     f'<span class="p">(SD {_e(format_value("sd_seeds", r.get("sd_seeds")))},'
                     f' {r["n_runs"]} runs)</span></div>')
            if arm != baseline and r.get("delta") is not None:
                d = r["delta"]
                cls = "up" if d > 0 else "down" if d < 0 else ""
                interval = ("(no interval)" if r["ci_low"] is None or r["ci_high"] is None
                            else f"[{format_value('ci_low', r['ci_low'])}, "
                                 f"{format_value('ci_high', r['ci_high'])}]")
                inner += (f'<div class="delta {cls}">Δ {d:+.4f} {_e(interval)} '
                          f'<span class="mark">{_e(figures.stars(r.get("mark")))}</span></div>'
                          f'<div class="p">p {_e(format_value("p", r["p"]))} · Holm '
                          f'{_e(format_value("p_holm", r["p_holm"]))} · {_e(r["design"])}</div>')
            tds.append(f"<td>{inner}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    caption = (f"mean over runs and questions (seed SD, runs); Δ to {baseline} with its {pct}% "
               "interval, p and Holm-adjusted p")
    return (f'<div class="scroll"><table class="wide"><caption class="p">{_e(caption)}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody>"
            "</table></div>")


def _settings(data: PageData, legend: str) -> str:
    rep = data.settings.report
    assert rep is not None
    req = data.request
    parts = [f'<p class="lead">{_e(rep.title)}</p>']
    if rep.kind == "compare":
        parts.append(_wide(rep.frame, data.baseline, req.tests.level))
        if len(data.arms) > 1:
            parts.append(chart(figures.forest_figure(
                rep.frame, req.metric, data.baseline, req.tests.level,
                figures.arm_colours(data.arms)), "forest", legend))
    parts += [notes(rep.notes),
              _details("the long table (as xlrun report --by setting --compare prints it)",
                       table(rep.frame), open_=rep.kind != "compare")]
    if data.by is not None:
        parts.append(f"<h3>By {_e(data.request.by)}</h3>")
        parts.append(_report_block(data.by))
    return _section("settings", "Arms × settings", "".join(parts))


def _report_block(view: View, limit: int | None = None) -> str:
    if view.report is None:
        return _missing(view)
    rep = view.report
    return (f'<p class="lead">{_e(rep.title)}</p>' + notes(rep.notes)
            + _details(f"table ({rep.frame.height} rows)", table(rep.frame, limit=limit)))


def _pairs(data: PageData, legend: str) -> str:
    parts = ['<p class="lead">Per arm, the difference to the baseline on every (query '
             "language, document language) pair of a setting; stars mark Holm-adjusted "
             "significance (hover for the numbers).</p>"]
    req = data.request
    for i, view in enumerate(data.pairs):
        head = " · ".join(x for x in (view.scope.label, view.setting or "") if x)
        parts.append(f"<h3>{_e(head)}</h3>")
        if view.report is None:
            parts.append(_missing(view))
            continue
        rep = view.report
        arms = rep.meta.get("arms") or (list(dict.fromkeys(rep.frame["arm"].to_list()))
                                        if "arm" in rep.frame.columns else [])
        parts.append(f'<p class="lead">{_e(rep.title)}</p>')
        parts.append(chart(figures.pair_heatmaps(rep.frame, rep.kind, arms, req.metric,
                                                 view.setting, req.tests.level),
                           f"pairs-{i}", legend if rep.kind == "compare" else None))
        parts.append(notes(rep.notes))
        parts.append(_details(f"table ({rep.frame.height} rows)", table(rep.frame)))
    return _section("pairs", "Language pairs", "".join(parts))


def _regress(data: PageData) -> str:
    parts = []
    level = data.request.tests.level
    colours = figures.arm_colours(data.arms)
    for i, view in enumerate(data.regress):
        if view.scope.label:
            parts.append(f"<h3>{_e(view.scope.label)}</h3>")
        if view.report is None:
            parts.append(_missing(view))
            continue
        rep = view.report
        parts.append(f'<p class="lead">{_e(rep.title)}</p>')
        points = data.regress_points.get(view.scope.label)
        if points is not None and points.height:
            lines = data.regress_lines.get(view.scope.label, [])
            parts.append(chart(figures.regression_figure(points, lines, data.request.metric,
                                                         data.baseline, colours, level),
                               f"regress-points-{i}"))
            slopes = "; ".join(f"{ln.arm}: slope {ln.slope:+.4f} per unit of distance over "
                               f"{ln.n} pairs" for ln in lines)
            parts.append(f'<p class="lead">Points: the pair deltas the regression is fitted '
                         "on (per language pair, the arm's mean over its runs minus the "
                         f"baseline's, {_e(view.setting or 'all settings')}). Line: their "
                         f"least-squares fit on distance ({_e(slopes)}), which equals the "
                         "table's arm[…] + arm[…]:distance × distance. Band: its interval with "
                         "language pairs as the units (the table's arm[…] interval also counts "
                         "seed and question variance).</p>")
        parts.append(chart(figures.coefficient_figure(rep.frame, level), f"coefficients-{i}"))
        parts.append(table(rep.frame))
        parts.append(notes(rep.notes))
    return _section("regression", "Distance regression", "".join(parts))


def _bias(data: PageData) -> str:
    view = data.bias
    if view.report is None:
        return _section("bias", "Language bias", _missing(view))
    rep = view.report
    body = (f'<p class="lead">{_e(rep.title)}</p>'
            + chart(figures.bias_figure(rep.frame, figures.arm_colours(data.arms),
                                        data.request.tests.level), "bias")
            + notes(rep.notes) + _details(f"table ({rep.frame.height} rows)", table(rep.frame)))
    return _section("bias", "Language bias", body)


def _exposure(data: PageData) -> str:
    view = data.exposure
    if view.report is None:
        return _section("exposure", "Training exposure", _missing(view))
    rep = view.report
    arms = list(dict.fromkeys(rep.frame["arm"].to_list()))
    colours = figures.arm_colours([*data.arms, *[a for a in arms if a not in data.arms]])
    body = (f'<p class="lead">{_e(rep.title)} (arms are whole arms here, whatever '
            "--compare says)</p>"
            + chart(figures.exposure_figure(rep.frame, colours), "exposure")
            + notes(rep.notes) + _details(f"table ({rep.frame.height} rows)", table(rep.frame)))
    return _section("exposure", "Training exposure", body)


def _curves(data: PageData) -> str:
    view = data.curves
    if view.report is None:
        return _section("curves", "Training curves", _missing(view))
    rep = view.report
    body = (f'<p class="lead">{_e(rep.title)}</p>'
            + chart(figures.curves_figure(rep.frame, figures.arm_colours(data.arms)), "curves")
            + notes(rep.notes) + _details(f"table ({rep.frame.height} rows)", table(rep.frame)))
    return _section("curves", "Training curves", body)


def _drilldown(data: PageData) -> str:
    if data.drilldown.height == 0:
        return _section("drilldown", "Per-query drill-down",
                        '<p class="missing">Not shown: it needs an arm beside the baseline '
                        "with questions in common.</p>")
    body = (f'<p class="lead">The questions whose {_e(data.request.metric)} changed most between '
            f"an arm and the baseline {_e(data.baseline)} (a question's value in an arm is its "
            f"mean over the arm's runs): the {DRILL_PER_PAIR} largest changes per language "
            f"pair, or the {DRILL_PER_SETTING} largest over all pairs of a setting.</p>"
            '<div class="controls" id="drilldown-app">'
            '<label>setting <select id="drill-setting"></select></label>'
            '<label>arm <select id="drill-arm"></select></label>'
            '<label>language pair <select id="drill-pair"></select></label></div>'
            '<p class="lead" id="drill-caption"></p>'
            '<div class="scroll"><table id="drill-table"><thead><tr><th>query_id</th>'
            '<th>pair</th><th class="num">baseline</th><th class="num">arm</th>'
            '<th class="num">delta</th><th class="num">runs (arm / baseline)</th></tr>'
            '</thead><tbody id="drill-body"></tbody></table></div>')
    return _section("drilldown", "Per-query drill-down", body)


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{_e(title)}</h2>{body}</section>'


SECTIONS: tuple[tuple[str, str], ...] = (
    ("overview", "Overview"), ("settings", "Arms × settings"), ("pairs", "Language pairs"),
    ("regression", "Distance regression"), ("bias", "Language bias"),
    ("exposure", "Training exposure"), ("curves", "Training curves"),
    ("drilldown", "Drill-down"))


def page_json(data: PageData) -> dict[str, Any]:
    """The data embedded in the page: every report as ``--format json`` prints it (keys
    ``settings``, ``by_<by>``, ``pairs/[<dataset>/<split>/]<setting>``,
    ``regress[/<dataset>/<split>]``, ``bias``, ``exposure``, ``curves``; a view that could
    not be made is ``{"missing": message}``) and the drill-down rows."""
    reports: dict[str, Any] = {}

    def put(key: str, view: View | None) -> None:
        if view is not None:
            reports[key] = (report_json(view.report) if view.report is not None
                            else {"missing": view.missing})

    put("settings", data.settings)
    if data.by is not None:
        put(data.by.key, data.by)
    for v in data.pairs:
        put("/".join(x for x in ("pairs", v.scope.label, v.setting or "all") if x), v)
    for v in data.regress:
        put("/".join(x for x in ("regress", v.scope.label) if x), v)
    put("bias", data.bias)
    put("exposure", data.exposure)
    put("curves", data.curves)
    drill = data.drilldown
    drill_json = json.loads(to_json(drill))["rows"]
    return {
        "xlrun": data.overview.version,
        "request": {"compare": data.compare, "baseline": data.baseline, "metric":
                    data.request.metric, "test": data.request.tests.test, "filters":
                    _filters(data.request)},
        "reports": reports,
        "drilldown": {"columns": list(drill.columns),
                      "rows": [[r[c] for c in drill.columns] for r in drill_json],
                      "baseline": data.baseline, "per_pair": DRILL_PER_PAIR,
                      "per_setting": DRILL_PER_SETTING,
                      "datasets": drill.select("dataset", "split").unique().height},
    }


def _asset(name: str) -> str:
    return resources.files("xlrun.report.html").joinpath(name).read_text(encoding="utf-8")


def render_page(data: PageData, *, title: str | None = None) -> str:
    """The whole page as text (see :func:`write_page`)."""
    req = data.request
    legend = plots.significance_legend(req.tests.test, req.tests.level)
    experiments = ", ".join(data.overview.experiments["experiment"].to_list())
    heading = title or f"xlrun report: {experiments or 'all experiments'}"
    sub = (f"{req.metric}, arms by --compare {data.compare}, baseline {data.baseline}"
           + (f", {_filters(req)}" if _filters(req) else ""))
    nav = "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in SECTIONS)
    body = "".join([_overview(data), _settings(data, legend), _pairs(data, legend),
                    _regress(data), _bias(data), _exposure(data), _curves(data),
                    _drilldown(data)])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="xlrun {_e(data.overview.version)}">'
            f"<title>{_e(heading)}</title><style>{_asset('page.css')}</style>"
            f"<script>{get_plotlyjs()}</script></head><body>"
            f"<header><h1>{_e(heading)}</h1><p>{_e(sub)}</p><p>{_e(legend)}</p></header>"
            f"<nav>{nav}</nav><main>{body}</main>"
            f'<script type="application/json" id="xlrun-data">{_json_script(page_json(data))}'
            f"</script><script>{_asset('drilldown.js')}</script></body></html>\n")
