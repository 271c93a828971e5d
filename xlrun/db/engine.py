"""Database URLs, engines and migrations.

The URL comes from ``--db``, else ``XLRUN_DB``, else ``sqlite:///xlrun.db`` in the working
directory; a bare file path means SQLite. :func:`resolve_url` checks it before anything is
created (a supported dialect and an installed driver; a plain path that does not look like a
mistyped URL). :func:`get_engine` applies the Alembic migrations in ``xlrun/migrations/`` on
first use (under a lock, so workers racing on a new database migrate it once), refuses a database
written by a newer xlrun, and with ``create=False`` (commands that only read) never creates
a SQLite file. Faults a user can fix (read-only, corrupt, unopenable) become one-line
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

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool

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
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None and engine.dialect.name == "sqlite" and engine.url.database:
        return " " + engine.url.database  # a file: URI
    return " " + (str(path) if path else _safe(engine.url))


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


def get_engine(url: str | None = None, *, migrate: bool = True, create: bool = True) -> Engine:
    """An engine for ``url`` with the schema migrated to the newest revision.

    ``create=False`` for commands that only read: a SQLite file must exist already.

    Raises:
        UsageError: a bad URL, no database (``create=False``), a database newer than this
            xlrun, or one that is read-only, not a database, or cannot be opened.
        DatabaseUnavailable: the server cannot be reached.
    """
    engine = make_engine(url, create=create)
    try:
        if migrate:
            upgrade(engine)
        else:
            check_not_newer(engine)
    except DBAPIError as e:
        known = explain_db_error(e, engine)
        engine.dispose()
        if known is not None:
            raise known from e
        if isinstance(e, OperationalError):
            raise DatabaseUnavailable(
                f"cannot reach the database {_safe(engine.url)}: {mask(_message(e))}") from e
        raise
    except BaseException:
        engine.dispose()
        raise
    return engine
