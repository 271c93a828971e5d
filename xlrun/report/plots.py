"""Plots of a report (matplotlib, Agg backend): a language-pair heatmap and a bar chart."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from xlrun.report.statistics import TESTS


def _pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (deferred on purpose: heavy, and only a plot
    needs it)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def pair_matrix(df: pl.DataFrame, value: str) -> tuple[list[str], list[str], np.ndarray]:
    """Query languages (rows), document languages (columns) and the ``value`` matrix (NaN
    where a pair has no value)."""
    rows = sorted(df["query_lang"].unique().to_list())
    cols = sorted(df["doc_lang"].unique().to_list())
    mat = np.full((len(rows), len(cols)), np.nan)
    ri = {q: i for i, q in enumerate(rows)}
    ci = {d: j for j, d in enumerate(cols)}
    for q, d, v in df.select("query_lang", "doc_lang", value).iter_rows():
        if v is not None:
            mat[ri[q], ci[d]] = v
    return rows, cols, mat


SIGNIFICANCE_LEGEND = "* p<.05   ** p<.01   *** p<.001 (Holm-adjusted p)"
"""The marks without the test (use :func:`significance_legend` to name it)."""


def significance_legend(test: str | None = None, level: float = 0.95) -> str:
    """The legend of the significance marks naming the test that made them (``--test``:
    its description from the registry of tests; without a test, :data:`SIGNIFICANCE_LEGEND`)."""
    if test is None:
        return SIGNIFICANCE_LEGEND
    t = TESTS.get(test, "--test")
    return (f"* p<.05   ** p<.01   *** p<.001: Holm-adjusted {t.holm_of(False)} of --test "
            f"{test}, {t.model(round(100 * level), 0, False)}")


def _stars(mark: str | None) -> str:
    """The significance stars of a mark (empty for none, or for the baseline's label)."""
    return mark if mark and set(mark) == {"*"} else ""


def _text_colour(rgba: tuple[float, ...]) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba``."""
    r, g, b = rgba[:3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def heatmap(df: pl.DataFrame, path: str | Path, value: str = "mean", marks: str | None = None,
            title: str | None = None, diverging: bool = False,
            label: str | None = None, legend: str | None = None) -> Path:
    """Write a query-language × document-language heatmap of ``value`` to ``path``.

    ``df`` has one row per pair (``query_lang, doc_lang``). ``marks`` names a text column
    (e.g. significance stars) drawn after each value. ``diverging`` centres the colour scale
    on zero (for deltas). Empty cells stay blank. ``label`` names the colour bar; ``legend``
    explains the marks (default :data:`SIGNIFICANCE_LEGEND`, see :func:`significance_legend`).
    """
    return heatmaps([(None, df)], path, value, marks=marks, title=title, diverging=diverging,
                    label=label, legend=legend)


def heatmaps(panels: list[tuple[str | None, pl.DataFrame]], path: str | Path,
             value: str = "mean", marks: str | None = None, title: str | None = None,
             diverging: bool = False, label: str | None = None,
             legend: str | None = None) -> Path:
    """Write one heatmap per ``(panel title, frame)`` side by side with one shared colour
    scale and colour bar (see :func:`heatmap`)."""
    plt = _pyplot()
    from matplotlib.colors import Normalize  # after _pyplot() chose the backend

    mats = [(name, *pair_matrix(df, value), df) for name, df in panels]
    values = np.concatenate([m[3][np.isfinite(m[3])] for m in mats]) if mats else np.array([])
    if diverging:
        lim = float(np.max(np.abs(values))) if values.size else 1.0
        lim = lim or 1.0
        norm, cmap = Normalize(-lim, lim), plt.get_cmap("RdBu")
    else:
        lo = float(values.min()) if values.size else 0.0
        hi = float(values.max()) if values.size else 1.0
        norm, cmap = Normalize(lo, hi if hi > lo else lo + 1e-9), plt.get_cmap("viridis")
    n_rows = max(len(m[1]) for m in mats)
    n_cols = max(len(m[2]) for m in mats)
    cell = 0.62 if marks else 0.5
    width = len(mats) * (0.8 + cell * n_cols) + 1.6
    height = 1.9 + cell * n_rows + (0.3 if marks else 0.0)
    fig, axes = plt.subplots(1, len(mats), figsize=(max(width, 4.5), max(height, 3.0)),
                             squeeze=False)
    font = 7 if n_cols <= 10 else 6 if n_cols <= 16 else 5
    image = None
    for k, (ax, (name, rows, cols, mat, df)) in enumerate(zip(axes[0], mats, strict=True)):
        mark_of: dict[tuple[str, str], str] = {}
        if marks is not None:
            mark_of = {(q, d): _stars(m) for q, d, m in
                       df.select("query_lang", "doc_lang", marks).iter_rows()}
        image = ax.imshow(np.ma.masked_invalid(mat), cmap=cmap, norm=norm, aspect="auto")
        ax.set_xticks(range(len(cols)), cols, rotation=90 if len(cols) > 12 else 0)
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel("document language")
        if k == 0:
            ax.set_ylabel("query language")
        ax.tick_params(length=0)
        for i, q in enumerate(rows):
            for j, d in enumerate(cols):
                if np.isfinite(mat[i, j]):
                    star = mark_of.get((q, d), "")
                    text = f"{mat[i, j]:+.3f}" if diverging else f"{mat[i, j]:.3f}"
                    text += f"\n{star}" if star else ""
                    ax.text(j, i, text, ha="center", va="center", fontsize=font,
                            color=_text_colour(cmap(norm(mat[i, j]))),
                            fontweight="bold" if star else "normal")
        if name:
            ax.set_title(name, fontsize=8)
    assert image is not None
    fig.colorbar(image, ax=list(axes[0]), label=label or value, shrink=0.9, pad=0.02)
    if title:
        fig.suptitle(_wrap(title, width), fontsize=9)
    if marks is not None:
        fig.text(0.01, 0.01, _wrap(legend or SIGNIFICANCE_LEGEND, width * 1.6), fontsize=7,
                 ha="left", va="top")
    out = Path(path)
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def _wrap(text: str, width_in: float) -> str:
    """Wrap a title to the figure width (about 14 characters per inch at 9 pt)."""
    return "\n".join(textwrap.wrap(text, max(40, int(width_in * 14))))


def bar_chart(df: pl.DataFrame, path: str | Path, category: str, value: str = "mean",
              group: str | None = None, title: str | None = None,
              marks: str | None = None, ylabel: str | None = None,
              footer: str | None = None, low: str | None = None,
              high: str | None = None) -> Path:
    """Write a bar chart of ``value`` per ``category`` (e.g. query language) to ``path``;
    with ``group`` (e.g. ``arm``) the bars of each category are grouped side by side (in
    the frame's order of groups, so a baseline listed first stays first). ``marks`` names a
    text column drawn above each bar (significance stars); ``footer`` is a line of small text
    under the plot (default with marks: their legend). ``low``/``high`` name the columns of
    an interval drawn as an error bar on each bar (none where they are null)."""
    plt = _pyplot()
    cats = sorted({str(c) for c in df[category].to_list()})
    groups = list(dict.fromkeys(str(g) for g in df[group].to_list())) if group else [""]
    width = 0.8 / len(groups)
    fig_w = max(5.0, 0.35 * len(cats) * len(groups) + 2.0)
    fig, ax = plt.subplots(figsize=(min(fig_w, 24.0), 4.0))
    for k, g in enumerate(groups):
        part = df if not group else df.filter(pl.col(group).cast(pl.String) == g)
        cols = [category, value] + ([marks] if marks else [])
        lookup = {str(r[0]): r[1:] for r in part.select(cols).iter_rows()}
        heights = [lookup.get(c, (None,))[0] for c in cats]
        xs = np.arange(len(cats)) + (k - (len(groups) - 1) / 2) * width
        ys = np.array([np.nan if h is None else h for h in heights], dtype=np.float64)
        bars = ax.bar(xs, ys, width, label=g if group else None)
        if low and high:
            lo, hi = _interval(part, category, low, high, cats)
            ax.errorbar(xs, ys, yerr=[ys - lo, hi - ys], fmt="none", ecolor="black",
                        elinewidth=0.8, capsize=2)
        if marks:
            for x, c, bar in zip(xs, cats, bars, strict=True):
                star = _stars(lookup[c][-1]) if c in lookup else ""
                if star:
                    ax.text(x, bar.get_height(), star, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(cats)), cats, rotation=90 if len(cats) > 12 else 0)
    ax.set_xlabel(category)
    ax.set_ylabel(ylabel or value)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if group:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title=group)
    if title:
        ax.set_title(_wrap(title, min(fig_w, 24.0)), fontsize=9)
    fig.tight_layout()
    if footer or marks:
        fig.text(0.01, 0.0, _wrap(footer or SIGNIFICANCE_LEGEND, min(fig_w, 24.0) * 1.6),
                 fontsize=7, ha="left", va="top")
    out = Path(path)
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def _interval(part: pl.DataFrame, category: str, low: str, high: str,
              cats: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The ``low``/``high`` columns of ``part`` in the order of ``cats`` (NaN where missing)."""
    bounds = {str(c): (lo, hi) for c, lo, hi in part.select(category, low, high).iter_rows()}
    lo = np.array([np.nan if bounds.get(c, (None, None))[0] is None else bounds[c][0]
                   for c in cats], dtype=np.float64)
    hi = np.array([np.nan if bounds.get(c, (None, None))[1] is None else bounds[c][1]
                   for c in cats], dtype=np.float64)
    return lo, hi


def grouped_bar_panels(df: pl.DataFrame, path: str | Path, category: str,
                       panels: list[tuple[str, str]], group: str, scale: float = 1.0,
                       title: str | None = None) -> Path:
    """One panel per ``(column, y label)`` of ``panels``, stacked: bars of ``column`` per
    ``category`` value, one bar per ``group`` value side by side (values times ``scale``;
    a missing value is drawn as 0)."""
    plt = _pyplot()
    groups = list(dict.fromkeys(df[group].to_list()))
    cats = sorted(df[category].unique().to_list())
    fig, axes = plt.subplots(len(panels), 1, squeeze=False, sharex=True,
                             figsize=(max(6.0, 0.3 * len(cats) * max(1, len(groups))),
                                      3.5 * len(panels)))
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(cats))
    for ax, (column, ylabel) in zip(axes[:, 0], panels, strict=True):
        for i, g in enumerate(groups):
            values = dict(df.filter(pl.col(group) == g).select(category, column).iter_rows())
            ax.bar(x + (i - (len(groups) - 1) / 2) * width,
                   [scale * (values.get(c) or 0.0) for c in cats], width, label=str(g))
        ax.set_ylabel(ylabel)
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(x, cats)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    rows = -(-len(groups) // 2)  # two labels per legend row, below the panels
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=7, frameon=False)
    if title:
        fig.suptitle(_wrap(title, fig.get_figwidth()), fontsize=9)
    fig.tight_layout(rect=(0, 0.03 * rows + 0.01, 1, 1))
    out = Path(path)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


def coefficient_plot(df: pl.DataFrame, path: str | Path, title: str | None = None,
                     xlabel: str = "coefficient (95% interval)") -> Path:
    """Write a coefficient plot (``term, coef, ci_low, ci_high``, one row per term): points
    with their intervals and a line at zero. A term without an interval (e.g. an arm with a
    single run: no seed variance) is drawn as a hollow point labelled "no interval", and a
    footnote says so; terms without a coefficient are named in the footnote."""
    plt = _pyplot()
    missing = df.filter(pl.col("coef").is_null())["term"].to_list()
    df = df.filter(pl.col("coef").is_not_null())
    has_ci = (df["ci_low"].is_not_null() & df["ci_high"].is_not_null()).to_numpy()
    terms = [t if ok else f"{t} (no interval)"
             for t, ok in zip(df["term"].to_list(), has_ci, strict=True)]
    coef = df["coef"].to_numpy()
    lo = df["ci_low"].fill_null(float("nan")).to_numpy()
    hi = df["ci_high"].fill_null(float("nan")).to_numpy()
    fig, ax = plt.subplots(figsize=(10.0, 1.4 + 0.4 * max(1, len(terms))))
    ys = np.arange(len(terms))[::-1]
    if has_ci.any():
        ax.errorbar(coef[has_ci], ys[has_ci], fmt="o", capsize=3, color="C0",
                    xerr=[coef[has_ci] - lo[has_ci], hi[has_ci] - coef[has_ci]])
    if (~has_ci).any():
        ax.plot(coef[~has_ci], ys[~has_ci], "o", mfc="white", color="C0")
    ax.axvline(0.0, color="grey", lw=0.8, ls="--")
    for y, c in zip(ys, coef, strict=True):
        ax.annotate(f"{c:+.3f}", (c, y), textcoords="offset points", xytext=(0, 6),
                    ha="center", fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    ax.set_yticks(ys, terms)
    ax.set_ylim(-0.6, len(terms) - 0.2)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(_wrap(title, 7.0), fontsize=9)  # the axes are ~7 of the 10 inches
    foot = []
    if (~has_ci).any():
        foot.append("hollow points: no interval or test (see the report's notes, e.g. an arm "
                    "with a single run has no seed variance)")
    if missing:
        foot.append(f"not estimable, not drawn: {', '.join(missing)}")
    fig.tight_layout()
    if foot:
        fig.text(0.01, 0.0, _wrap("; ".join(foot), 10.0 * 1.6), fontsize=7, ha="left",
                 va="top")
    out = Path(path)
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out


def line_bands(df: pl.DataFrame, path: str | Path, x: str, y: str, low: str, high: str,
               group: str, title: str | None = None, ylabel: str | None = None) -> Path:
    """Write one line of ``y`` over ``x`` per ``group`` value (in the frame's order) with a
    shaded band from ``low`` to ``high`` (e.g. the spread over seeds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 4.5))
    for k, g in enumerate(dict.fromkeys(df[group].to_list())):
        part = df.filter(pl.col(group) == g).sort(x)
        xs = part[x].to_numpy()
        colour = f"C{k % 10}"
        ax.plot(xs, part[y].to_numpy(), color=colour, lw=1.5, label=str(g))
        ax.fill_between(xs, part[low].to_numpy(), part[high].to_numpy(), color=colour,
                        alpha=0.2, lw=0)
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel or y)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, title=group)
    if title:
        ax.set_title(_wrap(title, 8.0), fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return out
