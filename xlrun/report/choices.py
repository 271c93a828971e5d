"""The choices of ``xlrun report`` flags, in a module without heavy imports (the CLI loads it
at start-up; statistics and database code load only when a report runs)."""

from __future__ import annotations

BY: dict[str, tuple[str, ...]] = {
    "language-pair": ("query_lang", "doc_lang"),
    "query-language": ("query_lang",),
    "doc-language": ("doc_lang",),
    "language": ("language",),
    "setting": ("setting",),
    "run": ("run_id",),
    "sampler": ("sampler",),
}
"""``--by`` value → the columns that make a cell (``language``: each language on either side
of a row, marked seen or unseen in training; :mod:`xlrun.report.seen`)."""

METRICS: dict[str, str] = {
    "map": "ap",
    "ndcg@10": "ndcg_at_10",
    "mrr@10": "mrr_at_10",
    "recall@100": "recall_at_100",
    "rank_distance": "rank_distance",
}
"""``--metric`` value → ``query_results`` column."""

FORMATS: tuple[str, ...] = ("table", "csv", "json", "markdown", "latex")
"""``--format`` values."""

LAYOUTS: tuple[str, ...] = ("long", "wide")
"""``--layout`` values: one row per cell and arm with every column, or the paper table."""
