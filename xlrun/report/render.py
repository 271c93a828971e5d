"""Renderers of a report frame: rich table, CSV, JSON, Markdown and LaTeX (booktabs).

Formatting is deterministic (fixed decimals, whole counts as integers, nulls as ``NA`` in text
formats, ``null`` in JSON, empty in CSV) so outputs can be compared with golden files.
:func:`json_frame` is the frame with exactly the values ``--format json`` writes (what the
Python API's ``report(...).table`` holds).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import polars as pl
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from xlrun.errors import UsageError
from xlrun.report import choices

Format = Literal["table", "csv", "json", "markdown", "latex"]
FORMATS = choices.FORMATS

DECIMALS = 4
"""Decimals of metric values, deltas and intervals."""

DF_DECIMALS = 1
"""Decimals of degrees of freedom (column ``df``)."""

NA = "NA"

COUNT_COLUMNS: frozenset[str] = frozenset({"runs", "pool", "pool_size", "pairs",
                                           "pairs_per_run"})
"""Float columns that count things (besides ``n_*``): a whole value prints as an integer
(``500``, not ``500.0000``); a mean of counts that is not whole keeps one decimal."""


def _is_p(column: str) -> bool:
    return column == "p" or column.startswith("p_")


def _is_count(column: str) -> bool:
    return column in COUNT_COLUMNS or column.startswith("n_")


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
        if _is_count(column) and math.isfinite(value):
            return str(int(value)) if value.is_integer() else f"{value:.1f}"
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


def json_frame(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with the values :func:`to_json` writes: floats rounded to 6 places (p-values to
    6 significant digits), NaN as null, no negative zero; other columns unchanged."""
    out = []
    for c in df.columns:
        col = df[c]
        if col.dtype.is_float():
            col = pl.Series(c, [_json_value(c, v) for v in col.to_list()], dtype=pl.Float64)
        out.append(col)
    return pl.DataFrame(out, schema=df.schema) if out else df


def to_json(df: pl.DataFrame, meta: Mapping[str, Any] | None = None) -> str:
    """``{"meta": {...}, "rows": [{column: value}, ...]}`` (floats rounded to 6 places)."""
    rows = json_frame(df).to_dicts()
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


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                  "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "×": r"$\times$", "→": r"$\rightarrow$", "−": "$-$",
                  "–": "--", "≤": r"$\le$", "≥": r"$\ge$", "Δ": r"$\Delta$", "…": r"\ldots{}",
                  "σ": r"$\sigma$", "²": r"$^2$", "<": "$<$", ">": "$>$"}
_LATEX_CHARS = re.compile("|".join(re.escape(k) for k in [*_LATEX_SPECIAL, *_LATEX_SYMBOLS]))
_MINUS = re.compile(r"(?<![\w.])-(?=\d)")
_MARKS = re.compile(r"(\*{1,3})$")


def latex_escape(text: str) -> str:
    """``text`` safe in LaTeX text mode: the ten special characters escaped, ± × → − – ≤ ≥
    Δ … as their LaTeX commands, and a minus before a number as a math minus."""
    text = _LATEX_CHARS.sub(lambda m: _LATEX_SPECIAL.get(m.group(0))
                            or _LATEX_SYMBOLS[m.group(0)], text)
    return _MINUS.sub("$-$", text)


def _latex_cell(column: str, value: Any) -> str:
    text = format_value(column, value)
    marks = _MARKS.search(text)
    if marks and text != marks.group(1):  # significance marks after a number: superscript
        return latex_escape(text[:marks.start()]) + f"$^{{{marks.group(1)}}}$"
    return latex_escape(text)


def to_latex(df: pl.DataFrame, title: str | None = None, *, legend: str | None = None,
             notes: Sequence[str] = (), labels: int | None = None,
             label: str = "tab:xlrun") -> str:
    """A LaTeX ``table`` with a booktabs ``tabular`` (needs ``\\usepackage{booktabs}``).

    The caption is ``title`` and ``legend`` (what the numbers and marks mean); ``notes`` (what
    the report decided: pooled runs, missing cells) follow the table as a footnote paragraph.
    The first ``labels`` columns are left-aligned and the rest right-aligned (a wide table's
    entries are text); by default text columns are left- and numbers right-aligned. Marks
    after a number (``*``, ``**``, ``***``) are superscripts; a blank line of space separates
    row groups (a new first label) when ``labels`` > 1.
    """
    if labels is None:
        align = "".join("r" if _numeric(df, c) else "l" for c in df.columns)
    else:
        align = "".join("l" if i < labels else "r" for i in range(len(df.columns)))
    caption = " ".join(x.strip().rstrip(".") + "." for x in (title, legend) if x)
    lines = ["% xlrun report (needs \\usepackage{booktabs})", "\\begin{table}[t]",
             "\\centering", "\\small"]
    if caption:
        lines.append(f"\\caption{{{latex_escape(caption)}}}")
    lines.append(f"\\label{{{label}}}")
    lines.append(f"\\begin{{tabular}}{{{align}}}")
    lines.append("\\toprule")
    lines.append(" & ".join(latex_escape(c) for c in df.columns) + " \\\\")
    lines.append("\\midrule")
    previous: tuple[Any, ...] | None = None
    for row in df.iter_rows():
        group = row[:1] if labels is not None and labels > 1 else None
        if previous is not None and group is not None and group != previous:
            lines.append("\\addlinespace")
        previous = group
        line = " & ".join(_latex_cell(c, v) for c, v in zip(df.columns, row, strict=True))
        # a row must not start with "[": the previous row's \\ would take it as its argument
        lines.append(("{}" if line.startswith("[") else "") + line + " \\\\")
    lines.append("\\bottomrule")
    lines.append("\\end{tabular}")
    if notes:
        lines.append("\\par\\smallskip")
        lines.append("\\parbox{\\linewidth}{\\footnotesize "
                     + " ".join(f"Note: {latex_escape(n)}." for n in notes) + "}")
    lines.append("\\end{table}")
    return "\n".join(lines) + "\n"


def render(df: pl.DataFrame, fmt: str, *, title: str | None = None,
           meta: Mapping[str, Any] | None = None, legend: str | None = None,
           notes: Sequence[str] = (), labels: int | None = None) -> str:
    """Render ``df`` in ``fmt`` (``table``, ``csv``, ``json``, ``markdown`` or ``latex``).

    ``legend`` (what entries and marks mean) is the caption's second sentence in LaTeX and a
    last line in ``table`` and ``markdown``; ``notes`` are a footnote in LaTeX only (the CLI
    prints them to stderr, JSON carries them in ``meta``).
    """
    if fmt == "table":
        return to_table(df, title) + (f"{legend}\n" if legend else "")
    if fmt == "csv":
        return to_csv(df)
    if fmt == "json":
        return to_json(df, meta)
    if fmt == "markdown":
        return to_markdown(df, title) + (f"\n{legend}\n" if legend else "")
    if fmt == "latex":
        return to_latex(df, title, legend=legend, notes=notes, labels=labels)

    raise UsageError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
