"""Plots of a report (matplotlib, Agg backend): a language-pair heatmap and a bar chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl


def _pyplot():  # noqa: ANN202 - matplotlib.pyplot module
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


def heatmap(df: pl.DataFrame, path: str | Path, value: str = "mean", marks: str | None = None,
            title: str | None = None, diverging: bool = False) -> Path:
    """Write a query-language × document-language heatmap of ``value`` to ``path``.

    ``df`` has one row per pair (``query_lang, doc_lang``). ``marks`` names a text column
    (e.g. significance stars) drawn under each value. ``diverging`` centres the colour scale
    on zero (for deltas). Empty cells stay blank.
    """
    plt = _pyplot()
    rows, cols, mat = pair_matrix(df, value)
    mark_of: dict[tuple[str, str], str] = {}
    if marks is not None:
        mark_of = {(q, d): m or "" for q, d, m in
                   df.select("query_lang", "doc_lang", marks).iter_rows()}
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * len(cols), 1.0 + 0.5 * len(rows)))
    finite = mat[np.isfinite(mat)]
    if diverging:
        lim = float(np.max(np.abs(finite))) if finite.size else 1.0
        im = ax.imshow(np.ma.masked_invalid(mat), cmap="RdBu", vmin=-lim or -1, vmax=lim or 1)
    else:
        im = ax.imshow(np.ma.masked_invalid(mat), cmap="viridis")
    ax.set_xticks(range(len(cols)), cols, rotation=90)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("document language")
    ax.set_ylabel("query language")
    for i, q in enumerate(rows):
        for j, d in enumerate(cols):
            if np.isfinite(mat[i, j]):
                text = f"{mat[i, j]:.2f}" + (f"\n{mark_of.get((q, d), '')}" if marks else "")
                ax.text(j, i, text, ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label=value)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def bar_chart(df: pl.DataFrame, path: str | Path, category: str, value: str = "mean",
              group: str | None = None, title: str | None = None) -> Path:
    """Write a bar chart of ``value`` per ``category`` (e.g. query language) to ``path``;
    with ``group`` (e.g. ``arm``) the bars of each category are grouped side by side."""
    plt = _pyplot()
    cats = sorted(str(c) for c in df[category].unique().to_list())
    groups = sorted(str(g) for g in df[group].unique().to_list()) if group else [""]
    width = 0.8 / len(groups)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.5 * len(cats) * max(1, len(groups) / 2)), 3.5))
    for k, g in enumerate(groups):
        part = df if not group else df.filter(pl.col(group).cast(pl.String) == g)
        lookup = {str(c): v for c, v in part.select(category, value).iter_rows()}
        heights = [lookup.get(c) for c in cats]
        xs = np.arange(len(cats)) + (k - (len(groups) - 1) / 2) * width
        ax.bar(xs, [np.nan if h is None else h for h in heights], width,
               label=g if group else None)
    ax.set_xticks(range(len(cats)), cats, rotation=90 if len(cats) > 12 else 0)
    ax.set_xlabel(category)
    ax.set_ylabel(value)
    if group:
        ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
