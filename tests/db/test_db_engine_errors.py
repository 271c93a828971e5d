"""Database URLs are checked before anything is created, and database faults a user can fix
are one-line errors with exit code 2 (issue 17, items 3 and 6)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from xlrun.cli import main
from xlrun.db.engine import get_engine, resolve_url
from xlrun.errors import UsageError

SPEC = """
[experiment]
name = "{name}"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
[train]
steps = 2
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
"""


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _run(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, args, env=env)


def _one_line_error(res: Result, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for n in needles:
        assert n in res.output, (n, res.output)


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "spec" / "s.toml"
    p.parent.mkdir()
    p.write_text(SPEC.format(name="e"))
    return p


@pytest.mark.parametrize("url", ["postgresql+psycopg2//user@dbhost/xlrun",
                                 "postgresql:/dbhost/xlrun", "::::", "postgresql//dbhost/xlrun",
                                 "sqlite//x.db"])
def test_mistyped_urls_are_refused_and_create_nothing(url: str, spec: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    res = _run(["submit", str(spec), "--no-run"], env={"XLRUN_DB": url})
    _one_line_error(res, "not a database URL", "://")
    res = _run(["status", "--db", url])
    _one_line_error(res, "not a database URL")
    assert _files(work) == []


@pytest.mark.parametrize("url, needle", [
    ("mysql://u@h/db", "xlrun supports sqlite and postgresql"),
    ("postgres://u@h/db", "write postgresql://"),
    ("postgresql+nosuchdriver://u@h/db", "postgresql+psycopg2"),
    ("postgresql+pg8000://u@h/db", "install pg8000"),
    ("postgresql+psycopg2://u@h", "names no database"),
])
def test_unknown_dialects_and_missing_drivers(url: str, needle: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    if needle == "install pg8000":  # pg8000 is a test dependency: make it missing
        import importlib.util

        real = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: None if name == "pg8000" else real(name, *a))
    monkeypatch.chdir(tmp_path)
    for args in (["status", "--db", url], ["db", "upgrade", "--db", url],
                 ["sql", "select 1", "--db", url]):
        _one_line_error(_run(args), needle)
    assert _files(tmp_path) == []


def test_missing_driver_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "psycopg2" else real(name, *a))
    with pytest.raises(UsageError, match="psycopg2-binary"):
        resolve_url("postgresql://u@h/db")


def test_read_commands_create_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "no" / "such" / "x.db"
    for args in (["status"], ["show", "1"], ["db", "current"], ["report"],
                 ["db", "export", str(tmp_path / "out")], ["sql", "select 1"]):
        res = _run([*args, "--db", str(missing)])
        _one_line_error(res, str(missing))
        res = _run(args)  # the default ./xlrun.db
        _one_line_error(res, "xlrun.db")
    assert _files(tmp_path) == []


def _good_db(tmp_path: Path) -> Path:
    db = tmp_path / "good.db"
    get_engine(f"sqlite:///{db}").dispose()
    return db


def test_not_a_database_and_corrupt_files(tmp_path: Path, spec: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(bytes(range(256)) * 40)
    corrupt = tmp_path / "corrupt.db"
    shutil.copy(_good_db(tmp_path), corrupt)
    data = bytearray(corrupt.read_bytes())
    for i in range(100, len(data), 7):
        data[i] = 0xAB
    corrupt.write_bytes(bytes(data))
    for db in (junk, corrupt):
        before = db.read_bytes()
        for args in (["status"], ["db", "current"], ["db", "upgrade"],
                     ["submit", str(spec), "--no-run"]):
            _one_line_error(_run([*args, "--db", str(db)]), str(db), "not an SQLite database")
        assert db.read_bytes() == before


def test_a_folder_or_an_uncreatable_path(tmp_path: Path, spec: Path) -> None:
    for args in (["status"], ["submit", str(spec), "--no-run"]):
        _one_line_error(_run([*args, "--db", str(tmp_path)]), "it is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    _one_line_error(_run(["submit", str(spec), "--no-run", "--db", str(blocker / "x.db")]),
                    "cannot create the SQLite database")


def test_newer_schema_is_refused(tmp_path: Path, spec: Path) -> None:
    db = _good_db(tmp_path)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = '0099_future'")
    before = db.read_bytes()
    msg = "this database was written by a newer xlrun (revision 0099_future); upgrade xlrun"
    for args in (["status"], ["db", "current"], ["db", "upgrade"], ["report"],
                 ["submit", str(spec), "--no-run"], ["worker", "--max-runs", "1"]):
        res = _run([*args, "--db", str(db)])
        _one_line_error(res, msg)
    assert db.read_bytes() == before


def test_read_only_sqlite(tmp_path: Path, spec: Path) -> None:
    db = _good_db(tmp_path)
    ro = f"sqlite:///file:{db}?mode=ro&uri=true"
    res = _run(["submit", str(spec), "--no-run", "--db", ro])
    _one_line_error(res, "read-only")
    assert _run(["status", "--db", ro]).output.strip() == "no runs"


@pytest.mark.postgres
def test_read_only_postgres_and_long_names(postgres_url: str, spec: Path) -> None:
    get_engine(postgres_url).dispose()
    name = make_url(postgres_url).database
    admin = create_engine(make_url(postgres_url).set(database="postgres"),
                          isolation_level="AUTOCOMMIT")
    long_spec = spec.with_name("long.toml")
    long_spec.write_text(SPEC.format(name="x" * 201))
    _one_line_error(_run(["submit", str(long_spec), "--no-run", "--db", postgres_url]),
                    "experiment.name", "200")
    with admin.connect() as c:
        c.execute(text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
    try:
        res = _run(["submit", str(spec), "--no-run", "--db", postgres_url])
        _one_line_error(res, "read-only")
        res = _run(["status", "--db", postgres_url])
        assert res.exit_code == 0 and res.output.strip() == "no runs", res.output
    finally:
        with admin.connect() as c:
            c.execute(text(f'ALTER DATABASE "{name}" RESET default_transaction_read_only'))
        admin.dispose()
