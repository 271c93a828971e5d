"""A small finished experiment for the TREC tests: a trained run that saved its model and the
untrained reference, on the generated quickstart data, with measures stored per query."""

from __future__ import annotations

from pathlib import Path

import pytest
from trec_fixtures import SPEC, invoke


@pytest.fixture(scope="session")
def trec_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """(database URL, folder) of the finished experiment (runs 1: trained, 2: untrained)."""
    tmp = tmp_path_factory.mktemp("trec")
    spec = tmp / "spec.toml"
    spec.write_text(SPEC.format(out=tmp / "out"))
    db = f"sqlite:///{tmp / 'trec.db'}"
    invoke("submit", spec, "--db", db, "--device", "cpu")
    return db, tmp
