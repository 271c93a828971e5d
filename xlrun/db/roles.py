"""A Postgres role that can only read xlrun's results: ``xlrun db reader-role NAME``.

``xlrun sql`` refuses writing statements and functions off its allow-list, but the server is
the only hard boundary: a session of a role that may only ``SELECT`` from xlrun's tables and
views cannot write whatever it calls (``dblink_exec`` then connects as the reader too;
``lo_export``, ``pg_file_write``, ``pg_read_file``, replication slots and signalling other
sessions need privileges the reader lacks). The role made here has no attribute
(``NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS``), owns nothing,
belongs to no role, and holds ``CONNECT`` on the database, ``USAGE`` on the schema and
``SELECT`` on xlrun's tables and views, nothing more; its sessions default to READ ONLY
transactions. What every role gets from ``PUBLIC`` (temporary tables, ``CREATE`` in the
schema on PostgreSQL < 15, executing extension functions such as dblink's) is reported, and
``revoke_public`` takes it from ``PUBLIC`` — every role of the database — where asked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url

from xlrun.db.engine import resolve_url
from xlrun.db.models import VIEWS, Base
from xlrun.errors import UsageError

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
"""A role name xlrun accepts: a lower-case SQL identifier (no quoting surprises)."""

RESERVED_NAMES = frozenset({"public", "postgres", "none", "current_user", "session_user",
                            "current_role"})

READER_ATTRIBUTES = "NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"

PUBLIC_EXTENSIONS = ("dblink", "adminpack")
"""Extensions whose functions reach outside the session (connections, server files):
``revoke_public`` takes ``EXECUTE`` on them from ``PUBLIC``."""

_TABLE_PRIVILEGES = "INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"


@dataclass
class ReaderRole:
    """What :func:`create_reader_role` did: the role, whether it was new, whether it may log
    in, the relations it may read, what was revoked from ``PUBLIC`` and what ``PUBLIC``
    still allows (``public_notes``)."""

    name: str
    created: bool
    login: bool
    schema: str
    relations: list[str]
    revoked: list[str] = field(default_factory=list)
    public_notes: list[str] = field(default_factory=list)


def xlrun_relations() -> list[str]:
    """xlrun's tables and views, and ``alembic_version`` (read commands check the schema's
    revision)."""
    return [*Base.metadata.tables, *VIEWS, "alembic_version"]


def require_postgres(url: str | None) -> str:
    """The resolved URL if it names a Postgres database.

    Raises:
        UsageError: any other database (nothing is opened or created).
    """
    resolved = resolve_url(url)
    if make_url(resolved).get_backend_name() != "postgresql":
        raise UsageError("reader roles are a Postgres feature; on SQLite, `xlrun sql` opens "
                         "the file read-only (mode=ro, query_only) and has no other sessions "
                         "to reach")
    return resolved


def check_role_name(name: str) -> None:
    """Raises:
        UsageError: ``name`` is not a plain lower-case identifier, or is reserved."""
    if not ROLE_NAME.fullmatch(name) or name.startswith("pg_") or name in RESERVED_NAMES:
        raise UsageError(f"invalid role name {name!r}: use lower-case letters, digits and _ "
                         "(at most 63, not starting with a digit or pg_, not public/postgres)")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _existing(conn: Connection, name: str, me: str) -> bool:
    """Whether the role exists; refuses one that is more than a reader.

    Raises:
        UsageError: ``name`` is the current user, has a privileged attribute, belongs to a
            role or owns relations in this database.
    """
    if name == me:
        raise UsageError(f"{name!r} is the role this connection uses; a reader role must be "
                         "another one")
    row = conn.execute(text(
        "SELECT oid, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls "
        "FROM pg_roles WHERE rolname = :n"), {"n": name}).first()
    if row is None:
        return False
    flags = [f for f, on in zip(("SUPERUSER", "CREATEROLE", "CREATEDB", "REPLICATION",
                                 "BYPASSRLS"), row[1:], strict=True) if on]
    if flags:
        raise UsageError(f"the role {name!r} exists and has {', '.join(flags)}: it is not a "
                         "reader role; choose another name")
    groups = conn.execute(text(
        "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
        "WHERE m.member = :o ORDER BY 1"), {"o": row[0]}).scalars().all()
    if groups:
        raise UsageError(f"the role {name!r} exists and belongs to {', '.join(groups)} (whose "
                         "rights it can take with SET ROLE); choose another name")
    owned = conn.execute(text("SELECT count(*) FROM pg_class WHERE relowner = :o"),
                         {"o": row[0]}).scalar_one()
    if owned:
        raise UsageError(f"the role {name!r} exists and owns {owned} relation(s) in this "
                         "database (an owner may change them); choose another name")
    return True


def _extension_functions(conn: Connection) -> list[str]:
    """Signatures of the functions of :data:`PUBLIC_EXTENSIONS` that ``PUBLIC`` may run."""
    return list(conn.execute(text(
        "SELECT p.oid::regprocedure::text FROM pg_proc p "
        "JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid "
        "AND d.deptype = 'e' JOIN pg_extension e ON e.oid = d.refobjid "
        "WHERE e.extname = ANY(:exts) AND has_function_privilege('public', p.oid, 'EXECUTE') "
        "ORDER BY 1"), {"exts": list(PUBLIC_EXTENSIONS)}).scalars())


def _public_notes(conn: Connection, name: str, schema: str, db: str) -> list[str]:
    """What the role may still do through ``PUBLIC``'s default privileges."""
    notes = []
    if conn.execute(text("SELECT has_schema_privilege(:r, :s, 'CREATE')"),
                    {"r": name, "s": schema}).scalar_one():
        notes.append(f"it may CREATE objects in schema {schema} (granted to PUBLIC)")
    if conn.execute(text("SELECT has_database_privilege(:r, :d, 'TEMPORARY')"),
                    {"r": name, "d": db}).scalar_one():
        notes.append("it may create temporary tables (TEMPORARY is granted to PUBLIC)")
    funcs = _extension_functions(conn)
    if funcs:
        notes.append(f"it may execute {len(funcs)} function(s) of the extensions "
                     f"{'/'.join(PUBLIC_EXTENSIONS)} (granted to PUBLIC), e.g. {funcs[0]}")
    return notes


def create_reader_role(engine: Engine, name: str, *, login: bool = False,
                       revoke_public: bool = False) -> ReaderRole:
    """Create (or bring back to the reader's rights) the role ``name``: SELECT on xlrun's
    tables and views in the current schema, CONNECT, USAGE on the schema, nothing else.

    ``login``: the role may log in (its password is set outside xlrun, e.g. psql's
    ``\\password NAME``, so that no secret passes through xlrun); without it the role is used
    through ``SET ROLE`` (``xlrun sql --role NAME``), and the current user is made a member
    of it when it is not a superuser. ``revoke_public``: take ``CREATE`` on the schema,
    ``TEMPORARY`` on the database and ``EXECUTE`` on dblink's and adminpack's functions from
    ``PUBLIC`` (this changes every role's rights in this database).

    Raises:
        UsageError: not Postgres, a bad name, an existing role that is more than a reader,
            a database without xlrun's tables, or missing privileges to grant.
    """
    if engine.dialect.name != "postgresql":
        raise UsageError("reader roles are a Postgres feature")
    check_role_name(name)
    q = _quote(name)
    with engine.begin() as conn:
        me, db, schema, superuser = conn.execute(text(
            "SELECT current_user, current_database(), current_schema(), "
            "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)")).one()
        existed = _existing(conn, name, me)
        present = set(conn.execute(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :s AND c.relkind IN ('r', 'v', 'm', 'p')"),
            {"s": schema}).scalars())
        relations = [r for r in xlrun_relations() if r in present]
        if not relations:
            raise UsageError(f"schema {schema} of database {db} holds no xlrun tables; run "
                             "`xlrun db upgrade` first")
        can_login = "LOGIN" if login else "NOLOGIN"
        verb = "ALTER" if existed else "CREATE"
        conn.execute(text(f"{verb} ROLE {q} {READER_ATTRIBUTES} {can_login}"))
        conn.execute(text(f"ALTER ROLE {q} SET default_transaction_read_only = on"))
        conn.execute(text(f"GRANT CONNECT ON DATABASE {_quote(db)} TO {q}"))
        conn.execute(text(f"GRANT USAGE ON SCHEMA {_quote(schema)} TO {q}"))
        listed = ", ".join(f"{_quote(schema)}.{_quote(r)}" for r in relations)
        conn.execute(text(f"REVOKE {_TABLE_PRIVILEGES} ON {listed} FROM {q}"))
        conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {_quote(schema)} FROM {q}"))
        conn.execute(text(f"GRANT SELECT ON {listed} TO {q}"))
        if not superuser:
            conn.execute(text(f"GRANT {q} TO {_quote(me)}"))  # so that SET ROLE works
        revoked: list[str] = []
        if revoke_public:
            conn.execute(text(f"REVOKE CREATE ON SCHEMA {_quote(schema)} FROM PUBLIC"))
            conn.execute(text(f"REVOKE TEMPORARY ON DATABASE {_quote(db)} FROM PUBLIC"))
            revoked += [f"CREATE on schema {schema}", f"TEMPORARY on database {db}"]
            for sig in _extension_functions(conn):
                conn.execute(text(f"REVOKE EXECUTE ON FUNCTION {sig} FROM PUBLIC"))
                revoked.append(f"EXECUTE on {sig}")
        notes = _public_notes(conn, name, schema, db)
    return ReaderRole(name=name, created=not existed, login=login, schema=schema,
                      relations=relations, revoked=revoked, public_notes=notes)
