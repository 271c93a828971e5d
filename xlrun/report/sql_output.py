"""``xlrun sql``'s output, written while the rows arrive: CSV and JSON with every value as the
database stores it (``2e-05``, ``0.123456789``), or a text table that rounds numbers to
:data:`TABLE_DECIMALS` decimals and reports that it did.

Memory is bounded by one batch of rows: the table takes its column widths from the first
batch (:data:`~xlrun.report.readonly.BATCH_ROWS` rows) and wider later values widen only their
own line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FORMATS: tuple[str, ...] = ("table", "csv", "json")
"""``xlrun sql --format`` values."""

TABLE_DECIMALS = 4
"""Decimals of a non-integral number in the text table (CSV and JSON keep every digit)."""

NULL_TEXT = "NA"
"""A null in the text table (CSV leaves the field empty, JSON writes ``null``)."""

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
"""Characters the text table shows escaped: controls (a terminal would act on escape
sequences), zero-width and bidirectional marks."""


@dataclass
class Written:
    """What was written: ``rows``; ``rounded``: the table rounded at least one number;
    ``truncated``: ``limit`` stopped the output before the last row."""

    rows: int = 0
    rounded: bool = False
    truncated: bool = False


def _float_text(v: float) -> str:
    return repr(v)  # the shortest text that reads back as the same double; nan, inf, -inf


def _decimal_text(v: Decimal) -> str:
    if v.is_nan():
        return "nan"
    if v.is_infinite():
        return "inf" if v > 0 else "-inf"
    return str(v)


def _bytes_text(v: bytes | bytearray | memoryview) -> str:
    return "\\x" + bytes(v).hex()


def json_text(v: Any) -> str:
    """A value as JSON text: numbers with every digit as stored (a ``Decimal`` keeps its
    own), NaN and infinities as ``null``, bytes as ``\\x…`` hex text, dates in ISO form,
    arrays and objects item by item."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else "null"
    if isinstance(v, Decimal):
        return str(v) if v.is_finite() else "null"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)}: {json_text(x)}"
                               for k, x in v.items()) + "}"
    if isinstance(v, list | tuple):
        return "[" + ", ".join(json_text(x) for x in v) + "]"
    if isinstance(v, bytes | bytearray | memoryview):
        return json.dumps(_bytes_text(v))
    if isinstance(v, dt.date | dt.time):
        return json.dumps(v.isoformat())
    return json.dumps(str(v), ensure_ascii=False)


def full_text(v: Any) -> str:
    """A value as CSV writes it: numbers exactly as stored, ``""`` for null, JSON for
    arrays and objects, ``\\x…`` hex for bytes."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return _float_text(v)
    if isinstance(v, Decimal):
        return _decimal_text(v)
    if isinstance(v, bytes | bytearray | memoryview):
        return _bytes_text(v)
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, dict | list | tuple):
        return json_text(v)
    return str(v)


def table_text(v: Any) -> tuple[str, bool]:
    """A value as the text table shows it and whether that rounded it: non-integral numbers
    with :data:`TABLE_DECIMALS` decimals, controls escaped."""
    t = type(v)
    if t is str and v.isprintable():
        return v, False
    if t is int:
        return str(v), False
    if isinstance(v, float) and math.isfinite(v):
        out = f"{v:.{TABLE_DECIMALS}f}"
        out = "0.0000" if out == "-0.0000" else out
        return out, float(out) != v
    if isinstance(v, Decimal) and v.is_finite() and v != v.to_integral_value():
        out = f"{v:.{TABLE_DECIMALS}f}"
        return out, Decimal(out) != v
    text = NULL_TEXT if v is None else full_text(v)
    return _CONTROL.sub(lambda m: m.group(0).encode("unicode_escape").decode("ascii"),
                        text), False


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | Decimal) and not isinstance(v, bool)


def _limited(batches: Iterable[list[tuple[Any, ...]]], limit: int | None,
             written: Written) -> Iterator[list[tuple[Any, ...]]]:
    """The batches cut at ``limit`` rows (``written.truncated`` when rows remained)."""
    it = iter(batches)
    seen = 0
    for batch in it:
        if limit is not None and seen + len(batch) >= limit:
            keep = batch[:limit - seen]
            if keep:
                yield keep
            written.truncated = len(batch) > len(keep) or next(it, None) is not None
            return
        seen += len(batch)
        yield batch


_CSV_NATIVE = frozenset({str, int, float, type(None)})
"""Types the csv module writes exactly as :func:`full_text` would."""


def _write_csv(columns: list[str], batches: Iterable[list[tuple[Any, ...]]],
               emit: Callable[[str], None], written: Written) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    emit(buf.getvalue())
    for batch in batches:
        buf.seek(0)
        buf.truncate()
        # csv writes str, int, float (repr: every digit) and None ("") as they are
        w.writerows([v if type(v) in _CSV_NATIVE else full_text(v) for v in row]
                    for row in batch)
        written.rows += len(batch)
        emit(buf.getvalue())


_JSON_FAST: dict[type, Callable[[Any], str]] = {
    str: json.encoder.encode_basestring,  # type: ignore[attr-defined]
    int: str,
    type(None): lambda _v: "null",
}
"""JSON text of the commonest types without :func:`json_text`'s checks."""


def _write_json(columns: list[str], batches: Iterable[list[tuple[Any, ...]]],
                emit: Callable[[str], None], written: Written) -> None:
    keys = [json.dumps(c, ensure_ascii=False) + ": " for c in columns]
    fast = _JSON_FAST.get
    emit('{"columns": [' + ", ".join(k[:-2] for k in keys) + '], "rows": [')
    sep = "\n"
    for batch in batches:
        parts = []
        for row in batch:
            parts.append(sep + "{" + ", ".join(
                k + (f(v) if (f := fast(type(v))) else json_text(v))
                for k, v in zip(keys, row, strict=True)) + "}")
            sep = ",\n"
        written.rows += len(batch)
        emit("".join(parts))
    emit("\n]}\n" if written.rows else "]}\n")


def _write_table(columns: list[str], batches: Iterable[list[tuple[Any, ...]]],
                 emit: Callable[[str], None], written: Written) -> None:
    it = iter(batches)
    first = next(it, [])
    cells = [[table_text(v) for v in row] for row in first]
    header = [table_text(c)[0] for c in columns]
    widths = [max([len(h)] + [len(r[i][0]) for r in cells]) for i, h in enumerate(header)]
    numeric = [bool(first) and all(_is_number(r[i]) or r[i] is None for r in first)
               for i in range(len(columns))]

    def line(texts: list[str]) -> str:
        parts = [t.rjust(w) if num else t.ljust(w)
                 for t, w, num in zip(texts, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip() + "\n"

    emit(line(header) + "  ".join("-" * w for w in widths) + "\n")
    block = cells
    while True:
        written.rows += len(block)
        written.rounded = written.rounded or any(r for row in block for _, r in row)
        emit("".join(line([t for t, _ in row]) for row in block))
        nxt = next(it, None)
        if nxt is None:
            return
        block = [[table_text(v) for v in row] for row in nxt]


def write_rows(fmt: str, columns: list[str], batches: Iterable[list[tuple[Any, ...]]],
               emit: Callable[[str], None], *, limit: int | None = None) -> Written:
    """Write the rows in ``fmt`` (``table``, ``csv``, ``json``) through ``emit``, one batch at
    a time, stopping after ``limit`` rows.

    Raises:
        ValueError: an unknown format.
    """
    written = Written()
    rows = _limited(batches, limit, written)
    writer = {"csv": _write_csv, "json": _write_json, "table": _write_table}.get(fmt)
    if writer is None:
        raise ValueError(f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    writer(columns, rows, emit, written)
    return written
