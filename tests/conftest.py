"""Shared fixtures: database URLs on every backend, the shared data folder."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PG_ENV = "XLRUN_TEST_POSTGRES_URL"


def shared_path(*parts: str) -> Path:
    """A path in ../shared, skipping the test when it is absent (a user's fresh machine)."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} is absent")
    return p


@pytest.fixture(scope="session")
def e5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """multilingual-e5-small from ../shared's 4-bit pack, exported to a Hugging Face folder once
    per session (skipped when ../shared is absent)."""
    pack = shared_path("models", "multilingual-e5-small")
    out = tmp_path_factory.mktemp("me5")
    subprocess.run([sys.executable, str(pack / "export_hf.py"), "--out", str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'xlrun.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the test Postgres server (skipped when XLRUN_TEST_POSTGRES_URL is unset)."""
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set")
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"xlrun_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        from sqlalchemy.pool import NullPool  # noqa: F401 - keep the import local

        with admin.connect() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name})
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on Postgres."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="session")
def quickstart_like_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite database shaped like the quickstart's, generated once per session without
    training (see ``tests/quickstart_like.py``). Read it only: tests share it."""
    from quickstart_like import build

    url = f"sqlite:///{tmp_path_factory.mktemp('quickstart_like') / 'xlrun.db'}"
    build(url)
    return url
