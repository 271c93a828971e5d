"""Database URLs, engines and migrations.

The URL comes from ``--db``, else ``XLRUN_DB``, else ``sqlite:///xlrun.db`` in the working
directory; a bare file path means SQLite. :func:`resolve_url` checks it before anything is
created (a supported dialect and an installed driver; a plain path that does not look like a
mistyped URL). :func:`get_engine` applies the Alembic migrations in ``xlrun/migrations/`` on
first use (under a lock, so workers racing on a new database migrate it once) and refuses a
database written by a newer xlrun. Commands that only read use :func:`read_engine`
(``get_engine(create=False)``): it never creates, migrates or writes anything — a SQLite file
must exist and hold a database (a zero-byte file is not one), is opened without the right to
create (``mode=rw``, or ``mode=ro`` when asked) and with ``PRAGMA query_only``, and a WAL
database on read-only media is opened ``immutable``; a Postgres session is READ ONLY; a
database at an older schema revision is an error that says to run ``xlrun db upgrade``.
Faults a user can fix (read-only, corrupt, unopenable) become one-line
:class:`~xlrun.errors.UsageError` s (:func:`explain_db_error`). On SQLite, foreign keys are
enforced and WAL mode lets readers work beside a writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import NullPool, StaticPool

from xlrun.errors import DatabaseUnavailable, UsageError, XlrunError
from xlrun.secrets import mask

DEFAULT_URL = "sqlite:///xlrun.db"
_PG_LOCK_KEY = 7_242_100_531  # advisory lock id for migrations


SUPPORTED_DRIVERS: dict[str, dict[str, tuple[str, str]]] = {
    "sqlite": {"pysqlite": ("sqlite3", "a Python built with sqlite3")},
    "postgresql": {"psycopg2": ("psycopg2", "psycopg2-binary (pip install -e \".[postgres]\")"),
                   "psycopg": ("psycopg", "psycopg[binary]"),
                   "pg8000": ("pg8000", "pg8000")},
}
"""Dialect → driver → (module to import, package to install). The first driver of a dialect
is the one a URL without ``+driver`` uses."""
_URL_EXAMPLES = "e.g. sqlite:///path/to/xlrun.db or postgresql+psycopg2://user@host:5432/xlrun"
_URLISH = re.compile(r"^(postgres(ql)?|sqlite|mysql|mariadb|oracle|mssql)(\+[\w-]*)?(:|/|$)",
                     re.IGNORECASE)


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$XLRUN_DB``, else ``sqlite:///xlrun.db``; a plain path means SQLite.

    The URL is checked before anything is created: a dialect xlrun supports (``sqlite``,
    ``postgresql[+driver]``) whose driver is installed; a plain path holds no ``:`` and does
    not look like a mistyped URL (``postgresql+psycopg2//host/db``).

    Raises:
        UsageError: a malformed URL, an unsupported dialect or driver, a missing driver.
    """
    url = url or os.environ.get("XLRUN_DB") or DEFAULT_URL
    if "://" not in url:
        if ":" in url or "=" in url or _URLISH.match(url):
            raise UsageError(f"not a database URL: {mask(url)!r}: a URL needs '://' "
                             f"({_URL_EXAMPLES}); a plain SQLite file path must not contain ':' "
                             "or '=' (a libpq 'key=value' string is not a URL)")
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    try:
        u = make_url(url)
        port = u.port
    except (ArgumentError, ValueError) as e:
        raise UsageError(f"not a database URL: {mask(url)!r}: the port must be a number "
                         f"({_URL_EXAMPLES})" if isinstance(e, ValueError) else
                         f"not a database URL: {mask(url)!r} ({_URL_EXAMPLES})") from e
    if port is not None and not 1 <= port <= 65535:
        raise UsageError(f"not a database URL: {_safe(u)!r}: port {port} is outside 1-65535")
    name = u.drivername
    dialect, _, driver = name.partition("+")
    if dialect == "postgres":
        raise UsageError(f"unknown database dialect {dialect!r} in {_safe(u)}: write "
                         "postgresql://… (or postgresql+psycopg2://…)")
    if dialect not in SUPPORTED_DRIVERS:
        raise UsageError(f"unknown database dialect {dialect!r} in {_safe(u)}: xlrun supports "
                         f"sqlite and postgresql ({_URL_EXAMPLES})")
    drivers = SUPPORTED_DRIVERS[dialect]
    driver = driver or next(iter(drivers))
    if driver not in drivers:
        raise UsageError(f"unsupported {dialect} driver {driver!r} in {_safe(u)}; use one of: "
                         + ", ".join(f"{dialect}+{d}" for d in drivers))
    module, package = drivers[driver]
    if importlib.util.find_spec(module) is None:
        raise UsageError(f"the database driver {module!r} for {dialect}+{driver} is not "
                         f"installed; install {package}")
    if dialect == "postgresql" and not u.database:
        raise UsageError(f"the URL {_safe(u)} names no database; add /DBNAME ({_URL_EXAMPLES})")
    return url


def _safe(u: URL) -> str:
    """``u`` for messages: the password masked in every form (user information, query)."""
    return mask(u.render_as_string(hide_password=True))


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL (``None`` for in-memory databases and other dialects)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return None
    db = u.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def migrations_dir() -> Path:
    """The Alembic environment: ``xlrun/migrations/`` (package data, so installed copies have
    it too)."""
    return Path(__file__).resolve().parents[1] / "migrations"


SQLITE_BUSY_TIMEOUT_S = 120
"""How long a SQLite writer waits for another's transaction. One run's result set (on
XQuAD-R ~157k query rows plus top-k rows) is written in one transaction of ~10-20 s, and
several workers may queue behind it."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cur.close()


def make_engine(url: str | None = None, *, create: bool = True) -> Engine:
    """An engine for ``url`` (resolved), without migrating.

    ``create=False`` (commands that only read): a SQLite file must already exist; nothing is
    created, not even its folder.

    Raises:
        UsageError: a bad URL, or (``create=False``) no database file at the SQLite path.
    """
    url = resolve_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        db = u.database
        path = sqlite_path(url)
        if path is not None:
            if path.is_dir():
                raise UsageError(f"cannot open the SQLite database {path}: it is a folder")
            if not create and not path.is_file():
                raise UsageError(f"no database at {path} (nothing to read; check --db / "
                                 "XLRUN_DB, or create it with `xlrun submit`)")
            if create:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as e:
                    raise UsageError(f"cannot create the SQLite database {path}: "
                                     f"{e.strerror or e}") from e
        if db and db != ":memory:":
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        else:
            engine = create_engine(url, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        if db and db != ":memory:":
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            except DBAPIError as e:
                if create or not _is_read_only(e):
                    known = explain_db_error(e, engine)
                    engine.dispose()
                    if known is None:
                        raise
                    raise known from e
                # a read-only file can still be read (in its current journal mode)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _message(e: BaseException) -> str:
    orig = getattr(e, "orig", None)
    text_ = str(orig if orig is not None else e).strip()
    return text_.splitlines()[0] if text_ else type(e).__name__


def _is_read_only(e: BaseException) -> bool:
    m = _message(e).lower()
    return "readonly database" in m or "read-only transaction" in m


def _where(engine: Engine | None) -> str:
    if engine is None:
        return ""
    if engine.dialect.name == "sqlite":
        path, _ = sqlite_read_target(engine.url.render_as_string(hide_password=False))
        return f" {path}" if path is not None else " (in memory)"
    return " " + _safe(engine.url)


def _opening_error(e: DBAPIError, engine: Engine) -> XlrunError | None:
    """What to raise when opening ``engine`` failed with ``e``: :func:`explain_db_error`'s
    one line, else :class:`DatabaseUnavailable` for an unreachable server (URL and message
    masked); ``None``: re-raise ``e``."""
    known = explain_db_error(e, engine)
    if known is not None:
        return known
    if isinstance(e, OperationalError):
        return DatabaseUnavailable(
            f"cannot reach the database {_safe(engine.url)}: {mask(_message(e))}")
    return None


def explain_db_error(e: BaseException, engine: Engine | None = None) -> XlrunError | None:
    """A one-line, actionable error for database faults a user causes or can fix (read-only
    database, unopenable path, a file that is not a database or is corrupt, a value too long
    for a column); ``None`` for anything else."""
    m = mask(_message(e))
    low = m.lower()
    where = _where(engine)
    if _is_read_only(e):
        return UsageError(f"the database{where} is read-only ({m}); this command writes to it. "
                          "Read commands (status, show, report, sql, db export) work on it")
    if "unable to open database file" in low:
        return UsageError(f"cannot open the SQLite database{where} (a folder, a missing or "
                          "unwritable folder, or no permission)")
    if ("file is not a database" in low or "malformed" in low or "not a database" in low
            or "file is encrypted" in low):
        return UsageError(f"the file{where} is not an SQLite database, or it is corrupt ({m}); "
                          "point --db elsewhere or restore it from a copy")
    if "value too long" in low or "string data right truncation" in low:
        return UsageError(f"a value is too long for the database ({m})")
    if "disk i/o error" in low or "database or disk is full" in low:
        return XlrunError(f"the database{where} cannot be written: {m}")
    return None


def alembic_config(url: str) -> Config:
    """An Alembic config pointing at xlrun's migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration's revision id."""
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    if engine.dialect.name == "sqlite":
        db = engine.url.database
        if not db or db == ":memory:":
            yield
            return
        # the lock file lives in the temp dir (not beside the user's database); workers on
        # one SQLite file share a machine, so they share this path
        key = hashlib.sha256(str(Path(db).resolve()).encode()).hexdigest()[:16]
        with open(Path(tempfile.gettempdir()) / f"xlrun-migrate-{key}.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
    else:
        yield


def check_not_newer(engine: Engine) -> str | None:
    """The database's revision, if this xlrun knows it.

    Raises:
        UsageError: the database was migrated by a newer xlrun (an unknown revision).
    """
    rev = current_revision(engine)
    if rev is None:
        return None
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = {s.revision for s in script.walk_revisions("base", "heads")}
    if rev not in known:
        raise UsageError(f"this database was written by a newer xlrun (revision {rev}); "
                         "upgrade xlrun")
    return rev


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default: the newest).

    Raises:
        UsageError: the database is newer than this xlrun.
    """
    with _migration_lock(engine):
        current = check_not_newer(engine)
        if revision == "head" and current == head_revision():
            return
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


SQLITE_WAL_MODE = 2
"""Bytes 18 and 19 of a SQLite header in WAL mode (the file format's read/write versions)."""


def sqlite_read_target(url: str) -> tuple[Path | None, dict[str, str]]:
    """The file a SQLite URL names and its other URI parameters (``mode`` and ``uri``
    dropped): a plain path or a ``file:`` URI. ``(None, …)`` for an in-memory database."""
    u = make_url(url)
    db = u.database or ""
    params = {k: str(v) for k, v in u.query.items() if k not in ("uri", "mode")}
    if not db or db == ":memory:":
        return None, params
    if db.startswith("file:"):
        path_part, _, inline = db[len("file:"):].partition("?")
        params.update((k, v) for k, v in parse_qsl(inline) if k not in ("uri", "mode"))
        mode = dict(parse_qsl(inline)).get("mode") or str(u.query.get("mode") or "")
        if mode == "memory" or path_part in ("", ":memory:"):
            return None, params
        if path_part.startswith("//"):  # file://host/path: only an empty host or localhost
            path_part = "/" + path_part[2:].split("/", 1)[-1]
        return Path(path_part).expanduser(), params
    return Path(db).expanduser(), params


def sqlite_uri(path: Path, mode: str, params: dict[str, str] | None = None) -> str:
    """A SQLAlchemy URL opening ``path`` as a SQLite URI with ``mode`` (``ro``, ``rw``: never
    ``rwc``, which creates the file) and ``params``."""
    extra = "".join(f"&{quote(k)}={quote(v)}" for k, v in (params or {}).items())
    return f"sqlite:///file:{quote(str(path.resolve()), safe='/')}?mode={mode}{extra}&uri=true"


def check_sqlite_file(path: Path) -> None:
    """A file a read command can open: it exists, is not a folder and is not empty.

    Raises:
        UsageError: otherwise (nothing is created).
    """
    if path.is_dir():
        raise UsageError(f"cannot open the SQLite database {path}: it is a folder")
    if not path.is_file():
        raise UsageError(f"no database at {path} (nothing to read; check --db / "
                         "XLRUN_DB, or create it with `xlrun submit`)")
    if path.stat().st_size == 0:
        raise UsageError(f"{path} is an empty file, not an xlrun database (read commands "
                         "never turn a file into a database; `xlrun submit` or `xlrun db "
                         "upgrade` creates one)")


def _is_wal_file(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            header = fh.read(20)
    except OSError:
        return False
    return (len(header) == 20 and header.startswith(b"SQLite format 3\x00")
            and header[18] == header[19] == SQLITE_WAL_MODE)


def _query_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only=ON")
    cur.close()


def _probe(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()


def sqlite_read_engine(path: Path, *, mode: str = "rw",
                       params: dict[str, str] | None = None) -> Engine:
    """An engine that reads the SQLite file at ``path`` and cannot create or change it.

    ``mode``: ``rw`` (the default: the file is never created, ``PRAGMA query_only`` refuses
    every write, SQLite may still recover a crashed writer's journal, and it removes the
    ``-wal``/``-shm`` files it made when the last connection closes — a ``mode=ro``
    connection cannot, and leaves them behind) or ``ro``. Every connection has
    ``PRAGMA query_only=ON``. A WAL database whose folder cannot be written (read-only
    media) cannot create its shared-memory file: it is then opened ``immutable=1``, which
    reads the database file alone — unless a ``-wal`` file holds changes not yet copied
    into it, which are then an error rather than silently missing.

    Raises:
        UsageError: no such file, an empty file, a folder, an unreadable or corrupt database,
            or a WAL database on read-only media with pending changes in its ``-wal`` file.
    """
    check_sqlite_file(path)
    # NullPool: each connection closes when returned, so SQLite removes the -wal/-shm files
    # it made for this reader as soon as the command is done with them
    engine = create_engine(sqlite_uri(path, mode, params), poolclass=NullPool,
                           connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", _query_only)
    try:
        _probe(engine)
        return engine
    except DBAPIError as e:
        engine.dispose()
        first = e
    wal = Path(f"{path}-wal")
    low = _message(first).lower()
    cannot_share = ("unable to open database file" in low or "readonly" in low
                    or "read-only" in low)
    if not (cannot_share and _is_wal_file(path)):
        known = explain_db_error(first, engine)
        raise (known or UsageError(f"cannot read the SQLite database {path}: "
                                   f"{_message(first)}")) from first
    if wal.exists() and wal.stat().st_size > 0:
        raise UsageError(
            f"cannot read {path}: it is a WAL database on read-only media (or in a folder "
            f"this user cannot write) and {wal.name} holds changes not yet written into it; "
            "copy both files to a writable folder, or open it once where it can be written"
        ) from first
    engine = create_engine(sqlite_uri(path, "ro", {**(params or {}), "immutable": "1"}),
                           poolclass=NullPool, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_pragmas)
    event.listen(engine, "connect", _query_only)
    try:
        _probe(engine)
    except DBAPIError as e:
        engine.dispose()
        known = explain_db_error(e, engine)
        raise (known or UsageError(f"cannot read the SQLite database {path}: "
                                   f"{_message(e)}")) from e
    return engine


def _pg_read_only_session(dbapi_conn: Any, _record: Any) -> None:
    """Every transaction of a read command's Postgres session is READ ONLY."""
    autocommit = bool(getattr(dbapi_conn, "autocommit", False))
    cur = dbapi_conn.cursor()
    cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
    cur.close()
    if not autocommit:
        dbapi_conn.commit()


def require_current_schema(engine: Engine, revision: str | None) -> None:
    """A read command needs the schema this xlrun writes.

    Raises:
        UsageError: an empty database, or one at an older revision ("run `xlrun db
            upgrade`"); read commands never migrate.
    """
    head = head_revision()
    if revision == head:
        return
    where = _where(engine)
    if revision is None:
        raise UsageError(f"the database{where} holds no xlrun tables; `xlrun submit` or "
                         "`xlrun db upgrade` creates them (read commands never change the "
                         "database)")
    raise UsageError(f"the database{where} is at schema revision {revision}, older than this "
                     f"xlrun's {head}: run `xlrun db upgrade` first (read commands never "
                     "change the database)")


def read_engine(url: str | None = None, *, require_head: bool = True) -> Engine:
    """An engine for a command that only reads (``status``, ``show``, ``report``,
    ``db export``, ``db current``): nothing is created, migrated or written.

    SQLite: the file must exist and be a database (:func:`sqlite_read_engine`; a ``file:``
    URI's ``mode=rwc`` becomes ``rw``). Postgres: every transaction is READ ONLY.
    ``require_head``: the database must be at this xlrun's newest revision (else "run `xlrun
    db upgrade`"); without it only a newer schema is refused (``db current``).

    Raises:
        UsageError: a bad URL, no database, an older (``require_head``) or newer schema, a
            read-only, corrupt or unopenable database.
        DatabaseUnavailable: the server cannot be reached.
    """
    url = resolve_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        path, params = sqlite_read_target(url)
        if path is None:
            engine = create_engine(url, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
        else:
            mode = "ro" if "mode=ro" in url else "rw"
            engine = sqlite_read_engine(path, mode=mode, params=params)
    else:
        engine = create_engine(url, pool_pre_ping=True)
        event.listen(engine, "connect", _pg_read_only_session)
    try:
        revision = check_not_newer(engine)
        if require_head:
            require_current_schema(engine, revision)
    except DBAPIError as e:
        err = _opening_error(e, engine)
        engine.dispose()
        if err is None:
            raise
        raise err from e
    except BaseException:
        engine.dispose()
        raise
    return engine


def get_engine(url: str | None = None, *, migrate: bool = True, create: bool = True) -> Engine:
    """An engine for ``url`` with the schema migrated to the newest revision.

    ``create=False`` for commands that only read: :func:`read_engine` (nothing is created,
    migrated or written; an older schema is an error unless ``migrate=False``).

    Raises:
        UsageError: a bad URL, no database (``create=False``), a database newer than this
            xlrun, or one that is read-only, not a database, or cannot be opened.
        DatabaseUnavailable: the server cannot be reached.
    """
    if not create:
        return read_engine(url, require_head=migrate)
    engine = make_engine(url, create=create)
    try:
        if migrate:
            upgrade(engine)
        else:
            check_not_newer(engine)
    except DBAPIError as e:
        err = _opening_error(e, engine)
        engine.dispose()
        if err is None:
            raise
        raise err from e
    except BaseException:
        engine.dispose()
        raise
    return engine
