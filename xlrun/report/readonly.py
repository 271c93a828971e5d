"""Read-only SQL for ``xlrun sql``: one query, no writes, no side effects, whatever the text
says; rows streamed.

Four layers, each enough on its own for the usual cases:

1. **A tokenizer of the database's own dialect** (:func:`tokenize`): Postgres quoting
   (``'…'`` with ``''``, ``E'…'`` with backslash escapes, ``$tag$…$tag$`` only where a token
   starts, ``U&'…'``, ``"…"``, nested ``/* */``) or SQLite quoting (``'…'``, ``"…"``,
   ```…```, ``[…]``). The text must be ONE statement whose first word is a reading keyword
   (:data:`READ_KEYWORDS`); ``COMMIT``, ``ROLLBACK``, ``BEGIN``, ``SET``, ``RESET``, ``DO``,
   ``CALL``, ``COPY``, ``INSERT`` … are refused before anything is sent.
2. **A real SQL parser and an allow-list of functions** (:mod:`xlrun.report.allowlist`):
   sqlglot parses the statement in the same dialect; it must be a pure query calling only
   allow-listed functions (no ``dblink_exec``, ``lo_export``, ``pg_terminate_backend``,
   ``set_config``, ``nextval`` …). Text it cannot parse is refused as "could not parse".
3. **The server parses it as one statement.** Postgres: the text is first sent as a
   prepared statement over the extended protocol (``PQprepare``; pg8000's
   ``prepare_statement``), which the server refuses for more than one command. SQLite:
   ``sqlite3`` executes one statement and refuses a text holding more.
4. **A connection that cannot write.** Postgres: ``SET SESSION CHARACTERISTICS AS
   TRANSACTION READ ONLY`` (and ``default_transaction_read_only``), optionally ``SET ROLE``
   to a reader role (``xlrun db reader-role``), the statement runs in a READ ONLY
   transaction that is rolled back, and the connection is closed. SQLite: the file is
   opened through a URI that cannot create it (``mode=rw``) with ``PRAGMA query_only=ON``,
   which refuses every write.

Rows are streamed (a server-side cursor on Postgres, ``fetchmany`` on SQLite) in batches of
:data:`BATCH_ROWS`, so memory stays bounded whatever the result's size. Ctrl-C (and SIGTERM)
cancels the query on the server; a Postgres session also checks every second whether its
client is still there (``client_connection_check_interval``), so a killed ``xlrun sql`` does
not leave its query running; ``timeout_s`` bounds the run time.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import polars as pl
from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from xlrun.db.engine import resolve_url, sqlite_read_engine, sqlite_read_target
from xlrun.errors import UsageError, XlrunError
from xlrun.report.allowlist import check_query, could_not_parse

READ_KEYWORDS: tuple[str, ...] = ("select", "with", "values", "explain", "table", "show")
"""A query must start with one of these."""

CURSOR_KEYWORDS = frozenset({"select", "with", "values", "table"})
"""Statements a Postgres cursor can stream (``DECLARE … CURSOR FOR``)."""

WRITE_KEYWORDS = frozenset({
    "abort", "alter", "analyze", "attach", "begin", "call", "checkpoint", "close",
    "cluster", "comment", "commit", "copy", "create", "deallocate", "declare", "delete",
    "detach", "discard", "do", "drop", "end", "execute", "fetch", "grant", "import",
    "insert", "listen", "load", "lock", "merge", "move", "notify", "pragma", "prepare",
    "reassign", "refresh", "reindex", "release", "replace", "reset", "revoke", "rollback",
    "savepoint", "security", "set", "start", "truncate", "unlisten", "update", "upsert",
    "vacuum"})
"""First words of statements that write or control the session: refused as such."""

REFUSED_HINT = ("COMMIT, ROLLBACK, BEGIN, SET, RESET, DO, CALL, COPY and every writing "
                "statement are refused")

BATCH_ROWS = 1000
"""Rows fetched at a time: what ``xlrun sql`` holds in memory besides its output."""

CLIENT_CHECK_MS = 1000
"""Postgres ≥ 14 checks this often during a query whether the client is still connected,
and cancels the query when it is gone (a killed ``xlrun sql``)."""


class QueryInterrupted(XlrunError):
    """Ctrl-C or SIGTERM stopped the query (the server was told to cancel it): exit 130."""

    exit_code = 130


class QueryTimeout(XlrunError):
    """The query ran longer than the time it was given."""


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
    raise UsageError(f"could not parse the query: unterminated quote {quote_char} opened at character {i + 1} of the query")


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
    raise UsageError(f"could not parse the query: unterminated /* comment opened at character {i + 1} of the query")


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
                raise UsageError(f"could not parse the query: unterminated [ opened at character {i + 1} of the query")
            j = close + 1
            yield Token("ident", sql[i:j])
        elif pg and ch == "$" and (m := _PG_DOLLAR.match(sql, i)):
            delim = m.group(0)
            close = sql.find(delim, m.end())
            if close < 0:
                raise UsageError(f"could not parse the query: unterminated dollar quote {delim} opened at character "
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


EXPLAIN_OPTIONS = frozenset({"analyze", "analyse", "verbose", "query", "plan"})
"""Words that may follow ``EXPLAIN`` before the query (Postgres' old syntax, SQLite's
``QUERY PLAN``); Postgres' ``EXPLAIN (option, …)`` list is skipped as a whole."""


def _code(tokens: list[Token]) -> list[tuple[int, Token]]:
    """(offset, token) of the tokens that are not space or comments."""
    out, pos = [], 0
    for t in tokens:
        if t.kind not in ("space", "comment"):
            out.append((pos, t))
        pos += len(t.text)
    return out


def _explained(stmt: str, tokens: list[Token], dialect: str) -> str:
    """The query an ``EXPLAIN`` statement explains (its options skipped).

    Raises:
        UsageError: no query follows, or the option list is not closed.
    """
    code = _code(tokens)[1:]  # after EXPLAIN
    i = 0
    if dialect == "postgresql" and i < len(code) and code[i][1].text == "(":
        depth = 0
        while i < len(code):
            depth += {"(": 1, ")": -1}.get(code[i][1].text, 0)
            i += 1
            if depth == 0:
                break
    while i < len(code) and code[i][1].kind == "word" and \
            code[i][1].text.lower() in EXPLAIN_OPTIONS:
        i += 1
    if i >= len(code):
        raise could_not_parse(dialect, "EXPLAIN needs a query to explain")
    return stmt[code[i][0]:]


def _check_show(tokens: list[Token], dialect: str) -> None:
    """``SHOW name`` (Postgres): one setting, or ``SHOW ALL``.

    Raises:
        UsageError: anything else.
    """
    words = [t for _, t in _code(tokens)][1:]
    shape = [t.kind if t.text != "." else "." for t in words]
    if dialect != "postgresql" or shape not in (["word"], ["word", ".", "word"]):
        raise could_not_parse(dialect, "SHOW takes the name of one setting (Postgres)")


def check_read_only(sql: str, dialect: str = "postgresql", *,
                    backslash_quotes: bool = False) -> str:
    """The single statement of ``sql`` if it is a query ``xlrun sql`` may run: it starts with
    a reading keyword, sqlglot parses it, it writes nothing and calls only allow-listed
    functions (:func:`xlrun.report.allowlist.check_query`); ``EXPLAIN`` is judged by the
    query it explains.

    Raises:
        UsageError: "could not parse …" for text that is not one parseable query; a refusal
            for several statements, a statement that would write or control the transaction
            (INSERT, DELETE, DROP, COMMIT, SET, ...) or a function off the allow-list.
    """
    stmt = split_statement(sql, dialect, backslash_quotes=backslash_quotes)
    tokens = list(tokenize(stmt, dialect, backslash_quotes=backslash_quotes))
    word = first_word(stmt, dialect, backslash_quotes=backslash_quotes) or ""
    if word in WRITE_KEYWORDS:
        raise UsageError(f"xlrun sql is read-only: {word.upper()!r} statements are refused "
                         f"({REFUSED_HINT}); start the query with one of: "
                         f"{', '.join(k.upper() for k in READ_KEYWORDS)}")
    if word not in READ_KEYWORDS:
        shown = word.upper() or stmt[:20]
        raise could_not_parse(dialect, f"{shown!r} does not start a query; start it with one "
                              f"of: {', '.join(k.upper() for k in READ_KEYWORDS)}")
    if word == "show":
        _check_show(tokens, dialect)
        return stmt
    query = stmt
    if word == "explain":
        query = _explained(stmt, tokens, dialect)
        inner = first_word(query, dialect, backslash_quotes=backslash_quotes) or ""
        if inner not in CURSOR_KEYWORDS:
            raise UsageError(f"xlrun sql is read-only: EXPLAIN {inner.upper()} is refused; "
                             "explain a query (SELECT, WITH, VALUES or TABLE)")
        tokens = list(tokenize(query, dialect, backslash_quotes=backslash_quotes))
    check_query(query, dialect, [(t.kind, t.text) for t in tokens])
    return stmt


# ----------------------------------------------------------------------------- engines
def readonly_engine(url: str | None = None) -> Engine:
    """An engine that opens the database read-only: a SQLite file through a ``mode=rw`` URI
    (never ``rwc``: the file is never created; ``mode=ro`` when the URL asks for it) with
    ``PRAGMA query_only=ON`` on every connection, a WAL file on read-only media
    ``immutable`` (:func:`xlrun.db.engine.sqlite_read_engine`); Postgres with
    ``default_transaction_read_only`` (psycopg2, psycopg).

    Raises:
        UsageError: a bad URL, no database file (or an empty one) at a SQLite path.
    """
    resolved = resolve_url(url)
    u = make_url(resolved)
    if u.get_backend_name() == "sqlite":
        path, params = sqlite_read_target(resolved)
        if path is None:
            return create_engine("sqlite://")
        return sqlite_read_engine(path, mode="ro" if "mode=ro" in resolved else "rw",
                                  params=params)
    return create_engine(u, connect_args={"options": "-c default_transaction_read_only=on"}
                         if u.get_driver_name() in ("psycopg2", "psycopg")
                         and "options" not in u.query else {})


# ----------------------------------------------------------------------------- rows
def unique_columns(columns: list[str]) -> tuple[list[str], dict[str, str]]:
    """Column names made unique (a repeated ``a`` becomes ``a_2``, ``a_3``, … skipping names
    the query already uses) and {new name: original} for the renamed ones."""
    taken = set(columns)
    seen: set[str] = set()
    out: list[str] = []
    renamed: dict[str, str] = {}
    for c in columns:
        name = c
        if name in seen:
            k = 2
            while f"{c}_{k}" in taken or f"{c}_{k}" in seen:
                k += 1
            name = f"{c}_{k}"
            renamed[name] = c
        seen.add(name)
        out.append(name)
    return out, renamed


@dataclass
class Rows:
    """An open query: its column names (as the database gives them, possibly repeated) and
    its rows in batches, read as they are consumed."""

    columns: list[str]
    batches: Iterator[list[tuple[Any, ...]]]


@dataclass
class _Stop:
    """What stopped a query early: a signal (Ctrl-C, SIGTERM) or the deadline."""

    deadline: float | None = None
    signal: int | None = None

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def remaining_ms(self) -> int | None:
        if self.deadline is None:
            return None
        return max(1, int((self.deadline - time.monotonic()) * 1000))


@contextlib.contextmanager
def _signals_cancel(stop: _Stop) -> Iterator[None]:
    """While the query runs, SIGINT and SIGTERM raise ``KeyboardInterrupt`` (recorded in
    ``stop``) so the drivers cancel it on the server. Only in the main thread (where Python
    runs signal handlers); elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        stop.signal = signum
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _interrupted(stop: _Stop, timeout_s: float | None) -> XlrunError:
    if stop.signal is not None:
        name = signal.Signals(stop.signal).name
        return QueryInterrupted(f"interrupted ({name}): the query was cancelled")
    return QueryTimeout(f"the query ran longer than --timeout {timeout_s:g} s and was "
                        "stopped")


def _db_error(e: BaseException) -> UsageError:
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip()
    if "multiple commands" in text:
        return UsageError(SEVERAL_STATEMENTS)
    return UsageError(f"SQL error: {text.splitlines()[0] if text else type(orig).__name__}")


_DRIVER_MODULES = frozenset({"sqlite3", "psycopg2", "psycopg", "pg8000"})


def _is_driver_error(e: BaseException) -> bool:
    return isinstance(e, DBAPIError) or type(e).__module__.split(".")[0] in _DRIVER_MODULES


def _decode_text(raw: bytes) -> str:
    """SQLite text as UTF-8; bytes that are not valid UTF-8 are shown as ``\\xNN``."""
    return raw.decode("utf-8", "backslashreplace")


# ----------------------------------------------------------------------------- postgres
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


def _prepare_error(msg: str) -> UsageError:
    msg = re.sub(r"^ERROR:\s*", "", msg.strip())
    if "multiple commands" in msg:
        return UsageError(SEVERAL_STATEMENTS)
    return UsageError(f"SQL error: {msg.splitlines()[0] if msg else 'the server refused the statement'}")


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
            raise _prepare_error((message(res) if res else b"").decode(codec, "replace"))
    finally:
        if res:
            clear(res)
    return True


def _psycopg3_checks_one_statement(conn: Any, stmt: str) -> None:
    """psycopg 3: parse ``stmt`` as an unnamed prepared statement (libpq's ``PQprepare``).

    Raises:
        UsageError: several statements, or a statement the server cannot parse.
    """
    from psycopg import pq  # deferred on purpose: optional (Postgres only)

    encoding = conn.info.encoding or "utf-8"
    res = conn.pgconn.prepare(b"", stmt.encode(encoding))
    if res.status != pq.ExecStatus.COMMAND_OK:
        raise _prepare_error((res.error_message or b"").decode(encoding, "replace"))


def _psycopg2_wait(stop: _Stop) -> Callable[[Any], None]:
    """A psycopg2 wait callback (psycopg2.extras.wait_select's loop): the query runs
    asynchronously so that Ctrl-C reaches Python, which then cancels it on the server."""
    import select  # deferred on purpose: Postgres only

    def wait(conn: Any) -> None:
        from psycopg2.extensions import POLL_OK, POLL_READ, POLL_WRITE

        while True:
            try:
                state = conn.poll()
                if state == POLL_OK:
                    return
                if state == POLL_READ:
                    select.select([conn.fileno()], [], [])
                elif state == POLL_WRITE:
                    select.select([], [conn.fileno()], [])
                else:
                    raise conn.OperationalError(f"bad state from poll: {state}")
            except KeyboardInterrupt:
                if stop.signal is None:
                    stop.signal = signal.SIGINT
                conn.cancel()  # the server ends the query; poll() then raises its error

    return wait


@contextlib.contextmanager
def _psycopg2_cancellable(stop: _Stop) -> Iterator[None]:
    import psycopg2.extensions  # deferred on purpose: optional (Postgres only)

    previous = psycopg2.extensions.get_wait_callback()
    psycopg2.extensions.set_wait_callback(_psycopg2_wait(stop))
    try:
        yield
    finally:
        psycopg2.extensions.set_wait_callback(previous)


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _setup_postgres_session(conn: Any, cur: Any, driver: str, role: str | None,
                            timeout_ms: int | None) -> bool:
    """READ ONLY session defaults, the client check, the role and the timeout; returns
    whether plain strings take backslash escapes (``standard_conforming_strings = off``)."""
    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cur.execute("SET default_transaction_read_only = on")
    cur.execute("SHOW application_name")
    if not cur.fetchone()[0]:  # unless the URL or PGAPPNAME names it: visible to admins
        cur.execute("SET application_name = 'xlrun sql'")
    cur.execute("SHOW server_version_num")
    if int(cur.fetchone()[0]) >= 140000:
        cur.execute(f"SET client_connection_check_interval = {CLIENT_CHECK_MS}")
    if timeout_ms is not None:
        cur.execute(f"SET statement_timeout = {int(timeout_ms)}")
    if role:
        try:
            cur.execute(f"SET ROLE {_quote_ident(role)}")
        except Exception as e:
            if not _is_driver_error(e):
                raise
            raise UsageError(f"cannot use the role {role!r} (SET ROLE): "
                             f"{str(getattr(e, 'orig', e)).strip().splitlines()[0]}; create "
                             f"it with `xlrun db reader-role {role}`") from e
    cur.execute("SHOW standard_conforming_strings")
    return str(cur.fetchone()[0]).lower() == "off"


def _open_postgres(engine: Engine, sql: str, stack: contextlib.ExitStack, stop: _Stop,
                   role: str | None, timeout_s: float | None, batch_rows: int) -> Rows:
    raw = engine.raw_connection()
    stack.callback(raw.invalidate)  # never hand this session back to a pool
    conn = raw.driver_connection
    driver = engine.dialect.driver
    conn.rollback()
    conn.autocommit = True
    cur = conn.cursor()
    stack.callback(_quietly, cur.close)
    backslash = _setup_postgres_session(conn, cur, driver, role, stop.remaining_ms())
    stmt = check_read_only(sql, "postgresql", backslash_quotes=backslash)
    if driver == "psycopg2":
        _server_checks_one_statement(conn, stmt)
    elif driver == "psycopg":
        _psycopg3_checks_one_statement(conn, stmt)
    elif driver == "pg8000":
        # pg8000 sends a text without parameters over the simple protocol, which runs
        # several commands: parse it as a prepared statement first (one command only)
        name = conn.prepare_statement(stmt, ())[0]
        conn.close_prepared_statement(name)
    conn.autocommit = False
    if driver == "psycopg2":
        conn.set_session(readonly=True)  # BEGIN READ ONLY
        stack.enter_context(_psycopg2_cancellable(stop))
    stack.callback(_quietly, conn.rollback)
    word = first_word(stmt, "postgresql", backslash_quotes=backslash) or ""
    if word in CURSOR_KEYWORDS:
        # a server-side cursor: the server sends BATCH_ROWS rows at a time
        cur.execute(f"DECLARE xlrun_rows NO SCROLL CURSOR FOR {stmt}")  # checked above

        def fetch() -> tuple[list[str], list[tuple[Any, ...]]]:
            # a Ctrl-C whose cancel request reached the server after the previous statement
            # had finished cancelled nothing: stop here
            if stop.signal is not None:
                raise _interrupted(stop, timeout_s)
            if timeout_s is not None:
                if stop.expired():
                    raise _interrupted(stop, timeout_s)
                cur.execute(f"SET LOCAL statement_timeout = {stop.remaining_ms()}")
            cur.execute(f"FETCH FORWARD {int(batch_rows)} FROM xlrun_rows")
            return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]
    else:  # EXPLAIN, SHOW: a few rows
        cur.execute(stmt)  # the user's query is the point of this command
        if cur.description is None:
            raise UsageError("the statement returned no rows (not a query)")
        done = False

        def fetch() -> tuple[list[str], list[tuple[Any, ...]]]:
            nonlocal done
            rows = [] if done else [tuple(r) for r in cur.fetchall()]
            done = True
            return [d[0] for d in cur.description], rows

    columns, first = fetch()

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        rows = first
        while rows:
            yield rows
            if len(rows) < batch_rows:
                return
            rows = fetch()[1]

    return Rows(columns, batches())


def _quietly(fn: Callable[[], object]) -> None:
    """Clean-up that must not hide the error that made it run (a broken connection)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the connection is discarded anyway
        del e


# ----------------------------------------------------------------------------- sqlite
def _open_sqlite(engine: Engine, sql: str, stack: contextlib.ExitStack, stop: _Stop,
                 batch_rows: int) -> Rows:
    stmt = check_read_only(sql, "sqlite")
    conn = stack.enter_context(engine.connect())
    dbapi = conn.connection.dbapi_connection
    dbapi.text_factory = _decode_text  # type: ignore[union-attr]

    def progress() -> int:
        # a Python function, so that a pending Ctrl-C runs its handler here: sqlite3 runs a
        # query without returning to Python otherwise
        return 1 if stop.signal is not None or stop.expired() else 0

    dbapi.set_progress_handler(progress, 10_000)  # type: ignore[union-attr]
    stack.callback(dbapi.set_progress_handler, None, 0)  # type: ignore[union-attr]
    cur = dbapi.cursor()  # type: ignore[union-attr]
    stack.callback(_quietly, cur.close)
    cur.execute(stmt)  # sqlite3 runs one statement and refuses a text with more
    if cur.description is None:
        raise UsageError("the statement returned no rows (not a query)")
    columns = [d[0] for d in cur.description]

    def batches() -> Iterator[list[tuple[Any, ...]]]:
        while rows := cur.fetchmany(batch_rows):
            yield [tuple(r) for r in rows]

    return Rows(columns, batches())


# ----------------------------------------------------------------------------- public
def _sql_dialect(url: str | None) -> str:
    return "postgresql" if make_url(resolve_url(url)).get_backend_name() == "postgresql" \
        else "sqlite"


@contextlib.contextmanager
def open_readonly(sql: str, url: str | None = None, *, role: str | None = None,
                  timeout_s: float | None = None, batch_rows: int = BATCH_ROWS,
                  role_needs_postgres: bool = True) -> Iterator[Rows]:
    """Run one read-only query; its rows are read batch by batch while the caller iterates
    ``Rows.batches`` inside the ``with`` block (then the query is cancelled, rolled back and
    the connection closed).

    ``role``: Postgres only, ``SET ROLE`` to it first (a role made by ``xlrun db
    reader-role``); on SQLite an error, or ignored with ``role_needs_postgres=False`` (a
    role from the environment). ``timeout_s``: stop the query after this many seconds.

    Raises:
        UsageError: "could not parse …", several statements, a writing statement, a function
            off the allow-list, a database error.
        QueryInterrupted: Ctrl-C or SIGTERM (the query is cancelled on the server).
        QueryTimeout: the query ran longer than ``timeout_s``.
    """
    dialect = _sql_dialect(url)
    if role and dialect != "postgresql" and not role_needs_postgres:
        role = None
    if role and dialect != "postgresql":
        raise UsageError("--role needs Postgres (SET ROLE); SQLite has no roles, and "
                         "`xlrun sql` opens a SQLite file read-only")
    check_read_only(sql, dialect)  # refused before anything is opened
    stop = _Stop(None if timeout_s is None else time.monotonic() + timeout_s)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(_signals_cancel(stop))
            engine = readonly_engine(url)
            stack.callback(engine.dispose)
            if dialect == "postgresql":
                rows = _open_postgres(engine, sql, stack, stop, role, timeout_s, batch_rows)
            else:
                rows = _open_sqlite(engine, sql, stack, stop, batch_rows)
            rows.batches = _guarded(rows.batches, stop, timeout_s)
            yield rows
        except (KeyboardInterrupt, Exception) as e:
            known = _translate(e, stop, timeout_s)
            if known is None or known is e:
                raise
            raise known from e


def _translate(e: BaseException, stop: _Stop, timeout_s: float | None) -> BaseException | None:
    """xlrun's error for what stopped a query: a signal, the timeout, text the driver cannot
    decode, a driver error (``None``: not one of these; ``e`` itself: already xlrun's)."""
    if isinstance(e, XlrunError):
        return e
    if isinstance(e, KeyboardInterrupt):
        if stop.signal is None:
            stop.signal = signal.SIGINT
        return _interrupted(stop, timeout_s)
    if isinstance(e, UnicodeDecodeError):
        return UsageError(f"the database returned text that is not valid in its encoding "
                          f"({e.reason}: {e.object[e.start:e.end]!r}); select such a column "
                          "as bytes (e.g. convert_to(col, 'SQL_ASCII') or CAST(col AS BLOB))")
    if not _is_driver_error(e):
        return None
    if stop.signal is not None or stop.expired() or _timed_out(e):
        return _interrupted(stop, timeout_s)
    return _db_error(e)


def _timed_out(e: BaseException) -> bool:
    return "statement timeout" in str(getattr(e, "orig", e))


def _guarded(batches: Iterator[list[tuple[Any, ...]]], stop: _Stop,
             timeout_s: float | None) -> Iterator[list[tuple[Any, ...]]]:
    """The batches, with driver errors raised while fetching turned into xlrun's errors."""
    try:
        for batch in batches:
            yield batch
            if stop.signal is not None or stop.expired():
                raise _interrupted(stop, timeout_s)
    except (KeyboardInterrupt, Exception) as e:
        known = _translate(e, stop, timeout_s)
        if known is None or known is e:
            raise
        raise known from e


def run_readonly(sql: str, url: str | None = None, *, role: str | None = None,
                 timeout_s: float | None = None, limit: int | None = None) -> pl.DataFrame:
    """Run one read-only query and return its rows (at most ``limit``) as a frame; repeated
    column names get ``_2``, ``_3`` … suffixes.

    Raises:
        UsageError: see :func:`open_readonly`.
    """
    collected: list[tuple[Any, ...]] = []
    with open_readonly(sql, url, role=role, timeout_s=timeout_s) as rows:
        names, _ = unique_columns(rows.columns)
        for batch in rows.batches:
            collected.extend(batch)
            if limit is not None and len(collected) >= limit:
                del collected[limit:]
                break
    try:
        return pl.DataFrame(collected, schema=names, orient="row", infer_schema_length=None)
    except (TypeError, pl.exceptions.PolarsError):
        text = [tuple(None if v is None else str(v) for v in r) for r in collected]
        return pl.DataFrame(text, schema=dict.fromkeys(names, pl.String), orient="row")
