"""``xlrun sql`` streams its rows, prints numbers as stored, and stops when told to.

Issue 24: rows were all fetched before printing (1 M rows: 670 MB; unbounded: a MemoryError
traceback); Ctrl-C was ignored by a CPU-bound SQLite query; a Postgres query kept running
after ``xlrun sql`` was killed; repeated column names and invalid UTF-8 ended in tracebacks.
Issue 26: csv printed ``0.0000,0.1235`` for ``SELECT 2e-5, 0.123456789``.

The process tests run ``python -m xlrun sql`` in a subprocess (signals, pipes, a killed
client) with timeouts, so a regression fails instead of hanging.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from xlrun.cli.report import sql_command
from xlrun.db.engine import get_engine

REPO = Path(__file__).resolve().parents[2]
ENDLESS = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
           "SELECT x FROM c")
"""Rows without end: only a streaming client prints any of them."""
BUSY_SQLITE = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
               "SELECT count(*) FROM c")
"""A CPU-bound SQLite query that never returns a row."""
BUSY_PG = ("SELECT count(*) AS xlrun_busy FROM generate_series(1, 100000) a, "
           "generate_series(1, 100000) b")
"""A CPU-bound Postgres query of many minutes."""


def _sql(url: str, query: str, *args: str):
    return CliRunner().invoke(sql_command, [query, "--db", url, *args])


@pytest.fixture
def lite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    get_engine(url).dispose()
    return url


@pytest.fixture
def pg(postgres_url: str) -> str:
    get_engine(postgres_url).dispose()
    return postgres_url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("lite" if request.param == "sqlite" else "pg")


# ----------------------------------------------------------------------------- values
def test_csv_and_json_print_numbers_as_stored(url: str) -> None:
    res = _sql(url, "SELECT 2e-5 AS lr, 0.123456789 AS x", "--format", "csv")
    assert res.exit_code == 0, res.output
    header, row = res.stdout.splitlines()
    assert header == "lr,x"
    lr, x = row.split(",")
    assert lr in ("2e-05", "0.00002") and x == "0.123456789"
    res = _sql(url, "SELECT 2e-5 AS lr, 0.123456789 AS x, NULL AS n", "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["columns"] == ["lr", "x", "n"]
    assert doc["rows"] == [{"lr": 2e-5, "x": 0.123456789, "n": None}]


def test_stored_values_round_trip_at_full_precision(url: str) -> None:
    """A learning rate and a score as the database stores them (float columns)."""
    engine = get_engine(url)
    with engine.begin() as c:
        c.execute(text("INSERT INTO experiments (id, name, spec_toml, created_at) "
                       "VALUES (1, 'e', '', CURRENT_TIMESTAMP)"))
        c.execute(text("INSERT INTO runs (id, experiment_id, run_key, status, config_json, "
                       "model, sampler, seed, attempts, created_at) VALUES (1, 1, 'k', 'done', "
                       "'{}', 'm', 'hybrid', 1, 0, CURRENT_TIMESTAMP)"))
        for step, lr in ((1, 2e-5), (2, 1.9999e-5), (3, 3.0000000000000004e-06)):
            c.execute(text("INSERT INTO train_log (run_id, step, loss, lr) "
                           "VALUES (1, :s, 0.123456789, :lr)"), {"s": step, "lr": lr})
    engine.dispose()
    res = _sql(url, "SELECT lr, loss FROM train_log ORDER BY step", "--format", "csv")
    assert res.exit_code == 0, res.output
    got = [tuple(float(v) for v in line.split(",")) for line in res.stdout.splitlines()[1:]]
    assert got == [(2e-5, 0.123456789), (1.9999e-5, 0.123456789),
                   (3.0000000000000004e-06, 0.123456789)]


def test_the_table_rounds_and_says_so(lite: str) -> None:
    res = _sql(lite, "SELECT 2e-5 AS lr, 0.123456789 AS x, 3 AS n")
    assert res.exit_code == 0
    assert "0.0000" in res.stdout and "0.1235" in res.stdout
    assert "rounded to 4 decimals" in res.stderr and "--format csv" in res.stderr
    res = _sql(lite, "SELECT 0.5 AS x, 3 AS n")
    assert "rounded" not in res.stderr


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_repeated_column_names(url: str, fmt: str) -> None:
    res = _sql(url, "SELECT 1 AS a, 2 AS a, 3 AS a_1, 4 AS a", "--format", fmt)
    assert res.exit_code == 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert "renamed: a_2 (a), a_3 (a)" in res.stderr
    if fmt == "csv":
        assert res.stdout.splitlines() == ["a,a_2,a_1,a_3", "1,2,3,4"]
    if fmt == "json":
        assert json.loads(res.stdout)["rows"] == [{"a": 1, "a_2": 2, "a_1": 3, "a_3": 4}]


def test_invalid_utf8_in_sqlite_text(lite: str) -> None:
    for fmt in ("table", "csv", "json"):
        res = _sql(lite, "SELECT CAST(x'ff41' AS TEXT) AS t", "--format", fmt)
        assert res.exit_code == 0, res.output
        assert "\\xffA" in res.stdout or "\\\\xffA" in res.stdout, res.stdout


@pytest.mark.postgres
def test_invalid_utf8_from_a_sql_ascii_database(postgres_url: str) -> None:
    base = make_url(postgres_url)
    name = f"xlrun_ascii_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0 "
                       "LC_COLLATE 'C' LC_CTYPE 'C'"))
    try:
        url = base.set(database=name).render_as_string(hide_password=False)
        res = _sql(url, "SELECT E'\\xff' AS t")
        assert res.exit_code == 2, res.output
        assert res.output.startswith("Error:") and len(res.output.strip().splitlines()) == 1
        assert "not valid in its encoding" in res.output
    finally:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def test_terminal_escapes_are_shown_escaped_in_the_table(lite: str) -> None:
    res = _sql(lite, "SELECT char(27) || '[31mred' AS t")
    assert "\x1b" not in res.stdout and "\\x1b[31mred" in res.stdout


# ----------------------------------------------------------------------------- limits
def test_limit_stops_an_endless_query(url: str) -> None:
    res = _sql(url, ENDLESS, "--format", "csv", "--limit", "5")
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == ["x", "1", "2", "3", "4", "5"]
    assert "stopped after 5 rows (--limit)" in res.stderr
    res = _sql(url, "SELECT 1 AS x", "--limit", "5", "--format", "csv")
    assert "stopped" not in res.stderr


def test_limit_is_checked(lite: str) -> None:
    res = _sql(lite, "SELECT 1", "--limit", "-1")
    assert res.exit_code == 2


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


MEMORY_CAP = 2 * 1024**3
"""Address space of an ``xlrun sql`` subprocess: a client that collects an endless result
fails at this size instead of filling the machine's memory."""


CAPPED = ("import resource, runpy, sys; "
          f"resource.setrlimit(resource.RLIMIT_AS, ({MEMORY_CAP}, {MEMORY_CAP})); "
          "sys.argv = ['xlrun', *sys.argv[1:]]; runpy.run_module('xlrun', run_name='__main__')")
"""``python -m xlrun`` under :data:`MEMORY_CAP`."""


def _xlrun_sql(*args: str, appname: str = "") -> subprocess.Popen:
    env = {**_env(), "PGAPPNAME": appname} if appname else _env()
    return subprocess.Popen([sys.executable, "-c", CAPPED, "sql", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _first_lines(p: subprocess.Popen, n: int, timeout: float) -> list[bytes]:
    """The first ``n`` lines ``p`` writes, or fewer when it writes nothing for ``timeout``
    seconds in all."""
    assert p.stdout is not None
    fd, out, end = p.stdout.fileno(), b"", time.monotonic() + timeout
    while out.count(b"\n") < n and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    return [line + b"\n" for line in out.split(b"\n")[:n] if out.count(b"\n")]


def test_an_endless_result_streams_into_a_pipe(url: str) -> None:
    """Rows come out while the query runs (nothing is collected first), and a reader that
    closes the pipe (``| head``) ends xlrun sql quietly."""
    p = _xlrun_sql("--db", url, "--format", "csv", ENDLESS)
    try:
        assert _first_lines(p, 3, timeout=40) == [b"x\n", b"1\n", b"2\n"]
        assert p.stdout is not None
        p.stdout.close()
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and b"Traceback" not in err, err


def _wait_open(pid: int, path: Path, timeout: float = 60) -> None:
    """Wait until process ``pid`` holds ``path`` open (its query has started)."""
    fds = Path(f"/proc/{pid}/fd")
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if any(os.path.realpath(f) == str(path) for f in fds.iterdir()):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the query never started")


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_a_cpu_bound_sqlite_query(lite: str, sig: signal.Signals) -> None:
    path = Path(make_url(lite).database or "").resolve()
    p = _xlrun_sql("--db", lite, BUSY_SQLITE)
    try:
        _wait_open(p.pid, path)
        time.sleep(0.5)
        p.send_signal(sig)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert b"interrupted" in err and b"Traceback" not in err, err


def test_timeout_stops_a_sqlite_query(lite: str) -> None:
    t0 = time.monotonic()
    res = _sql(lite, BUSY_SQLITE, "--timeout", "0.5")
    assert time.monotonic() - t0 < 20
    assert res.exit_code == 1 and "ran longer than --timeout 0.5 s" in res.output, res.output


# ----------------------------------------------------------------------------- postgres
def _running(admin_url: str, marker: str) -> list[int]:
    """Active queries of the sessions named ``marker`` (``PGAPPNAME``)."""
    e = create_engine(admin_url)
    try:
        with e.connect() as c:
            return list(c.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE application_name = :m "
                "AND state = 'active'"), {"m": marker}).scalars())
    finally:
        e.dispose()


def _wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


@pytest.fixture
def busy_pg(pg: str) -> Iterator[tuple[str, str]]:
    """(url, marker) of a database; every query with the marker is ended afterwards."""
    marker = f"xlrun_busy_{uuid.uuid4().hex[:8]}"
    yield pg, marker
    e = create_engine(pg)
    with e.connect() as c:
        c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = :m"), {"m": marker})
    e.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_or_interrupted_client_ends_its_postgres_query(
        busy_pg: tuple[str, str], sig: signal.Signals) -> None:
    url, marker = busy_pg
    p = _xlrun_sql("--db", url, BUSY_PG, appname=marker)
    try:
        assert _wait_for(lambda: bool(_running(url, marker)), 60), "the query never started"
        p.send_signal(sig)
        p.wait(timeout=20)
        assert _wait_for(lambda: not _running(url, marker), 15), \
            "the query kept running after xlrun sql was stopped"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    if sig == signal.SIGINT:
        assert p.returncode == 130
        assert p.stderr is not None and b"interrupted" in p.stderr.read()


@pytest.mark.postgres
def test_timeout_stops_a_postgres_query(pg: str) -> None:
    url = pg
    t0 = time.monotonic()
    e = create_engine(url)
    res = _sql(url, BUSY_PG, "--timeout", "1")
    assert time.monotonic() - t0 < 20
    assert res.exit_code == 1 and "ran longer than --timeout 1 s" in res.output, res.output
    with e.connect() as c:
        assert not c.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'xlrun sql' "
            "AND state = 'active' AND datname = current_database()")).scalar_one()
    e.dispose()


# ----------------------------------------------------------------------------- options
def test_xlrun_sql_db_comes_before_xlrun_db(lite: str, tmp_path: Path) -> None:
    env = {"XLRUN_SQL_DB": lite, "XLRUN_DB": str(tmp_path / "missing.db")}
    res = CliRunner().invoke(sql_command, ["SELECT 1 AS x", "--format", "csv"], env=env)
    assert res.exit_code == 0 and res.stdout.splitlines() == ["x", "1"], res.output
    res = CliRunner().invoke(sql_command, ["SELECT 1 AS x"], env={"XLRUN_DB": lite})
    assert res.exit_code == 0


def test_role_is_for_postgres(lite: str) -> None:
    res = _sql(lite, "SELECT 1 AS x", "--role", "reader")
    assert res.exit_code == 2 and "--role needs Postgres" in res.output
    res = CliRunner().invoke(sql_command, ["SELECT 1 AS x", "--db", lite],
                             env={"XLRUN_SQL_ROLE": "reader"})
    assert res.exit_code == 0, res.output  # a role from the environment: ignored on SQLite
