"""The per-run pipeline: failures are recorded, interrupts requeue, outages are explained."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import QueryResult
from xlrun.errors import DatabaseUnavailable
from xlrun.execute import pipeline
from xlrun.execute.executors.local import LocalExecutor
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

SPEC = """
[experiment]
name = "pipe"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[[eval]]
dataset = "quickstart"
languages = ["en", "ru"]
settings = ["mono", "cross", "multi"]
max_queries_per_language = 6
top_k = 5
[grid]
"eval.top_k" = [5, 6, 7]
"""


@pytest.fixture
def queued(tmp_path: Path) -> tuple[str, list[int]]:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    text = SPEC.format(out=tmp_path / "out")
    runs = compile_spec(parse_spec(text, base_dir=tmp_path))
    return url, list(store.submit_runs(get_engine(url), "pipe", text, runs).run_ids)


def test_runs_execute_and_store_every_setting(queued: tuple[str, list[int]]) -> None:
    url, ids = queued
    engine = get_engine(url)
    outcomes = LocalExecutor(device="cpu").run(engine, ids)
    assert [o.status for o in outcomes] == ["done"] * 3
    # 6 queries × (2 mono + 2 cross + 2 multi)
    assert store.count_rows(engine, QueryResult.__table__, ids[0]) == 6 * 6
    assert store.get_run(engine, ids[0])["finished_at"] is not None


def test_a_failed_run_does_not_stop_the_others(queued: tuple[str, list[int]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, ids = queued
    engine = get_engine(url)
    real = pipeline._evaluate

    def flaky(engine, run_id, *a, **k):
        if run_id == ids[1]:
            raise RuntimeError("disk full")
        return real(engine, run_id, *a, **k)

    monkeypatch.setattr(pipeline, "_evaluate", flaky)
    outcomes = LocalExecutor(device="cpu").run(engine, ids)
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    row = store.get_run(engine, ids[1])
    assert row["status"] == "failed" and "disk full" in row["error"]


def test_interrupt_requeues_and_resubmit_resumes(queued: tuple[str, list[int]],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    url, ids = queued
    engine = get_engine(url)

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_evaluate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LocalExecutor(device="cpu").run(engine, ids)
    row = store.get_run(engine, ids[0])
    assert row["status"] == "queued" and row["worker"] is None
    assert store.count_rows(engine, QueryResult.__table__) == 0
    monkeypatch.undo()
    outcomes = LocalExecutor(device="cpu").run(engine, ids)
    assert [o.run_id for o in outcomes] == ids and all(o.status == "done" for o in outcomes)


def test_database_outage_requeues_with_clear_error(queued: tuple[str, list[int]],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url, ids = queued
    engine = get_engine(url)

    def outage(*a, **k):
        raise OperationalError("INSERT …", {}, Exception("server closed the connection"))

    monkeypatch.setattr(store, "write_results", outage)
    with pytest.raises(DatabaseUnavailable, match="server closed the connection"):
        LocalExecutor(device="cpu").run(engine, ids[:1])
    assert store.get_run(engine, ids[0])["status"] == "queued"


def test_output_dir_is_fixed_at_submit_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's artefact folder is resolved when it is submitted, not in the worker's cwd."""
    import json

    from click.testing import CliRunner

    from xlrun.cli import main

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(out="relative-out"))
    db = f"sqlite:///{tmp_path / 'o.db'}"
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", db, "--no-run"])
    assert result.exit_code == 0, result.output
    row = store.get_run(get_engine(db), 1)
    assert json.loads(row["config_json"])["output_dir"] == str(tmp_path / "relative-out")
