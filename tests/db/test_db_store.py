"""Run lifecycle and result writes: idempotent, atomic, never duplicated."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest
from sqlalchemy import select, text

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import QueryResult, Run, RunMetric
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

SPEC = """
[experiment]
name = "s"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[[eval]]
dataset = "local"
[grid]
"eval.top_k" = [1, 2, 3, 4, 5]
"""


def compiled(tmp_path: Path) -> list:
    return compile_spec(parse_spec(SPEC, base_dir=tmp_path))


def test_submit_is_idempotent(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    runs = compiled(tmp_path)
    first = store.submit_runs(engine, "s", SPEC, runs)
    assert first.new == 5 and len(set(first.run_ids)) == 5
    again = store.submit_runs(engine, "s", SPEC, runs)
    assert again.new == 0 and again.run_ids == first.run_ids
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM runs")).scalar_one() == 5


def test_failed_runs_are_requeued_done_runs_kept(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    ids = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids
    assert store.claim_run(engine, "w", [ids[0]]) == ids[0]
    store.finish_run(engine, ids[0], "done", worker="w")
    assert store.claim_run(engine, "w", [ids[1]]) == ids[1]
    store.finish_run(engine, ids[1], "failed", error="boom", worker="w")
    res = store.submit_runs(engine, "s", SPEC, compiled(tmp_path))
    assert (res.new, res.requeued, res.done) == (0, 1, 1)
    assert store.get_run(engine, ids[1])["status"] == "queued"
    assert store.get_run(engine, ids[0])["status"] == "done"


def test_claims_never_collide(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    ids = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids
    claimed: list[int] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        eng = get_engine(db_url)
        while (rid := store.claim_run(eng, name, ids)) is not None:
            with lock:
                claimed.append(rid)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(claimed) == sorted(ids)


def test_heartbeat_and_reclaim(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    ids = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids
    rid = store.claim_run(engine, "w1", ids)
    assert store.heartbeat(engine, rid, "w1")
    assert not store.heartbeat(engine, rid, "w2")
    assert store.reclaim_stale(engine, 300) == []
    assert store.reclaim_stale(engine, -1) == [rid]  # a cutoff in the future: stale now
    row = store.get_run(engine, rid)
    assert row["status"] == "queued" and row["worker"] is None
    # the old worker can no longer finish it
    assert not store.finish_run(engine, rid, "done", worker="w1")


def _frames(n: int, ap: float) -> dict[str, pl.DataFrame]:
    qr = pl.DataFrame({
        "dataset": ["d"] * n, "split": ["test"] * n, "setting": ["mono"] * n,
        "query_id": [f"q{i}" for i in range(n)], "query_lang": ["en"] * n, "doc_lang": ["en"] * n,
        "n_relevant": [1] * n, "ap": [ap] * n, "ndcg_at_10": [ap] * n, "mrr_at_10": [ap] * n,
        "recall_at_100": [1.0] * n, "first_relevant_rank": [1] * n,
        "rank_distance": [None] * n, "same_lang_at_10": [None] * n, "same_lang_expected": [None] * n,
    }, schema_overrides={"rank_distance": pl.Float64, "same_lang_at_10": pl.Float64,
                         "same_lang_expected": pl.Float64})
    rm = pl.DataFrame({"dataset": ["d"], "split": ["test"], "setting": ["mono"],
                       "query_lang": ["en"], "doc_lang": ["en"], "metric": ["map"], "value": [ap]})
    return {"query_results": qr, "run_metrics": rm, "retrieved": None}


def test_write_results_replaces_whole_set(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    rid = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids[0]
    store.write_results(engine, rid, "d", "test", _frames(10, 0.5))
    store.write_results(engine, rid, "d", "test", _frames(7, 0.25))  # a retry: replaced, not added
    assert store.count_rows(engine, QueryResult.__table__, rid) == 7
    with engine.connect() as conn:
        assert conn.execute(select(RunMetric.__table__.c.value)).scalar_one() == 0.25


def test_write_results_is_atomic(db_url: str, tmp_path: Path) -> None:
    """A failure in the middle of a result set leaves the previous set untouched."""
    engine = get_engine(db_url)
    rid = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids[0]
    store.write_results(engine, rid, "d", "test", _frames(5, 0.5))
    bad = _frames(8, 0.9)
    bad["run_metrics"] = pl.DataFrame({"dataset": ["d"], "split": ["test"], "setting": ["mono"],
                                       "query_lang": ["en"], "doc_lang": ["en"],
                                       "metric": ["map"], "value": [None]})  # NOT NULL violation
    with pytest.raises(Exception):  # noqa: B017 - the driver's IntegrityError subclass varies
        store.write_results(engine, rid, "d", "test", bad)
    assert store.count_rows(engine, QueryResult.__table__, rid) == 5


def test_runs_cascade(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    rid = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids[0]
    store.write_results(engine, rid, "d", "test", _frames(3, 0.5))
    with engine.begin() as conn:
        conn.execute(Run.__table__.delete().where(Run.__table__.c.id == rid))
    assert store.count_rows(engine, QueryResult.__table__) == 0


def test_bulk_path_keeps_values_exactly(db_url: str, tmp_path: Path) -> None:
    """The COPY / executemany fast path round-trips NULLs, floats, booleans and odd strings."""
    engine = get_engine(db_url)
    rid = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids[0]
    odd = ['q,1', 'q"2', "q\n3", "q\\N", "ü 北京"]
    ret = pl.DataFrame({
        "dataset": ["d"] * 5, "split": ["test"] * 5, "setting": ["multi"] * 5,
        "query_lang": ["en"] * 5, "doc_lang": ["all"] * 5, "query_id": odd,
        "rank": [1, 2, 3, 4, 5], "doc_id": ["", "a,b", 'c"d', "e\\f", "g"],
        "score": [0.1 + 0.2, -1e-300, 1 / 3, 123456.789012345, 0.0],
        "is_relevant": [True, False, True, False, True]})
    frames = _frames(2, 0.5)
    frames["retrieved"] = ret
    store.write_results(engine, rid, "d", "test", frames)
    from xlrun.db.models import Retrieved

    t = Retrieved.__table__
    with engine.connect() as conn:
        got = conn.execute(select(t.c.query_id, t.c.doc_id, t.c.score, t.c.is_relevant)
                           .where(t.c.run_id == rid).order_by(t.c.rank)).all()
        qr = conn.execute(select(QueryResult.__table__.c.rank_distance)).scalars().all()
    assert [tuple(r) for r in got] == list(zip(ret["query_id"], ret["doc_id"], ret["score"],
                                               ret["is_relevant"], strict=True))
    assert qr == [None, None]


def test_a_run_that_keeps_killing_workers_is_given_up(db_url: str, tmp_path: Path) -> None:
    engine = get_engine(db_url)
    rid = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids[0]
    for attempt in range(1, 4):
        assert store.claim_run(engine, f"w{attempt}", [rid]) == rid
        reclaimed = store.reclaim_stale(engine, -1, max_attempts=3)
        assert reclaimed == ([rid] if attempt < 3 else [])
    row = store.get_run(engine, rid)
    assert row["status"] == "failed" and "gave up after 3 attempts" in row["error"]


def test_staleness_is_judged_by_the_database_clock(db_url: str, tmp_path: Path) -> None:
    """A heartbeat 2 s old is stale after 1 s but not after 60 s, whatever the client's clock."""
    import time

    engine = get_engine(db_url)
    rid = store.submit_runs(engine, "s", SPEC, compiled(tmp_path)).run_ids[0]
    store.claim_run(engine, "w", [rid])
    time.sleep(2.1)
    assert store.reclaim_stale(engine, 60) == []
    assert store.reclaim_stale(engine, 1) == [rid]
