"""Database URLs, engines and migrations.

The URL comes from ``--db``, else ``XLRUN_DB``, else ``sqlite:///xlrun.db`` in the working
directory; a bare file path means SQLite. :func:`get_engine` applies the Alembic migrations
in ``migrations/`` on first use (under a lock, so workers racing on a new database migrate it
once). On SQLite, foreign keys are enforced and WAL mode lets readers work beside a writer.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import StaticPool

from xlrun.errors import DatabaseUnavailable, UsageError

DEFAULT_URL = "sqlite:///xlrun.db"
_PG_LOCK_KEY = 7_242_100_531  # advisory lock id for migrations


def resolve_url(url: str | None = None) -> str:
    """``url``, else ``$XLRUN_DB``, else ``sqlite:///xlrun.db``; a plain path means SQLite."""
    url = url or os.environ.get("XLRUN_DB") or DEFAULT_URL
    if "://" not in url:
        url = f"sqlite:///{Path(url).expanduser().resolve()}"
    try:
        make_url(url)
    except ArgumentError as e:
        raise UsageError(f"not a database URL: {url!r} (expected e.g. sqlite:///path.db or "
                         "postgresql+psycopg2://user@host/db)") from e
    return url


def migrations_dir() -> Path:
    """The Alembic environment: ``migrations/`` beside the package (source checkout)."""
    here = Path(__file__).resolve().parents[2] / "migrations"
    if (here / "env.py").is_file():
        return here
    packaged = Path(__file__).resolve().parents[1] / "_migrations"
    if (packaged / "env.py").is_file():
        return packaged
    raise FileNotFoundError("xlrun's migrations folder is missing; reinstall xlrun")


SQLITE_BUSY_TIMEOUT_S = 120
"""How long a SQLite writer waits for another's transaction. One run's result set (on
XQuAD-R ~157k query rows plus top-k rows) is written in one transaction of ~10-20 s, and
several workers may queue behind it."""


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cur.close()


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (resolved), without migrating."""
    url = resolve_url(url)
    u = make_url(url)
    if u.get_backend_name() == "sqlite":
        db = u.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        else:
            engine = create_engine(url, poolclass=StaticPool,
                                   connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        if db and db != ":memory:":
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(url: str):  # noqa: ANN201 - alembic.config.Config
    """An Alembic config pointing at xlrun's migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration's revision id."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

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


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (default: the newest)."""
    from alembic import command

    with _migration_lock(engine):
        if revision == "head" and current_revision(engine) == head_revision():
            return
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)


def get_engine(url: str | None = None, *, migrate: bool = True) -> Engine:
    """An engine for ``url`` with the schema migrated to the newest revision.

    Raises:
        DatabaseUnavailable: the server cannot be reached.
    """
    engine = make_engine(url)
    try:
        if migrate:
            upgrade(engine)
        else:
            with engine.connect():
                pass
    except OperationalError as e:
        raise DatabaseUnavailable(
            f"cannot reach the database {engine.url.render_as_string(hide_password=True)}: "
            f"{str(e.orig).strip().splitlines()[0] if e.orig else e}") from e
    return engine
