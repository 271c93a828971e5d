"""The SLURM path, exercised through submitit's local executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.execute.executors.slurm import SlurmExecutor
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

submitit = pytest.importorskip("submitit")

SPEC = """
[experiment]
name = "slurm"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[executor]
kind = "slurm"
partition = "gpu"
time_limit_min = 10
[[eval]]
dataset = "quickstart"
languages = ["en", "el"]
settings = ["mono"]
max_queries_per_language = 3
[grid]
"eval.top_k" = [1, 2]
"""


@pytest.mark.slow
def test_slurm_jobs_run_workers_against_the_shared_db(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    text = SPEC.format(out=tmp_path / "out")
    spec = parse_spec(text, base_dir=tmp_path)
    ids = store.submit_runs(get_engine(url), "slurm", text, compile_spec(spec)).run_ids
    ex = SlurmExecutor.from_spec(spec.executor, db_url=url, folder=tmp_path / "jobs",
                                 cluster="local", device="cpu")
    assert ex.partition == "gpu" and ex.time_limit_min == 10
    cmd = ex.command(ids[0])
    assert cmd[cmd.index("worker"):cmd.index("worker") + 5] == ["worker", "--run", str(ids[0]),
                                                                "--db", url]
    jobs = ex.submit(get_engine(url), ids)
    assert len(jobs) == 2
    for job in jobs:
        job.result()  # raises if the job failed
    engine = get_engine(url)
    assert [store.get_run(engine, i)["status"] for i in ids] == ["done", "done"]
    # a resubmission sends no job for finished runs
    assert ex.submit(engine, ids) == []


def test_passwords_stay_off_command_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    from xlrun.errors import UsageError

    url = "postgresql+psycopg2://alice:s3cret@db.example/xlrun"
    ex = SlurmExecutor(db_url=url, cluster="local")
    assert not any("s3cret" in part for part in ex.command(1))
    monkeypatch.delenv("XLRUN_DB", raising=False)
    with pytest.raises(UsageError, match="XLRUN_DB"):
        ex.submit(None, [1])  # refused before anything is submitted


@pytest.mark.parametrize("url", [
    "postgresql+psycopg2://alice@db.example/xlrun?password=s3cret",
    "postgresql+psycopg2://alice@db.example/xlrun?sslmode=require&sslpassword=s3cret",
    "postgresql+psycopg2:///xlrun?host=db.example&password=s3cret"])
def test_passwords_in_the_query_stay_off_command_lines(url: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 24: a ?password= URL went onto the job command line and into submitit's
    pickles."""
    from xlrun.errors import UsageError

    ex = SlurmExecutor(db_url=url, cluster="local")
    assert not any("s3cret" in part for part in ex.command(1))
    monkeypatch.delenv("XLRUN_DB", raising=False)
    with pytest.raises(UsageError, match="XLRUN_DB"):
        ex.submit(None, [1])
