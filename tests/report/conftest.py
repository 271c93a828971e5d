"""Fixtures for the report tests (``sqlite_url`` and ``postgres_url`` come from
``tests/conftest.py``; the helpers live in ``report_db``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from report_db import Synth, new_engine, populate
from sqlalchemy import Engine


@pytest.fixture
def make_db(sqlite_url) -> Callable[[Synth], tuple[str, Engine]]:
    """``make_db(synth)`` → (url, engine) of a fresh SQLite database holding ``synth``."""
    engines: list[Engine] = []

    def make(s: Synth) -> tuple[str, Engine]:
        engine = new_engine(sqlite_url)
        engines.append(engine)
        populate(engine, s)
        return sqlite_url, engine

    yield make
    for e in engines:
        e.dispose()
