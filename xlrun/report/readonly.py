"""Read-only SQL for ``xlrun sql``: one statement, no writes.

Three layers: the text must be a single statement (a ``;`` followed by more SQL is refused,
quotes and comments are understood) that starts with a reading keyword; it then runs on a
connection that cannot write (SQLite: the file opened with ``mode=ro`` and
``PRAGMA query_only=ON``; Postgres: ``SET TRANSACTION READ ONLY``, then rolled back).
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from xlrun.errors import UsageError

READ_KEYWORDS: tuple[str, ...] = ("select", "with", "values", "explain", "table", "show")
"""A query must start with one of these."""

_DOLLAR = re.compile(r"\$[A-Za-z_0-9]*\$")


def split_statement(sql: str) -> str:
    """The one statement in ``sql`` without a trailing ``;``.

    Raises:
        UsageError: ``sql`` is empty or holds more than one statement.
    """
    i, n = 0, len(sql)
    end: int | None = None
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == ch:
                    if j + 1 < n and sql[j + 1] == ch:  # doubled quote
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif sql.startswith("--", i):
            nl = sql.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif sql.startswith("/*", i):
            close = sql.find("*/", i + 2)
            i = n if close < 0 else close + 2
        elif ch == "$" and (m := _DOLLAR.match(sql, i)):
            close = sql.find(m.group(0), m.end())
            i = n if close < 0 else close + len(m.group(0))
        elif ch == ";":
            if end is None:
                end = i
            i += 1
        else:
            if end is not None and not ch.isspace():
                raise UsageError("xlrun sql runs exactly one statement; remove everything "
                                 "after the first ';'")
            i += 1
    stmt = (sql if end is None else sql[:end]).strip()
    if not _strip_comments(stmt):
        raise UsageError("empty SQL query")
    return stmt


def _strip_comments(sql: str) -> str:
    out = re.sub(r"/\*.*?\*/", " ", sql, flags=re.S)
    out = re.sub(r"--[^\n]*", " ", out)
    return out.strip()


def check_read_only(sql: str) -> str:
    """The single statement of ``sql`` if it starts with a reading keyword.

    Raises:
        UsageError: several statements, or a statement that would write (INSERT, DELETE,
            DROP, ...).
    """
    stmt = split_statement(sql)
    first = re.match(r"[\s(]*([A-Za-z]+)", _strip_comments(stmt))
    word = first.group(1).lower() if first else ""
    if word not in READ_KEYWORDS:
        raise UsageError(f"xlrun sql is read-only: {word.upper() or stmt[:20]!r} statements are "
                         f"refused; start the query with one of: "
                         f"{', '.join(k.upper() for k in READ_KEYWORDS)}")
    return stmt


def readonly_engine(url: str | None = None) -> Engine:
    """An engine that opens the database read-only (SQLite files: ``mode=ro``)."""
    from xlrun.db.engine import resolve_url

    u = make_url(resolve_url(url))
    if u.get_backend_name() == "sqlite":
        db = u.database
        if db and db != ":memory:" and not db.startswith("file:"):
            from pathlib import Path

            if not Path(db).is_file():
                raise UsageError(f"no database file at {db}")
            return create_engine(f"sqlite:///file:{db}?mode=ro&uri=true")
        return create_engine(u)
    return create_engine(u)


def _frame(columns: list[str], rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    seen: dict[str, int] = {}
    names = []
    for c in columns:
        k = seen.get(c, 0)
        names.append(c if k == 0 else f"{c}_{k}")
        seen[c] = k + 1
    try:
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
    except (TypeError, pl.exceptions.PolarsError):
        text = [tuple(None if v is None else str(v) for v in r) for r in rows]
        return pl.DataFrame(text, schema={n: pl.String for n in names}, orient="row")


def run_readonly(sql: str, url: str | None = None) -> pl.DataFrame:
    """Run one read-only query and return its rows.

    Raises:
        UsageError: several statements, a writing statement, or a database error.
    """
    stmt = check_read_only(sql)
    engine = readonly_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA query_only=ON")
            elif engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cur.execute(stmt)  # the user's query is the point of this command
                if cur.description is None:
                    raise UsageError("the statement returned no rows (not a query)")
                columns = [d[0] for d in cur.description]
                rows = [tuple(r) for r in cur.fetchall()]
            finally:
                cur.close()
                conn.rollback()
    except DBAPIError as e:
        raise UsageError(f"SQL error: {str(e.orig).strip()}") from e
    except Exception as e:  # DBAPI errors raised by the raw cursor
        if isinstance(e, UsageError):
            raise
        if type(e).__module__.split(".")[0] in {"sqlite3", "psycopg2", "psycopg"}:
            raise UsageError(f"SQL error: {str(e).strip()}") from e
        raise
    finally:
        engine.dispose()
    return _frame(columns, rows)
