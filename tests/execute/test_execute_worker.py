"""Many workers on one database: every run is executed exactly once, nothing duplicated."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import QueryResult, Run
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

TINY = """
[experiment]
name = "workers"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
settings = ["mono", "cross"]
top_k = 3
[grid]
"eval.max_queries_per_language" = [{values}]
"""


def enqueue(url: str, tmp_path: Path, n: int) -> list[int]:
    text = TINY.format(out=tmp_path / "out", values=", ".join(str(i + 1) for i in range(n)))
    runs = compile_spec(parse_spec(text, base_dir=tmp_path))
    assert len(runs) == n
    return list(store.submit_runs(get_engine(url), "workers", text, runs).run_ids)


def start_worker(url: str, cwd: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")  # 4 workers, 2 cores
    return subprocess.Popen([sys.executable, "-m", "xlrun", "worker", "--db", url,
                             "--device", "cpu", *extra], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_four_workers_twenty_runs_exactly_once(db_url: str, tmp_path: Path) -> None:
    ids = enqueue(db_url, tmp_path, 20)
    procs = [start_worker(db_url, tmp_path) for _ in range(4)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    engine = get_engine(db_url)
    run_t, qr = Run.__table__, QueryResult.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(run_t.c.id, run_t.c.status, run_t.c.attempts,
                                   run_t.c.worker)).all()
        per_run = dict(conn.execute(select(qr.c.run_id, func.count()).group_by(qr.c.run_id)).all())
    assert sorted(r.id for r in rows) == sorted(ids)
    assert all(r.status == "done" and r.attempts == 1 for r in rows), rows
    # run i evaluates i queries per language in 2 languages, mono (2 pairs) + cross (2 pairs)
    by_id = {rid: i + 1 for i, rid in enumerate(ids)}
    assert per_run == {rid: 4 * n for rid, n in by_id.items()}
    # the work was actually shared out
    assert len({r.worker for r in rows}) >= 2


def test_kill_during_result_write_leaves_no_partial_set(tmp_path: Path) -> None:
    """kill -9 in the middle of a result-set transaction: all rows or none, never some."""
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    rid = enqueue(url, tmp_path, 1)[0]
    script = f"""
import polars as pl, sys
from xlrun.db.engine import get_engine
from xlrun.db import store
n = 400_000
qr = pl.DataFrame({{"dataset": ["d"] * n, "split": ["test"] * n, "setting": ["mono"] * n,
    "query_id": [f"q{{i}}" for i in range(n)], "query_lang": ["en"] * n, "doc_lang": ["en"] * n,
    "n_relevant": [1] * n, "ap": [0.5] * n, "ndcg_at_10": [0.5] * n, "mrr_at_10": [0.5] * n,
    "recall_at_100": [1.0] * n, "first_relevant_rank": [1] * n}})
print("writing", flush=True)
store.write_results(get_engine("{url}"), {rid}, "d", "test", {{"query_results": qr}})
print("written", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    import time

    time.sleep(1.0)
    proc.kill()
    proc.wait()
    n = store.count_rows(get_engine(url), QueryResult.__table__, rid)
    assert n in (0, 400_000)


def test_claim_for_stops_claiming_and_leaves_the_rest_queued(sqlite_url: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``claim_for_s``, the run in progress at the limit finishes; no new run starts."""
    import xlrun.execute.worker as worker_mod
    from xlrun.execute.run_context import RunOutcome

    ids = enqueue(sqlite_url, tmp_path, 5)
    now = [0.0]
    executed: list[int] = []

    def fake_execute(engine, run_id, **kwargs):
        executed.append(run_id)
        now[0] += 40.0  # each run takes 40 "seconds"
        store.finish_run(engine, run_id, "done")
        return RunOutcome(run_id, "done", 40.0)

    monkeypatch.setattr(worker_mod, "execute_run", fake_execute)
    options = worker_mod.WorkerOptions(device="cpu", claim_for_s=100.0)
    outcomes = worker_mod.run_worker(get_engine(sqlite_url), options, clock=lambda: now[0])
    # claims at t = 0, 40, 80 (each finishes); at t = 120 the claim time is spent
    assert executed == ids[:3] and [o.status for o in outcomes] == ["done"] * 3
    with get_engine(sqlite_url).connect() as conn:
        status = dict(conn.execute(select(Run.__table__.c.id, Run.__table__.c.status)).all())
    assert [status[i] for i in ids] == ["done"] * 3 + ["queued"] * 2
