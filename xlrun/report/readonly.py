"""Read-only SQL for ``xlrun sql``: one statement, no writes, whatever the text says.

Three layers, each enough on its own for the usual cases:

1. **A tokenizer of the database's own dialect** (:func:`tokenize`): Postgres quoting
   (``'…'`` with ``''``, ``E'…'`` with backslash escapes, ``$tag$…$tag$`` only where a token
   starts, ``U&'…'``, ``"…"``, nested ``/* */``) or SQLite quoting (``'…'``, ``"…"``,
   ```…```, ``[…]``). The text must be ONE statement whose first word is a reading keyword
   (:data:`READ_KEYWORDS`); ``COMMIT``, ``ROLLBACK``, ``BEGIN``, ``SET``, ``RESET``, ``DO``,
   ``CALL``, ``COPY``, ``INSERT`` … are refused before anything is sent.
2. **The server parses it as one statement.** Postgres: the text is first sent as a
   prepared statement over the extended protocol (``PQprepare``), which the server refuses
   for more than one command; only then is it executed (psycopg2 through libpq's
   ``PQprepare``, pg8000 through its ``prepare_statement``; psycopg 3 executes it as a
   server-side prepared statement). SQLite: ``sqlite3`` executes one statement and refuses a
   text holding more.
3. **A connection that cannot write.** Postgres: ``SET SESSION CHARACTERISTICS AS
   TRANSACTION READ ONLY`` (and ``default_transaction_read_only``), the statement runs in a
   READ ONLY transaction that is rolled back, and the connection is closed. SQLite: the file
   is opened with a ``mode=ro`` URI and ``PRAGMA query_only=ON``.
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import polars as pl
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from xlrun.db.engine import resolve_url
from xlrun.errors import UsageError

READ_KEYWORDS: tuple[str, ...] = ("select", "with", "values", "explain", "table", "show")
"""A query must start with one of these."""

REFUSED_HINT = ("COMMIT, ROLLBACK, BEGIN, SET, RESET, DO, CALL, COPY and every writing "
                "statement are refused")


@dataclass(frozen=True)
class Token:
    """One lexical token: ``kind`` is ``space``, ``comment``, ``string``, ``ident``
    (a quoted identifier), ``word``, ``semicolon`` or ``other``."""

    kind: str
    text: str


_WORD = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
"""A keyword or identifier; both dialects allow ``$`` after the first character."""
_PG_DOLLAR = re.compile(r"\$([A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_NUMBER = re.compile(r"(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?")


def _quoted(sql: str, i: int, quote_char: str, backslash: bool) -> int:
    """End (exclusive) of the quoted run opened at ``sql[i]``; ``quote_char`` doubled is an
    escaped quote, and with ``backslash`` a backslash escapes the next character.

    Raises:
        UsageError: the quote is never closed.
    """
    j, n = i + 1, len(sql)
    while j < n:
        ch = sql[j]
        if backslash and ch == "\\":
            j += 2
            continue
        if ch == quote_char:
            if j + 1 < n and sql[j + 1] == quote_char:
                j += 2
                continue
            return j + 1
        j += 1
    raise UsageError(f"unterminated quote {quote_char} opened at character {i + 1} of the query")


def _pg_comment(sql: str, i: int) -> int:
    """End of the (nested, as Postgres nests them) block comment opened at ``sql[i]``."""
    depth, j, n = 0, i, len(sql)
    while j < n:
        if sql.startswith("/*", j):
            depth += 1
            j += 2
        elif sql.startswith("*/", j):
            depth -= 1
            j += 2
            if depth == 0:
                return j
        else:
            j += 1
    raise UsageError(f"unterminated /* comment opened at character {i + 1} of the query")


def tokenize(sql: str, dialect: str = "postgresql", *,
             backslash_quotes: bool = False) -> Iterator[Token]:
    """The tokens of ``sql`` as the ``dialect``'s own lexer sees quotes, comments and ``;``.

    ``backslash_quotes``: Postgres with ``standard_conforming_strings = off`` (backslashes
    escape in plain ``'…'`` strings too).

    Raises:
        UsageError: an unterminated quote or comment.
    """
    pg = dialect == "postgresql"
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch.isspace():
            j = i + 1
            while j < n and sql[j].isspace():
                j += 1
            yield Token("space", sql[i:j])
        elif sql.startswith("--", i):
            nl = sql.find("\n", i)
            j = n if nl < 0 else nl + 1
            yield Token("comment", sql[i:j])
        elif sql.startswith("/*", i):
            if pg:
                j = _pg_comment(sql, i)
            else:  # SQLite: not nested; an unterminated comment runs to the end
                close = sql.find("*/", i + 2)
                j = n if close < 0 else close + 2
            yield Token("comment", sql[i:j])
        elif ch == "'":
            j = _quoted(sql, i, "'", pg and backslash_quotes)
            yield Token("string", sql[i:j])
        elif ch == '"' or (not pg and ch == "`"):
            j = _quoted(sql, i, ch, False)
            yield Token("ident", sql[i:j])
        elif not pg and ch == "[":
            close = sql.find("]", i + 1)
            if close < 0:
                raise UsageError(f"unterminated [ opened at character {i + 1} of the query")
            j = close + 1
            yield Token("ident", sql[i:j])
        elif pg and ch == "$" and (m := _PG_DOLLAR.match(sql, i)):
            delim = m.group(0)
            close = sql.find(delim, m.end())
            if close < 0:
                raise UsageError(f"unterminated dollar quote {delim} opened at character "
                                 f"{i + 1} of the query")
            j = close + len(delim)
            yield Token("string", sql[i:j])
        elif ch.isdigit() or (ch == "." and i + 1 < n and sql[i + 1].isdigit()):
            m = _NUMBER.match(sql, i)
            j = m.end() if m else i + 1
            yield Token("other", sql[i:j])
        elif m := _WORD.match(sql, i):
            j = m.end()
            word = m.group(0)
            low = word.lower()
            if j < n and sql[j] == "'" and (
                    (pg and low in ("e", "b", "x", "n", "u&")) or (not pg and low == "x")):
                k = _quoted(sql, j, "'", pg and (low == "e" or backslash_quotes))
                yield Token("string", sql[i:k])
                j = k
            elif pg and low == "u" and sql.startswith("&'", j):
                k = _quoted(sql, j + 1, "'", backslash_quotes)
                yield Token("string", sql[i:k])
                j = k
            elif pg and low == "u" and sql.startswith('&"', j):
                k = _quoted(sql, j + 1, '"', False)
                yield Token("ident", sql[i:k])
                j = k
            else:
                yield Token("word", word)
        elif ch == ";":
            j = i + 1
            yield Token("semicolon", ";")
        else:
            j = i + 1
            yield Token("other", ch)
        i = j


def split_statement(sql: str, dialect: str = "postgresql", *,
                    backslash_quotes: bool = False) -> str:
    """The one statement in ``sql`` without a trailing ``;``.

    Raises:
        UsageError: ``sql`` is empty, holds more than one statement, or leaves a quote or
            comment open.
    """
    end: int | None = None
    pos = 0
    for tok in tokenize(sql, dialect, backslash_quotes=backslash_quotes):
        if tok.kind == "semicolon":
            if end is None:
                end = pos
        elif end is not None and tok.kind not in ("space", "comment"):
            raise UsageError("xlrun sql runs exactly one statement; remove everything after "
                             "the first ';'")
        pos += len(tok.text)
    stmt = (sql if end is None else sql[:end]).strip()
    if all(t.kind in ("space", "comment")
           for t in tokenize(stmt, dialect, backslash_quotes=backslash_quotes)):
        raise UsageError("empty SQL query")
    return stmt


def first_word(stmt: str, dialect: str = "postgresql", *,
               backslash_quotes: bool = False) -> str | None:
    """The statement's first keyword (lower case), skipping comments and ``(``."""
    for tok in tokenize(stmt, dialect, backslash_quotes=backslash_quotes):
        if tok.kind in ("space", "comment") or tok.text == "(":
            continue
        return tok.text.lower() if tok.kind == "word" else None
    return None


def check_read_only(sql: str, dialect: str = "postgresql", *,
                    backslash_quotes: bool = False) -> str:
    """The single statement of ``sql`` if it starts with a reading keyword.

    Raises:
        UsageError: several statements, or one that would write or control the transaction
            (INSERT, DELETE, DROP, COMMIT, SET, ...).
    """
    stmt = split_statement(sql, dialect, backslash_quotes=backslash_quotes)
    word = first_word(stmt, dialect, backslash_quotes=backslash_quotes) or ""
    if word not in READ_KEYWORDS:
        raise UsageError(f"xlrun sql is read-only: {word.upper() or stmt[:20]!r} statements are "
                         f"refused ({REFUSED_HINT}); start the query with one of: "
                         f"{', '.join(k.upper() for k in READ_KEYWORDS)}")
    return stmt


def _sqlite_ro_url(path: str) -> str:
    return f"sqlite:///file:{quote(path, safe='/')}?mode=ro&uri=true"


def readonly_engine(url: str | None = None) -> Engine:
    """An engine that opens the database read-only (SQLite files: a ``mode=ro`` URI).

    Raises:
        UsageError: a bad URL, or no database file at a SQLite path.
    """
    u = make_url(resolve_url(url))
    if u.get_backend_name() == "sqlite":
        db = u.database
        if db and db != ":memory:" and not db.startswith("file:"):
            if not Path(db).is_file():
                raise UsageError(f"no database file at {db}")
            return create_engine(_sqlite_ro_url(db))
        return create_engine(u)
    return create_engine(u, connect_args={"options": "-c default_transaction_read_only=on"}
                         if u.get_driver_name() in ("psycopg2", "psycopg") else {})


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
        return pl.DataFrame(text, schema=dict.fromkeys(names, pl.String), orient="row")


def _libpq_prepare() -> Any:
    """libpq's ``PQprepare`` (and friends) as linked into psycopg2, or ``None``."""
    try:
        import psycopg2._psycopg as ext  # deferred on purpose: optional (Postgres only)

        lib = ctypes.CDLL(ext.__file__)
        prepare, status, message, clear = (lib.PQprepare, lib.PQresultStatus,
                                           lib.PQresultErrorMessage, lib.PQclear)
    except (ImportError, OSError, AttributeError):
        return None
    prepare.restype = ctypes.c_void_p
    prepare.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int,
                        ctypes.c_void_p]
    status.restype, status.argtypes = ctypes.c_int, [ctypes.c_void_p]
    message.restype, message.argtypes = ctypes.c_char_p, [ctypes.c_void_p]
    clear.restype, clear.argtypes = None, [ctypes.c_void_p]
    return prepare, status, message, clear


_PGRES_COMMAND_OK = 1

SEVERAL_STATEMENTS = "xlrun sql runs exactly one statement; the server reads several in this text"
"""The error when the server (not the tokenizer) finds more than one statement."""


def _server_checks_one_statement(dbapi_conn: Any, stmt: str) -> bool:
    """Parse ``stmt`` on the server as a prepared statement (the extended protocol accepts
    exactly one command). ``False`` when this driver gives no access to libpq.

    Raises:
        UsageError: the server sees several statements, or cannot parse the statement.
    """
    ptr = getattr(dbapi_conn, "pgconn_ptr", None)
    funcs = _libpq_prepare() if ptr else None
    if funcs is None:
        return False
    prepare, status, message, clear = funcs
    import psycopg2.extensions  # deferred on purpose: optional (Postgres only)

    codec = psycopg2.extensions.encodings.get(dbapi_conn.encoding, "utf-8")
    res = prepare(ptr, b"", stmt.encode(codec), 0, None)
    try:
        if not res or status(res) != _PGRES_COMMAND_OK:
            msg = (message(res) if res else b"").decode(codec, "replace").strip()
            msg = re.sub(r"^ERROR:\s*", "", msg)
            if "multiple commands" in msg:
                raise UsageError(SEVERAL_STATEMENTS)
            raise UsageError(f"SQL error: {msg or 'the server refused the statement'}")
    finally:
        if res:
            clear(res)
    return True


def _fetch(cur: Any) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of an executed DB-API cursor; a statement without rows is an
    error (``xlrun sql`` answers queries)."""
    if cur.description is None:
        raise UsageError("the statement returned no rows (not a query)")
    return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]


def _run_postgres(engine: Engine, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    raw = engine.raw_connection()
    try:
        conn = raw.driver_connection
        driver = engine.dialect.driver
        psycopg2 = driver == "psycopg2"
        conn.rollback()
        if psycopg2:
            conn.autocommit = True
        cur = conn.cursor()
        try:
            # every transaction of this session is READ ONLY (the connection was also opened
            # with default_transaction_read_only=on)
            cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            cur.execute("SET default_transaction_read_only = on")
            cur.execute("SHOW standard_conforming_strings")
            backslash = str(cur.fetchone()[0]).lower() == "off"
            if not psycopg2:
                conn.commit()
            stmt = check_read_only(sql, "postgresql", backslash_quotes=backslash)
            if psycopg2:
                _server_checks_one_statement(conn, stmt)
                conn.autocommit = False
                conn.set_session(readonly=True)  # BEGIN READ ONLY
            elif driver == "pg8000":
                # pg8000 sends a text without parameters over the simple protocol, which runs
                # several commands: parse it as a prepared statement first (one command only)
                name = conn.prepare_statement(stmt, ())[0]
                conn.close_prepared_statement(name)
            if driver == "psycopg":
                # psycopg 3 prepares it on the server, which parses exactly one command
                cur.execute(stmt, prepare=True)
            else:
                cur.execute(stmt)  # the user's query is the point of this command
            columns, rows = _fetch(cur)
        finally:
            cur.close()
            conn.rollback()
    finally:
        raw.invalidate()  # never hand this session back to a pool
    return columns, rows


def _run_sqlite(engine: Engine, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    stmt = check_read_only(sql, "sqlite")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA query_only=ON")
        cur = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cur.execute(stmt)  # sqlite3 runs one statement and refuses a text with more
            columns, rows = _fetch(cur)
        finally:
            cur.close()
            conn.rollback()
    return columns, rows


def run_readonly(sql: str, url: str | None = None) -> pl.DataFrame:
    """Run one read-only query and return its rows.

    Raises:
        UsageError: several statements, a writing statement, or a database error.
    """
    dialect = make_url(resolve_url(url)).get_backend_name()
    check_read_only(sql, "postgresql" if dialect == "postgresql" else "sqlite")
    engine = readonly_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            columns, rows = _run_postgres(engine, sql)
        else:
            columns, rows = _run_sqlite(engine, sql)
    except DBAPIError as e:
        raise UsageError(f"SQL error: {str(e.orig).strip()}") from e
    except Exception as e:  # DBAPI errors raised by the raw cursor
        if isinstance(e, UsageError):
            raise
        if type(e).__module__.split(".")[0] in {"sqlite3", "psycopg2", "psycopg", "pg8000"}:
            if "multiple commands" in str(e):
                raise UsageError(SEVERAL_STATEMENTS) from e
            raise UsageError(f"SQL error: {str(e).strip()}") from e
        raise
    finally:
        engine.dispose()
    return _frame(columns, rows)
