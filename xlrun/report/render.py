"""Renderers of a report frame: rich table, CSV, JSON and Markdown.

Formatting is deterministic (fixed decimals, nulls as ``NA`` in text formats, ``null`` in
JSON, empty in CSV) so outputs can be compared with golden files.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping
from typing import Any, Literal

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from xlrun.errors import UsageError
from xlrun.report import choices

Format = Literal["table", "csv", "json", "markdown"]
FORMATS = choices.FORMATS

DECIMALS = 4
"""Decimals of metric values, deltas and intervals."""

DF_DECIMALS = 1
"""Decimals of degrees of freedom (column ``df``)."""

NA = "NA"


def _is_p(column: str) -> bool:
    return column == "p" or column.startswith("p_")


def format_value(column: str, value: Any, null: str = NA) -> str:
    """A cell as text: floats with :data:`DECIMALS` decimals (degrees of freedom with
    :data:`DF_DECIMALS`), p-values below 0.0001 in scientific notation (an underflowed p of 0 as ``<1e-300``), nulls/NaN as ``null``."""
    if value is None:
        return null
    if isinstance(value, float):
        if math.isnan(value):
            return null
        if _is_p(column) and value < 1e-4:
            return "<1e-300" if value == 0.0 else f"{value:.1e}"  # underflow, not zero
        if column == "df":
            return f"{value:.{DF_DECIMALS}f}"
        out = f"{value:.{DECIMALS}f}"
        return "0.0000" if out == "-0.0000" else out
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_value(column: str, value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if _is_p(column):
            return float(f"{value:.6g}")
        out = round(value, 6)
        return 0.0 if out == 0 else out
    return value


def to_csv(df: pl.DataFrame) -> str:
    """CSV with a header row (nulls as empty fields)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(df.columns)
    for row in df.iter_rows():
        w.writerow([format_value(c, v, null="") for c, v in zip(df.columns, row, strict=True)])
    return buf.getvalue()


def to_json(df: pl.DataFrame, meta: Mapping[str, Any] | None = None) -> str:
    """``{"meta": {...}, "rows": [{column: value}, ...]}`` (floats rounded to 6 places)."""
    rows = [{c: _json_value(c, v) for c, v in zip(df.columns, row, strict=True)} for row in df.iter_rows()]
    return json.dumps({"meta": dict(meta or {}), "rows": rows}, indent=2,
                      ensure_ascii=False) + "\n"


def _numeric(df: pl.DataFrame, column: str) -> bool:
    return df.schema[column].is_numeric()


def to_markdown(df: pl.DataFrame, title: str | None = None) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned)."""
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(df.columns) + " |")
    lines.append("|" + "|".join("---:" if _numeric(df, c) else "---" for c in df.columns) + "|")
    for row in df.iter_rows():
        cells = [format_value(c, v).replace("|", "\\|") for c, v in zip(df.columns, row, strict=True)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_table(df: pl.DataFrame, title: str | None = None) -> str:
    """A rich table rendered to plain text (no colours; wide enough for every cell)."""
    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD,
                  title_justify="left", expand=False)
    just = ["right" if _numeric(df, c) else "left" for c in df.columns]
    for c, j in zip(df.columns, just, strict=True):
        table.add_column(Text(c, justify=j), justify=j, no_wrap=True)
    for row in df.iter_rows():
        table.add_row(*[Text(format_value(c, v), justify=j)
                        for c, v, j in zip(df.columns, row, just, strict=True)])
    buf = io.StringIO()
    console = Console(file=buf, width=100_000, color_system=None, force_terminal=False,
                      legacy_windows=False, soft_wrap=False, highlight=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


def render(df: pl.DataFrame, fmt: str, *, title: str | None = None,
           meta: Mapping[str, Any] | None = None) -> str:
    """Render ``df`` in ``fmt`` (``table``, ``csv``, ``json`` or ``markdown``)."""
    if fmt == "table":
        return to_table(df, title)
    if fmt == "csv":
        return to_csv(df)
    if fmt == "json":
        return to_json(df, meta)
    if fmt == "markdown":
        return to_markdown(df, title)

    raise UsageError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
