"""The page's charts: plotly figures built from the report frames (no chart code of our own;
plotly.js draws them in the browser)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl
from plotly import colors as pcolors
from plotly import graph_objects as go
from plotly.subplots import make_subplots

from xlrun.report.html.data import Line

TEMPLATE = "plotly_white"
PALETTE: tuple[str, ...] = tuple(pcolors.qualitative.Plotly)
FONT = {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12}


def arm_colours(arms: Sequence[str]) -> dict[str, str]:
    """One colour per arm, the same in every chart of the page."""
    return {arm: PALETTE[i % len(PALETTE)] for i, arm in enumerate(arms)}


def _layout(fig: go.Figure, title: str | None, height: int, **kw: Any) -> go.Figure:
    fig.update_layout(template=TEMPLATE, height=height, font=FONT,
                      margin={"l": 60, "r": 30, "t": 60 if title else 30, "b": 50},
                      title={"text": title, "x": 0, "font": {"size": 14}} if title else None,
                      hoverlabel={"namelength": -1}, **kw)
    return fig


def _num(v: Any) -> float | None:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return float(v)


def _fmt(v: Any, signed: bool = False, digits: int = 4) -> str:
    f = _num(v)
    if f is None:
        return "NA"
    return f"{f:+.{digits}f}" if signed else f"{f:.{digits}f}"


def _p(v: Any) -> str:
    f = _num(v)
    if f is None:
        return "NA"
    return f"{f:.1e}" if f < 1e-4 else f"{f:.4f}"


def stars(mark: Any) -> str:
    """The significance stars of a mark (empty for none or the baseline's label)."""
    return mark if isinstance(mark, str) and mark and set(mark) == {"*"} else ""


def timings_figure(timings: pl.DataFrame) -> go.Figure:
    """Mean seconds per stage and arm, stacked horizontal bars."""
    fig = go.Figure()
    arms = list(dict.fromkeys(timings["arm"].to_list()))
    for stage in dict.fromkeys(timings["stage"].to_list()):
        part = timings.filter(pl.col("stage") == stage)
        secs = dict(part.select("arm", "seconds").iter_rows())
        runs = dict(part.select("arm", "runs").iter_rows())
        fig.add_bar(y=arms, x=[secs.get(a, 0.0) for a in arms], name=stage, orientation="h",
                    customdata=[runs.get(a, 0) for a in arms],
                    hovertemplate=f"{stage}: %{{x:.1f}} s (mean of %{{customdata}} runs)"
                                  "<extra>%{y}</extra>")
    return _layout(fig, "where the time went: mean wall seconds per stage",
                   120 + 40 * len(arms), barmode="stack", xaxis_title="seconds",
                   yaxis={"autorange": "reversed"}, legend={"orientation": "h", "y": -0.25})


def forest_figure(frame: pl.DataFrame, metric: str, baseline: str, level: float,
                  colours: dict[str, str]) -> go.Figure:
    """The deltas to the baseline with their intervals, one row per arm and setting (and
    dataset); hollow points have no interval."""
    rows = frame.filter(pl.col("arm") != baseline)
    cell_cols = [c for c in ("dataset", "split", "setting") if c in rows.columns]
    fig = go.Figure()
    pct = round(100 * level)
    labels = []
    for arm in dict.fromkeys(rows["arm"].to_list()):
        part = rows.filter(pl.col("arm") == arm)
        ys = [" · ".join(str(r[c]) for c in cell_cols) + f" · {arm}"
              for r in part.iter_rows(named=True)]
        labels += ys
        delta = [_num(v) for v in part["delta"].to_list()]
        lo = [_num(v) for v in part["ci_low"].to_list()]
        hi = [_num(v) for v in part["ci_high"].to_list()]
        has = [a is not None and b is not None for a, b in zip(lo, hi, strict=True)]
        text = [f"{arm} vs {baseline}, {y.rsplit(' · ', 1)[0]}<br>Δ {_fmt(d, True)} "
                f"[{_fmt(a, True)}, {_fmt(b, True)}] ({pct}%)<br>p {_p(p)}, Holm {_p(ph)} "
                f"{stars(m)}<br>{design}"
                for y, d, a, b, p, ph, m, design in zip(
                    ys, delta, lo, hi, part["p"].to_list(), part["p_holm"].to_list(),
                    part["mark"].to_list(), part["design"].to_list(), strict=True)]
        fig.add_scatter(
            x=delta, y=ys, mode="markers", name=arm, text=text, hoverinfo="text",
            marker={"color": colours.get(arm), "size": 10,
                    "symbol": ["circle" if h else "circle-open" for h in has]},
            error_x={"type": "data", "symmetric": False, "thickness": 1.5,
                     "array": [(b - d) if h else None for d, b, h in zip(delta, hi, has,
                                                                          strict=True)],
                     "arrayminus": [(d - a) if h else None for d, a, h in zip(delta, lo, has,
                                                                              strict=True)]})
    fig.add_vline(x=0, line={"color": "grey", "dash": "dash", "width": 1})
    return _layout(fig, f"Δ {metric} vs {baseline} with {pct}% intervals "
                        "(hollow: no interval)", 140 + 28 * max(1, len(labels)),
                   xaxis_title=f"Δ {metric} (arm − {baseline})",
                   yaxis={"autorange": "reversed", "type": "category"})


PANELS_PER_ROW = 3
"""Heatmap panels side by side before the next row starts."""


def _hover(r: dict[str, Any], arm: str | None, setting: str | None, comparing: bool,
           metric: str, pct: int) -> str:
    pair = f"{r['query_lang']}→{r['doc_lang']} ({setting or 'all settings'})"
    if not comparing:
        return (f"{pair}<br>{arm or ''} mean {metric} {_fmt(r['mean'])} ({r['n_runs']} runs, "
                f"{r['n_queries']} questions)")
    return (f"{pair}<br>{arm}: {_fmt(r['mean'])} ({r['n_runs']} runs, {r['n_queries']} "
            f"questions)<br>Δ {_fmt(r['delta'], True)} [{_fmt(r['ci_low'], True)}, "
            f"{_fmt(r['ci_high'], True)}] ({pct}%)<br>p {_p(r['p'])}, Holm {_p(r['p_holm'])} "
            f"{stars(r.get('mark'))}<br>{r.get('design') or ''}")


CELL_NUMBERS_UP_TO = 10
"""Heatmap columns up to which every cell prints its number (beyond: stars only; the
numbers are on hover)."""


def _cell(r: dict[str, Any], comparing: bool, numbers: bool = True) -> str:
    if comparing:
        return (f"{_fmt(r['delta'], True, 3)}" if numbers else "") + stars(r.get("mark"))
    return _fmt(r["mean"], digits=3) if numbers else ""


def pair_heatmaps(frame: pl.DataFrame, kind: str, arms: Sequence[str], metric: str,
                  setting: str | None, level: float) -> go.Figure:
    """Heatmaps of the delta to the baseline (query language × document language, one panel
    per arm, :data:`PANELS_PER_ROW` to a row) with significance stars in the cells and the
    numbers on hover; without a comparison, of the mean. A setting with one document
    language per query language (``mono``: the same; ``multi``: the pool) is one heatmap of
    query language × arm."""
    comparing = kind == "compare" and len(arms) > 1
    has_arm = "arm" in frame.columns
    panels: list[str | None] = list(arms[1:]) if comparing else (list(arms) if has_arm
                                                                  else [None])
    value = "delta" if comparing else "mean"
    rows = sorted(frame["query_lang"].unique().to_list())
    per_query = frame.group_by("query_lang").agg(pl.col("doc_lang").n_unique().alias("n"))
    single = frame.height > 0 and int(per_query["n"].max()) == 1  # type: ignore[arg-type]
    shown = frame.filter(pl.col("arm").is_in(panels)) if has_arm and panels[0] is not None \
        else frame
    vals = [abs(v) for v in shown[value].to_list() if _num(v) is not None]
    lim = max(vals, default=1.0) or 1.0
    pct = round(100 * level)
    ri = {q: i for i, q in enumerate(rows)}
    if comparing:
        coloraxis = {"colorscale": "RdBu", "cmid": 0, "cmin": -lim, "cmax": lim,
                     "colorbar": {"title": {"text": f"Δ {metric}"}}}
        title = f"Δ {metric} to baseline {arms[0]}, {setting or 'all settings'}"
    else:
        coloraxis = {"colorscale": "Viridis", "colorbar": {"title": {"text": metric}}}
        title = f"mean {metric}, {setting or 'all settings'}"
    if single:  # one column per arm
        cols = [str(p) for p in panels]
        z = [[None] * len(cols) for _ in rows]
        text = [[""] * len(cols) for _ in rows]
        hover = [[""] * len(cols) for _ in rows]
        for j, arm in enumerate(panels):
            part = frame.filter(pl.col("arm") == arm) if arm is not None else frame
            for r in part.iter_rows(named=True):
                i = ri[r["query_lang"]]
                z[i][j] = r[value]
                text[i][j] = _cell(r, comparing)
                hover[i][j] = _hover(r, arm, setting, comparing, metric, pct)
        doc = str(frame["doc_lang"][0]) if frame.height else ""
        fig = go.Figure(go.Heatmap(z=z, x=cols, y=rows, text=text, texttemplate="%{text}",
                                   hovertext=hover, hoverinfo="text", coloraxis="coloraxis",
                                   xgap=1, ygap=1))
        fig.update_xaxes(type="category", title_text="arm", tickangle=0 if len(cols) < 4
                         else -20)
        fig.update_yaxes(type="category", autorange="reversed", title_text="query language")
        title += (" (documents: the multilingual pool)" if doc == "all"
                  else " (document language = query language)")
        return _layout(fig, title, max(260, 170 + 26 * len(rows)), coloraxis=coloraxis)
    cols = sorted(frame["doc_lang"].unique().to_list())
    ci = {d: j for j, d in enumerate(cols)}
    n_cols = min(PANELS_PER_ROW, len(panels))
    n_rows = -(-len(panels) // n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, shared_yaxes=True,
                        subplot_titles=[str(a) if a is not None else metric for a in panels],
                        horizontal_spacing=0.04, vertical_spacing=0.3 / n_rows)
    for k, arm in enumerate(panels):
        part = frame.filter(pl.col("arm") == arm) if arm is not None and has_arm else frame
        z: list[list[Any]] = [[None] * len(cols) for _ in rows]
        text = [[""] * len(cols) for _ in rows]
        hover = [[""] * len(cols) for _ in rows]
        for r in part.iter_rows(named=True):
            i, j = ri[r["query_lang"]], ci[r["doc_lang"]]
            z[i][j] = r[value]
            text[i][j] = _cell(r, comparing, len(cols) <= CELL_NUMBERS_UP_TO)
            hover[i][j] = _hover(r, arm, setting, comparing, metric, pct)
        row, col = k // n_cols + 1, k % n_cols + 1
        fig.add_trace(go.Heatmap(
            z=z, x=cols, y=rows, text=text, texttemplate="%{text}", hovertext=hover,
            hoverinfo="text", coloraxis="coloraxis", xgap=1, ygap=1,
            textfont={"size": 9 if len(cols) > 7 else 11}), row=row, col=col)
        fig.update_xaxes(type="category", row=row, col=col,
                         title_text="document language" if row == n_rows else None)
        fig.update_yaxes(type="category", autorange="reversed", row=row, col=col,
                         title_text="query language" if col == 1 else None)
    fig.update_annotations(font_size=11)
    height = n_rows * (110 + 24 * len(rows)) + 90
    return _layout(fig, title, max(height, 300), coloraxis=coloraxis)


def regression_figure(points: pl.DataFrame, lines: Sequence[Line], metric: str,
                      baseline: str, colours: dict[str, str], level: float) -> go.Figure:
    """Pair deltas against distance, per arm, with the least-squares line and its band."""
    fig = go.Figure()
    pct = round(100 * level)
    for line in lines:
        c = colours.get(line.arm, "#333")
        if line.x:
            fig.add_scatter(x=[*line.x, *line.x[::-1]], y=[*line.high, *line.low[::-1]],
                            fill="toself", fillcolor=_alpha(c, 0.15), line={"width": 0},
                            hoverinfo="skip", showlegend=False, name=f"{line.arm} band")
            fig.add_scatter(x=line.x, y=line.fit, mode="lines", line={"color": c},
                            name=f"{line.arm}: {line.intercept:+.4f} {line.slope:+.4f}·d",
                            hovertemplate="distance %{x:.3f}: fitted Δ %{y:+.4f}<extra></extra>")
        part = points.filter(pl.col("arm") == line.arm)
        fig.add_scatter(
            x=part["distance"].to_list(), y=part["delta"].to_list(), mode="markers",
            name=f"{line.arm} (pairs)", marker={"color": c, "size": 7, "opacity": 0.75},
            text=[f"{q}→{d}: Δ {_fmt(v, True)} {stars(m)}<br>distance {_fmt(x, digits=3)}"
                  for q, d, v, m, x in part.select("query_lang", "doc_lang", "delta", "mark",
                                                   "distance").iter_rows()],
            hoverinfo="text")
    fig.add_hline(y=0, line={"color": "grey", "dash": "dash", "width": 1})
    return _layout(fig, f"pair deltas (Δ {metric} vs {baseline}) against language distance; "
                        f"lines: least squares, bands: {pct}% intervals",
                   420, xaxis_title="language distance", yaxis_title=f"Δ {metric}")


def _alpha(colour: str, a: float) -> str:
    r, g, b = pcolors.hex_to_rgb(colour) if colour.startswith("#") else (80, 80, 80)
    return f"rgba({r},{g},{b},{a})"


def coefficient_figure(table: pl.DataFrame, level: float) -> go.Figure:
    """The regression's coefficients (without the intercept) with their intervals; a term
    without an interval is a hollow point labelled "no interval"."""
    rows = table.filter(pl.col("term") != "intercept", pl.col("coef").is_not_null())
    has = (rows["ci_low"].is_not_null() & rows["ci_high"].is_not_null()).to_list()
    terms = [t if h else f"{t} (no interval)" for t, h in zip(rows["term"].to_list(), has,
                                                              strict=True)]
    coef = [float(v) for v in rows["coef"].to_list()]
    lo = [_num(v) for v in rows["ci_low"].to_list()]
    hi = [_num(v) for v in rows["ci_high"].to_list()]
    text = [f"{t}: {c:+.4f} [{_fmt(a, True)}, {_fmt(b, True)}], p {_p(p)}<br>against {ag}"
            for t, c, a, b, p, ag in zip(terms, coef, lo, hi, rows["p"].to_list(),
                                         rows["against"].to_list(), strict=True)]
    fig = go.Figure(go.Scatter(
        x=coef, y=terms, mode="markers", text=text, hoverinfo="text", showlegend=False,
        marker={"size": 10, "color": "#1f77b4",
                "symbol": ["circle" if h else "circle-open" for h in has]},
        error_x={"type": "data", "symmetric": False,
                 "array": [(b - c) if h else None for c, b, h in zip(coef, hi, has,
                                                                     strict=True)],
                 "arrayminus": [(c - a) if h else None for c, a, h in zip(coef, lo, has,
                                                                          strict=True)]}))
    fig.add_vline(x=0, line={"color": "grey", "dash": "dash", "width": 1})
    return _layout(fig, f"coefficients with {round(100 * level)}% intervals",
                   140 + 32 * max(1, len(terms)), yaxis={"autorange": "reversed",
                                                         "type": "category"})


def bias_figure(frame: pl.DataFrame, colours: dict[str, str], level: float) -> go.Figure:
    """Mean rank distance and same-language excess per query language and arm, with their
    intervals (grouped bars, two panels)."""
    cat = "query_lang" if "query_lang" in frame.columns else frame.columns[0]
    pct = round(100 * level)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[f"mean rank distance ({pct}% interval)",
                                        f"same-language excess in the top 10 ({pct}% "
                                        "interval)"])
    groups = list(dict.fromkeys(frame["arm"].to_list())) if "arm" in frame.columns else [None]
    for g in groups:
        part = frame if g is None else frame.filter(pl.col("arm") == g)
        x = [str(v) for v in part[cat].to_list()]
        for row, (col, lo, hi) in enumerate((("rank_distance", "rd_ci_low", "rd_ci_high"),
                                             ("same_lang_excess", "excess_ci_low",
                                              "excess_ci_high")), start=1):
            y = [_num(v) for v in part[col].to_list()]
            low = [_num(v) for v in part[lo].to_list()]
            high = [_num(v) for v in part[hi].to_list()]
            has = any(a is not None and b is not None for a, b in zip(low, high, strict=True))
            fig.add_bar(
                x=x, y=y, name=g or col, legendgroup=g or col, showlegend=row == 1,
                marker_color=colours.get(g) if g else None, row=row, col=1,
                error_y={"type": "data", "symmetric": False, "visible": has,
                         "array": [None if h is None or v is None else h - v
                                   for v, h in zip(y, high, strict=True)],
                         "arrayminus": [None if lo_ is None or v is None else v - lo_
                                        for v, lo_ in zip(y, low, strict=True)]},
                hovertemplate=[f"{g or ''} {xi}: {_fmt(v)} [{_fmt(a)}, {_fmt(b)}]<extra></extra>"
                               for xi, v, a, b in zip(x, y, low, high, strict=True)])
    fig.update_xaxes(type="category", title_text="query language", row=2, col=1)
    return _layout(fig, None, 560, barmode="group",
                   legend={"orientation": "h", "y": -0.15})


def exposure_figure(frame: pl.DataFrame, colours: dict[str, str]) -> go.Figure:
    """Each language's share of query texts, of passage texts and of its texts in
    monolingual pairs, per arm (absolute shares, %)."""
    panels = (("query_share", "share of query texts (%)"),
              ("passage_share", "share of passage texts (%)"),
              ("mono_share", "share of the language's texts in monolingual pairs (%)"))
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=[t for _, t in panels])
    for arm in dict.fromkeys(frame["arm"].to_list()):
        part = frame.filter(pl.col("arm") == arm)
        for row, (col, _) in enumerate(panels, start=1):
            fig.add_bar(x=part["lang"].to_list(),
                        y=[None if v is None else 100 * v for v in part[col].to_list()],
                        name=arm, legendgroup=arm, showlegend=row == 1,
                        marker_color=colours.get(arm), row=row, col=1,
                        hovertemplate=f"{arm} %{{x}}: %{{y:.2f}}%<extra></extra>")
    fig.update_xaxes(type="category", title_text="language", row=3, col=1)
    return _layout(fig, None, 720, barmode="group", legend={"orientation": "h", "y": -0.1})


def curves_figure(frame: pl.DataFrame, colours: dict[str, str]) -> go.Figure:
    """Training loss over steps per arm: the mean over its runs and the min–max band over
    seeds."""
    fig = go.Figure()
    for arm in dict.fromkeys(frame["arm"].to_list()):
        part = frame.filter(pl.col("arm") == arm).sort("step")
        c = colours.get(arm, "#333")
        x = part["step"].to_list()
        lo, hi = part["loss_min"].to_list(), part["loss_max"].to_list()
        fig.add_scatter(x=[*x, *x[::-1]], y=[*hi, *lo[::-1]], fill="toself",
                        fillcolor=_alpha(c, 0.18), line={"width": 0}, hoverinfo="skip",
                        showlegend=False, name=f"{arm} min–max")
        fig.add_scatter(x=x, y=part["loss_mean"].to_list(), mode="lines+markers", name=arm,
                        line={"color": c}, marker={"size": 4},
                        customdata=np.column_stack([part["runs"].to_numpy(),
                                                    part["loss_min"].to_numpy(),
                                                    part["loss_max"].to_numpy()]),
                        hovertemplate=f"{arm}, step %{{x}}: loss %{{y:.4f}} (mean of "
                                      "%{customdata[0]} runs; min %{customdata[1]:.4f}, "
                                      "max %{customdata[2]:.4f})<extra></extra>")
    return _layout(fig, "training loss per arm: mean over runs, band = min–max over seeds",
                   420, xaxis_title="step", yaxis_title="loss (mean of the logging window)")
