"""Read commands never change the database (issue 24 items 7 and 10).

``status``, ``report``, ``show`` and ``db export`` ran Alembic upgrades (a newer xlrun's
``status`` moved a shared database to a schema the previous release's workers refused),
``report`` turned a zero-byte file into a database, ``xlrun sql`` with ``file:…?mode=rwc``
created one, and WAL databases on read-only media failed every read command with "a folder …
or no permission". Now a read command opens the database without the right to create or
write it, says "run `xlrun db upgrade`" for an older schema, and opens a WAL file on
read-only media ``immutable``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from click.testing import CliRunner, Result
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError

from xlrun.cli import main
from xlrun.db.engine import alembic_config, get_engine, head_revision, upgrade

REPO = Path(__file__).resolve().parents[2]
NOW = "'2026-01-01 00:00:00'"


def _run(args: list[str]) -> Result:
    return CliRunner().invoke(main, args)


def _previous_revision() -> str:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    down = script.get_revision(head_revision()).down_revision
    assert isinstance(down, str)
    return down


def _rows(execute) -> None:
    """An experiment and a done run, in columns every revision has."""
    execute(f"INSERT INTO experiments (id, name, spec_toml, created_at) VALUES (1, 'e', '', "
            f"{NOW})")
    execute("INSERT INTO runs (id, experiment_id, run_key, status, config_json, model, "
            "sampler, seed, attempts, created_at) VALUES (1, 1, 'k', 'done', '{}', 'm', "
            f"'hybrid', 1, 0, {NOW})")


def _older_sqlite(path: Path) -> None:
    engine = get_engine(f"sqlite:///{path}", migrate=False)
    upgrade(engine, _previous_revision())
    with engine.begin() as c:
        _rows(lambda s: c.execute(text(s)))
    engine.dispose()


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


READ_COMMANDS = [["status"], ["show", "1"], ["report"], ["db", "export", "OUT"]]


def _args(args: list[str], out: Path) -> list[str]:
    return [str(out) if a == "OUT" else a for a in args]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_an_older_sqlite_schema_is_not_upgraded(tmp_path: Path, args: list[str]) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    db = db_dir / "x.db"
    _older_sqlite(db)
    before = _files(db_dir)
    res = _run([*_args(args, tmp_path / "export"), "--db", str(db)])
    assert res.exit_code == 2, res.output
    assert "run `xlrun db upgrade`" in res.output and _previous_revision() in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert _files(db_dir) == before  # no byte changed, no -wal/-shm left behind
    assert not (tmp_path / "export").exists()


def test_sql_and_db_current_read_an_older_schema_as_it_is(tmp_path: Path) -> None:
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    db = db_dir / "x.db"
    _older_sqlite(db)
    before = _files(db_dir)
    res = _run(["sql", "select status from runs", "--db", str(db), "--format", "csv"])
    assert res.exit_code == 0 and res.output.splitlines() == ["status", "done"], res.output
    res = _run(["db", "current", "--db", str(db)])
    assert res.exit_code == 0 and f"current: {_previous_revision()}" in res.output
    assert "xlrun db upgrade" in res.output
    assert _files(db_dir) == before
    assert _run(["db", "upgrade", "--db", str(db)]).exit_code == 0  # the writer upgrades
    assert _run(["status", "--db", str(db)]).exit_code == 0


@pytest.mark.postgres
def test_an_older_postgres_schema_is_not_upgraded(postgres_url: str, tmp_path: Path) -> None:
    engine = get_engine(postgres_url, migrate=False)
    upgrade(engine, _previous_revision())
    with engine.begin() as c:
        _rows(lambda s: c.execute(text(s)))

    def state() -> tuple:
        with engine.connect() as c:
            return (c.execute(text("SELECT version_num FROM alembic_version")).all(),
                    c.execute(text("SELECT column_name FROM information_schema.columns "
                                   "WHERE table_name = 'runs' ORDER BY 1")).all())

    before = state()
    for args in READ_COMMANDS:
        res = _run([*_args(args, tmp_path / "export"), "--db", postgres_url])
        assert res.exit_code == 2 and "run `xlrun db upgrade`" in res.output, (args, res.output)
        assert state() == before, args
    engine.dispose()


@pytest.mark.parametrize("args", [*READ_COMMANDS, ["sql", "select 1"], ["db", "current"]],
                         ids=" ".join)
def test_a_zero_byte_file_stays_empty(tmp_path: Path, args: list[str]) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    res = _run([*_args(args, tmp_path / "export"), "--db", str(db)])
    assert res.exit_code == 2 and "empty file" in res.output, res.output
    assert db.stat().st_size == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


@pytest.mark.parametrize("args", [["sql", "select 1"], ["status"], ["report"]],
                         ids=lambda a: a[0])
def test_a_rwc_uri_creates_nothing(tmp_path: Path, args: list[str]) -> None:
    url = f"sqlite:///file:{tmp_path / 'new.db'}?mode=rwc&uri=true"
    res = _run([*args, "--db", url])
    assert res.exit_code == 2 and "no database at" in res.output, res.output
    assert list(tmp_path.iterdir()) == []


def test_read_commands_leave_no_wal_files(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    get_engine(str(db)).dispose()
    with sqlite3.connect(db) as c:
        _rows(c.execute)
    c.close()
    before = _files(tmp_path)
    assert set(before) == {"x.db"}
    for args in (["status"], ["show", "1"], ["db", "current"]):
        assert _run([*args, "--db", str(db)]).exit_code == 0
    assert _files(tmp_path) == before


def test_reader_role_needs_postgres_and_creates_nothing(tmp_path: Path) -> None:
    res = _run(["db", "reader-role", "reader", "--db", str(tmp_path / "x.db")])
    assert res.exit_code == 2 and "Postgres" in res.output
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- read-only media
def _wal_db(folder: Path) -> Path:
    folder.mkdir()
    db = folder / "x.db"
    get_engine(str(db)).dispose()  # xlrun's databases are in WAL mode
    with sqlite3.connect(db) as c:
        _rows(c.execute)
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    c.close()
    assert sorted(p.name for p in folder.iterdir()) == ["x.db"]
    return db


def _bind_mount_prefix(folder: Path) -> list[str] | None:
    """A command prefix that runs with ``folder`` as a read-only bind mount in a mount
    namespace of its own (root with CAP_SYS_ADMIN), or ``None``."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "-m", "sh", "-c",
                            f"mount --bind -o ro '{folder}' '{folder}' && "
                            f"! touch '{folder}/probe' 2>/dev/null"], capture_output=True)
    if probe.returncode != 0:
        return None
    return ["unshare", "-m", "sh", "-c",
            f"mount --bind -o ro '{folder}' '{folder}' && exec \"$0\" \"$@\""]


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _nobody_can_run_xlrun() -> bool:
    """Whether root can run this xlrun as user nobody (python and the repository readable)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return False
    res = subprocess.run([*NOBODY, sys.executable, "-c", "import xlrun.cli"],
                         capture_output=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    return res.returncode == 0


def _xlrun_on_read_only(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m xlrun ARGS`` with ``folder`` read-only: a read-only bind mount (root), or
    file modes for a user who is not root (root runs it as nobody where it can); skips where
    none is possible."""
    cmd = [sys.executable, "-m", "xlrun", *args]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if os.geteuid() == 0:
        prefix = _bind_mount_prefix(folder)
        if prefix is not None:
            return subprocess.run([*prefix, *cmd], capture_output=True, env=env, timeout=120)
        if not _nobody_can_run_xlrun():
            pytest.skip("cannot make a folder read-only here (root without mount namespaces, "
                        "and user nobody cannot run this python)")
        cmd = [*NOBODY, *cmd]
    for p in folder.iterdir():
        p.chmod(0o444)
    folder.chmod(0o555)
    try:
        return subprocess.run(cmd, capture_output=True, env=env, timeout=120)
    finally:
        folder.chmod(0o755)
        for p in folder.iterdir():
            p.chmod(0o644)


@pytest.fixture
def media_dir() -> Iterator[Path]:
    """A folder other users can reach (pytest's own are private to their user)."""
    base = Path(tempfile.mkdtemp(prefix="xlrun-media-"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_a_wal_database_on_read_only_media_opens(media_dir: Path) -> None:
    folder = media_dir / "media"
    db = _wal_db(folder)
    before = _files(folder)
    for args, want in ((["status"], b" done "), (["show", "1"], b"run 1 (e, key k): done"),
                       (["sql", "select count(*) as n from runs", "--format", "csv"],
                        b"n\n1\n")):
        res = _xlrun_on_read_only(folder, *args, "--db", str(db))
        assert res.returncode == 0, (args, res.stderr)
        assert want in res.stdout, (args, res.stdout)
    assert _files(folder) == before


def test_pending_wal_changes_on_read_only_media_are_an_error(media_dir: Path) -> None:
    """A WAL file holding changes not yet in the database cannot be read without its shared
    memory: a clear error, not a database that silently lacks them."""
    src = media_dir / "src"
    db = _wal_db(src)
    keep = sqlite3.connect(db)
    keep.execute("PRAGMA wal_autocheckpoint=0")
    keep.execute("UPDATE runs SET status = 'failed'")
    keep.commit()
    folder = media_dir / "media"
    folder.mkdir()
    shutil.copy(db, folder / "x.db")
    shutil.copy(f"{db}-wal", folder / "x.db-wal")
    keep.close()
    assert (folder / "x.db-wal").stat().st_size > 0
    res = _xlrun_on_read_only(folder, "status", "--db", str(folder / "x.db"))
    assert res.returncode == 2, res.stderr
    assert b"holds changes not yet written" in res.stderr and b"Traceback" not in res.stderr


@pytest.mark.postgres
def test_read_commands_use_a_read_only_postgres_session(postgres_url: str) -> None:
    from xlrun.db.engine import read_engine

    get_engine(postgres_url).dispose()
    engine = read_engine(postgres_url)
    with engine.connect() as c:
        assert c.execute(text("SHOW transaction_read_only")).scalar_one() == "on"
        with pytest.raises(DBAPIError, match="read-only transaction"):
            c.execute(text("DELETE FROM runs"))
    engine.dispose()


def _unopenable_first(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """SQLite on read-only media, simulated: opening without ``immutable`` fails as it does
    when the shared-memory file cannot be created. Returns the URLs tried."""
    from xlrun.db import engine as engine_mod

    tried: list[str] = []
    real = engine_mod._probe

    def probe(engine) -> None:
        url = engine.url.render_as_string(hide_password=False)
        tried.append(url)
        if "immutable=1" not in url:
            raise OperationalError("SELECT 1", {}, sqlite3.OperationalError(
                "unable to open database file"))
        real(engine)

    monkeypatch.setattr(engine_mod, "_probe", probe)
    return tried


def test_the_immutable_fallback_without_privileges(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The same decisions as on real read-only media, where no mount namespace or second
    user is available: a WAL file is reopened immutable; pending -wal changes are an error;
    a rollback-journal file gets the plain message."""
    from xlrun.db.engine import read_engine

    db = _wal_db(tmp_path / "w")
    tried = _unopenable_first(monkeypatch)
    engine = read_engine(str(db))
    with engine.connect() as c:
        assert c.execute(text("SELECT status FROM runs")).scalar_one() == "done"
    engine.dispose()
    assert "immutable=1" in tried[-1] and "mode=ro" in tried[-1]
    Path(f"{db}-wal").write_bytes(b"\0" * 100)
    res = _run(["status", "--db", str(db)])
    assert res.exit_code == 2 and "holds changes not yet written" in res.output
    Path(f"{db}-wal").unlink()
    plain = tmp_path / "plain.db"
    shutil.copy(db, plain)
    with sqlite3.connect(plain) as c:
        c.execute("PRAGMA journal_mode=DELETE")
    c.close()
    res = _run(["status", "--db", str(plain)])
    assert res.exit_code == 2 and "cannot open the SQLite database" in res.output
