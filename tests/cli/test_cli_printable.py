"""Stored names never print raw terminal escapes or invisible characters (issue 24, smaller
items: imported names printed raw escape sequences in ``xlrun status``); errors stored with
a run are masked."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import text

from xlrun.cli import main
from xlrun.db import store
from xlrun.db.engine import get_engine

ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"


def test_status_and_show_escape_what_a_database_holds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    engine = get_engine(url)
    with engine.begin() as conn:  # rows as an old import or a hand edit could leave them
        conn.execute(text("INSERT INTO experiments (id, name, spec_toml, created_at) VALUES "
                          "(1, :n, '', '2026-01-01 00:00:00')"), {"n": f"exp{ESC}\u202eevil"})
        conn.execute(text(
            "INSERT INTO runs (id, experiment_id, run_key, status, config_json, model, "
            "sampler, seed, attempts, created_at, error) VALUES (1, 1, 'k', 'failed', '{}', "
            ":m, 'hybrid', 1, 1, '2026-01-01 00:00:00', :e)"),
            {"m": f"model{ESC}", "e": f"boom{ESC} postgresql://u:Pw-77x@h/x"})
    for args in (["status", "--db", url], ["show", "1", "--db", url]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, res.output
        assert "\x1b" not in res.output and "\x07" not in res.output, res.output
        assert "\u202e" not in res.output and "\\x1b" in res.output
    assert "Pw-77x" not in res.output


def test_finish_run_stores_errors_masked(tmp_path: Path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO experiments (id, name, spec_toml, created_at) VALUES "
                          "(1, 'e', '', '2026-01-01 00:00:00')"))
        conn.execute(text(
            "INSERT INTO runs (id, experiment_id, run_key, status, config_json, model, "
            "sampler, seed, attempts, created_at) VALUES (1, 1, 'k', 'running', '{}', 'm', "
            "'hybrid', 1, 1, '2026-01-01 00:00:00')"))
    store.finish_run(engine, 1, "failed", error="OperationalError: could not connect to "
                     "postgresql://u@h/x?password=Pw-77x (host=h password=Pw-77x)")
    error = store.get_run(engine, 1)["error"]
    assert "Pw-77x" not in error and "password=***" in error
