"""The migrated schema equals the ORM on every backend; constraints are enforced."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from xlrun.db.engine import current_revision, get_engine, head_revision, resolve_url
from xlrun.db.models import VIEWS, Base


def test_migrations_match_orm(db_url: str) -> None:
    engine = get_engine(db_url)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    names = set(inspect(engine).get_table_names())
    assert {"experiments", "runs", "train_log", "query_results", "retrieved", "run_metrics",
            "language_clusters", "language_distances", "batch_languages"} <= names
    assert set(VIEWS) <= set(inspect(engine).get_view_names())


def test_views_in_migration_equal_models() -> None:
    import importlib.util

    from xlrun.db.engine import migrations_dir

    path = next(migrations_dir().joinpath("versions").glob("0004_*.py"))
    spec = importlib.util.spec_from_file_location("m0004", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    norm = {k: " ".join(v.split()) for k, v in mod.VIEWS.items()}
    assert norm == {k: " ".join(v.split()) for k, v in VIEWS.items()}


def test_upgrade_is_idempotent(db_url: str) -> None:
    get_engine(db_url)
    engine = get_engine(db_url)  # second time: nothing to do, no error
    assert current_revision(engine) == head_revision()


def _seed_run(conn) -> int:
    conn.execute(text("INSERT INTO experiments (name, spec_toml, created_at) "
                      "VALUES ('e', '', CURRENT_TIMESTAMP)"))
    conn.execute(text(
        "INSERT INTO runs (experiment_id, run_key, status, config_json, model, sampler, seed, "
        "attempts, created_at) VALUES (1, 'k', 'queued', '{}', 'm', 'hybrid', 0, 0, CURRENT_TIMESTAMP)"))
    return 1


def test_foreign_keys_enforced(db_url: str) -> None:
    engine = get_engine(db_url)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO train_log (run_id, step, loss, lr) VALUES (999, 1, 1.0, 0.1)"))


def test_duplicate_result_impossible(db_url: str) -> None:
    engine = get_engine(db_url)
    row = ("INSERT INTO query_results (run_id, dataset, split, setting, query_id, query_lang, "
           "doc_lang, n_relevant, ap, ndcg_at_10, mrr_at_10, recall_at_100, first_relevant_rank) "
           "VALUES (1, 'd', 'test', 'mono', 'q1', 'en', 'en', 1, 1, 1, 1, 1, 1)")
    with engine.begin() as conn:
        _seed_run(conn)
        conn.execute(text(row))
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(row))


def test_status_check_constraint(db_url: str) -> None:
    engine = get_engine(db_url)
    with engine.begin() as conn:
        _seed_run(conn)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("UPDATE runs SET status = 'exploded'"))


def test_resolve_url_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("XLRUN_DB", raising=False)
    assert resolve_url(None) == "sqlite:///xlrun.db"
    monkeypatch.setenv("XLRUN_DB", "sqlite:///from-env.db")
    assert resolve_url(None) == "sqlite:///from-env.db"
    assert resolve_url("sqlite:///flag.db") == "sqlite:///flag.db"
    assert resolve_url(str(tmp_path / "plain.db")) == f"sqlite:///{tmp_path / 'plain.db'}"


def test_migrations_are_package_data_and_alembic_cli_works(tmp_path, monkeypatch) -> None:
    """The migrations live inside the package (installed copies have them, no symlink) and the
    plain Alembic command line still drives them: ``alembic -c xlrun/migrations/alembic.ini``."""
    import tomllib
    from pathlib import Path

    from alembic.config import main as alembic_main

    import xlrun
    from xlrun.db.engine import migrations_dir

    package = Path(xlrun.__file__).resolve().parent
    here = migrations_dir()
    assert here == package / "migrations" and not here.is_symlink()
    assert not (package / "_migrations").exists()
    assert not (package.parent / "migrations").exists()
    pyproject = tomllib.loads((package.parent / "pyproject.toml").read_text(encoding="utf-8"))
    globs = pyproject["tool"]["setuptools"]["package-data"]["xlrun"]
    shipped = {p for g in globs for p in package.glob(g)}
    assert {here / "env.py", here / "alembic.ini", here / "script.py.mako"} <= shipped
    assert set(here.joinpath("versions").glob("*.py")) <= shipped
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("XLRUN_DB", url)
    alembic_main(argv=["-c", str(here / "alembic.ini"), "upgrade", "head"])
    assert current_revision(get_engine(url, migrate=False)) == head_revision()
