"""``xlrun sql`` on a real Postgres cannot act through functions (issue 24 item 1).

The read-only transaction holds only for its own session: before the allow-list,
``dblink_exec`` deleted rows through a second connection, ``lo_export`` and adminpack's
``pg_file_write`` wrote files on the server, ``pg_create_physical_replication_slot`` left a
slot pinning WAL and ``pg_terminate_backend`` killed other sessions. Each attack below runs
through the CLI with a superuser URL (the worst case) and must be refused with nothing
changed: rows, sequences, large objects, replication slots, files on the server, a victim
session, advisory locks. The same attacks with the allow-list switched off must be stopped by
the server when ``xlrun sql`` runs as a role made by ``xlrun db reader-role``.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

from xlrun.cli import main
from xlrun.db.engine import get_engine
from xlrun.db.models import Experiment, Run, RunMetric

pytestmark = pytest.mark.postgres

TAG = f"xlrun_attack_{uuid.uuid4().hex[:8]}"
FILE = f"/tmp/{TAG}"


def _populate(engine: Engine) -> None:
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="e", spec_toml="")
                           .returning(Experiment.id)).scalar_one()
        rid = conn.execute(insert(Run).values(
            experiment_id=exp, run_key="k", status="done", config_json=json.dumps({}),
            model="m", sampler="hybrid", seed=1).returning(Run.id)).scalar_one()
        conn.execute(insert(RunMetric), [
            {"run_id": rid, "dataset": "d", "split": "test", "setting": "cross",
             "query_lang": "en", "doc_lang": lang, "metric": "map", "value": 0.5}
            for lang in ("de", "fr", "ru")])


class Server:
    """A populated database with dblink (and adminpack where installable), a victim
    session, and a snapshot of everything an attack could change."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = get_engine(url)
        _populate(self.engine)
        self.admin = create_engine(url, isolation_level="AUTOCOMMIT")
        self.extensions = set()
        with self.admin.connect() as c:
            for ext in ("dblink", "adminpack"):
                try:
                    c.execute(text(f"CREATE EXTENSION IF NOT EXISTS {ext}"))
                    self.extensions.add(ext)
                except Exception:  # noqa: BLE001 - not installed on this server: no such attack
                    pass
            # a large object that exists, as lo_export needs one (nothing creates it in a
            # read-only transaction)
            self.large_object = c.execute(text("SELECT lo_from_bytea(0, 'secret')")).scalar()
        self.victim = self.engine.raw_connection()
        cur = self.victim.cursor()
        cur.execute("SELECT pg_backend_pid()")
        self.victim_pid = cur.fetchone()[0]
        cur.close()
        u = make_url(url)
        self.conninfo = (f"dbname={u.database} user={u.username} host={u.host or '127.0.0.1'} "
                         f"port={u.port or 5432}")

    def victim_alive(self) -> bool:
        try:
            cur = self.victim.cursor()
            cur.execute("SELECT 1")
            cur.close()
            self.victim.rollback()
            return True
        except Exception:  # noqa: BLE001 - a terminated session raises the driver's error
            return False

    def snapshot(self) -> dict[str, object]:
        with self.admin.connect() as c:
            q = lambda sql: c.execute(text(sql)).all()  # noqa: E731
            data_files = q(f"SELECT f FROM pg_ls_dir('.') f WHERE f LIKE '{TAG}%'")
            return {
                "rows": q("SELECT (SELECT count(*) FROM run_metrics), "
                          "(SELECT count(*) FROM runs), (SELECT string_agg(status, ',') "
                          "FROM runs)"),
                "sequence": q("SELECT last_value, is_called FROM runs_id_seq"),
                "large_objects": q("SELECT count(*) FROM pg_largeobject_metadata"),
                "slots": q("SELECT slot_name FROM pg_replication_slots"),
                "advisory": q("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                              "database = (SELECT oid FROM pg_database "
                              "WHERE datname = current_database())"),
                "server_files": data_files,
                "tmp_file": os.path.exists(FILE),
                "victim": self.victim_alive(),
            }

    def close(self) -> None:
        with self.admin.connect() as c:
            for (slot,) in c.execute(text("SELECT slot_name FROM pg_replication_slots "
                                          f"WHERE slot_name LIKE '{TAG}%'")).all():
                c.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": slot})
            if "adminpack" in self.extensions:
                for (f,) in c.execute(text(
                        f"SELECT f FROM pg_ls_dir('.') f WHERE f LIKE '{TAG}%'")).all():
                    c.execute(text("SELECT pg_file_unlink(:f)"), {"f": f})
        if os.path.exists(FILE):
            os.unlink(FILE)
        with contextlib.suppress(Exception):  # already gone
            self.victim.invalidate()
        self.admin.dispose()
        self.engine.dispose()


@pytest.fixture
def server(postgres_url: str) -> Iterator[Server]:
    s = Server(postgres_url)
    yield s
    s.close()


def attacks(s: Server) -> dict[str, tuple[str, str | None]]:
    """name → (query, extension it needs)."""
    return {
        "dblink_exec DELETE": (f"SELECT dblink_exec('{s.conninfo}', "
                               "'DELETE FROM run_metrics')", "dblink"),
        "dblink DELETE RETURNING": (f"SELECT * FROM dblink('{s.conninfo}', 'DELETE FROM "
                                    "run_metrics RETURNING 1') AS t(x int)", "dblink"),
        "dblink_exec in a subquery": (f"SELECT (SELECT dblink_exec('{s.conninfo}', "
                                      "'UPDATE runs SET status = ''queued''')) AS x", "dblink"),
        "lo_export a server file": (f"SELECT lo_export({s.large_object}, '{FILE}')", None),
        "lo_import a server file": ("SELECT lo_import('/etc/hostname')", None),
        "lo_create": ("SELECT lo_create(0)", None),
        "pg_file_write (adminpack)": (f"SELECT pg_file_write('{TAG}', 'x', false)",
                                      "adminpack"),
        "replication slot": (f"SELECT pg_create_physical_replication_slot('{TAG}')", None),
        "pg_terminate_backend": (f"SELECT pg_terminate_backend({s.victim_pid})", None),
        "pg_catalog.pg_terminate_backend": (
            f"SELECT pg_catalog.pg_terminate_backend({s.victim_pid})", None),
        "pg_read_file": ("SELECT pg_read_file('PG_VERSION')", None),
        "pg_ls_dir": ("SELECT pg_ls_dir('.')", None),
        "set_config role": ("SELECT set_config('role', 'none', false)", None),
        "set_config read write": ("SELECT set_config('default_transaction_read_only', 'off', "
                                  "false)", None),
        "nextval": ("SELECT nextval('runs_id_seq')", None),
        "setval": ("SELECT setval('runs_id_seq', 1000000)", None),
        "pg_advisory_lock": ("SELECT pg_advisory_lock(7242100531)", None),
        "txid_current": ("SELECT txid_current()", None),
        "pg_notify": ("SELECT pg_notify('xlrun', 'x')", None),
        "query_to_xml with a DELETE": ("SELECT query_to_xml('DELETE FROM run_metrics "
                                       "RETURNING 1', true, false, '')", None),
        "COPY TO a file": (f"COPY run_metrics TO '{FILE}'", None),
        "COPY FROM PROGRAM": (f"COPY run_metrics FROM PROGRAM 'touch {FILE}'", None),
        "quoted name": (f"SELECT \"dblink_exec\"('{s.conninfo}', 'DELETE FROM run_metrics')",
                        "dblink"),
        "schema-qualified": (f"SELECT public.dblink_exec('{s.conninfo}', "
                             "'DELETE FROM run_metrics')", "dblink"),
    }


def _cli(args: list[str]):
    return CliRunner().invoke(main, args)


def _refused(res) -> bool:
    lines = res.output.strip().splitlines()
    return (res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("Error:")
            and res.exception is not None and isinstance(res.exception, SystemExit))


def _names() -> list[str]:
    class Fake:
        conninfo = ""
        victim_pid = 0
        large_object = 0
    return list(attacks(Fake()))  # type: ignore[arg-type]


@pytest.mark.parametrize("name", _names())
def test_side_effecting_functions_are_refused(server: Server, name: str) -> None:
    query, ext = attacks(server)[name]
    if ext and ext not in server.extensions:
        pytest.skip(f"the {ext} extension is not installable on this server")
    before = server.snapshot()
    res = _cli(["sql", query, "--db", server.url])
    assert _refused(res), (name, res.output)
    assert any(w in res.output for w in ("allow-list", "read-only", "schema of its own"))
    assert server.snapshot() == before, name


# ----------------------------------------------------------------------------- reader role
SERVER_BLOCKS = ["dblink_exec DELETE", "dblink DELETE RETURNING", "dblink_exec in a subquery",
                 "lo_export a server file", "lo_import a server file",
                 "pg_file_write (adminpack)", "replication slot", "pg_terminate_backend",
                 "pg_read_file", "pg_ls_dir", "nextval", "setval",
                 "query_to_xml with a DELETE", "COPY TO a file", "COPY FROM PROGRAM"]
"""What a reader role's session cannot do even without the allow-list (the server refuses:
no privilege, no password for dblink, a READ ONLY transaction)."""


@pytest.fixture
def reader(server: Server) -> Iterator[tuple[str, str]]:
    """A LOGIN reader role made by the CLI: (its name, a URL that logs in as it)."""
    name = f"xlrun_reader_{uuid.uuid4().hex[:8]}"
    res = _cli(["db", "reader-role", name, "--login", "--db", server.url])
    assert res.exit_code == 0, res.output
    url = make_url(server.url).set(username=name, password=None)
    yield name, url.render_as_string(hide_password=False)
    with server.admin.connect() as c:
        c.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       f"WHERE usename = '{name}'"))
        c.execute(text(f'DROP OWNED BY "{name}"'))
        c.execute(text(f'DROP ROLE "{name}"'))


@pytest.fixture
def no_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """Switch the parser layer off, to see what the server alone stops."""
    from xlrun.report import readonly

    monkeypatch.setattr(readonly, "check_query", lambda *a, **k: None)


@pytest.mark.parametrize("name", SERVER_BLOCKS)
def test_a_reader_role_is_stopped_by_the_server(server: Server, reader: tuple[str, str],
                                                no_allow_list: None, name: str) -> None:
    query, ext = attacks(server)[name]
    if ext and ext not in server.extensions:
        pytest.skip(f"the {ext} extension is not installable on this server")
    role, login_url = reader
    before = server.snapshot()
    for args in (["--db", login_url], ["--db", server.url, "--role", role]):
        res = _cli(["sql", query, *args])
        assert res.exit_code == 2 and "Traceback" not in res.output, (name, args, res.output)
        assert server.snapshot() == before, (name, args)


def test_the_reader_role_holds_select_and_nothing_else(server: Server,
                                                       reader: tuple[str, str]) -> None:
    role, login_url = reader
    with server.admin.connect() as c:
        attrs = c.execute(text(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, "
            "rolinherit FROM pg_roles WHERE rolname = :r"), {"r": role}).one()
        assert not any(attrs)
        tables = c.execute(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v')")).scalars().all()
        assert "run_metrics" in tables and "arm_pair_metrics" in tables
        for t in tables:
            for priv, want in (("SELECT", True), ("INSERT", False), ("UPDATE", False),
                               ("DELETE", False), ("TRUNCATE", False)):
                got = c.execute(text("SELECT has_table_privilege(:r, :t, :p)"),
                                {"r": role, "t": f"public.{t}", "p": priv}).scalar_one()
                assert got == (want and t in _xlrun_relations()), (t, priv)
        assert not c.execute(text("SELECT has_schema_privilege(:r, 'public', 'CREATE')"),
                             {"r": role}).scalar_one()
        assert not c.execute(text("SELECT has_database_privilege(:r, current_database(), "
                                  "'CREATE')"), {"r": role}).scalar_one()
        assert not c.execute(text("SELECT has_sequence_privilege(:r, 'runs_id_seq', "
                                  "'USAGE')"), {"r": role}).scalar_one()
        groups = c.execute(text("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r ON "
                                "r.oid = m.member WHERE r.rolname = :r"), {"r": role})
        assert groups.scalar_one() == 0
    res = _cli(["sql", "select count(*) as n from run_metrics", "--db", login_url,
                "--format", "csv"])
    assert res.exit_code == 0 and res.output.splitlines()[1] == "3", res.output
    res = _cli(["status", "--db", login_url])  # read commands work as the reader
    assert res.exit_code == 0 and "done" in res.output, res.output


def _xlrun_relations() -> set[str]:
    from xlrun.db.roles import xlrun_relations

    return set(xlrun_relations())


def test_revoke_public_takes_the_extension_functions(server: Server,
                                                     reader: tuple[str, str]) -> None:
    if "dblink" not in server.extensions:
        pytest.skip("dblink is not installable on this server")
    role, _ = reader
    with server.admin.connect() as c:
        assert c.execute(text("SELECT has_function_privilege(:r, 'dblink_exec(text, text)', "
                              "'EXECUTE')"), {"r": role}).scalar_one()
    res = _cli(["db", "reader-role", role, "--login", "--revoke-public", "--db", server.url])
    assert res.exit_code == 0, res.output
    assert "revoked from PUBLIC: EXECUTE on dblink_exec(text,text)" in res.output
    with server.admin.connect() as c:
        assert not c.execute(text("SELECT has_function_privilege(:r, "
                                  "'dblink_exec(text, text)', 'EXECUTE')"),
                             {"r": role}).scalar_one()
        assert not c.execute(text("SELECT has_database_privilege(:r, current_database(), "
                                  "'TEMPORARY')"), {"r": role}).scalar_one()


def test_reader_role_refuses_privileged_or_odd_names(server: Server) -> None:
    for name, needle in (("postgres", "invalid role name"), ("Bad-Name", "invalid role name"),
                         ("pg_x", "invalid role name")):
        res = _cli(["db", "reader-role", name, "--db", server.url])
        assert res.exit_code == 2 and needle in res.output, res.output
    me = make_url(server.url).username
    res = _cli(["db", "reader-role", me, "--db", server.url])
    assert res.exit_code == 2, res.output
