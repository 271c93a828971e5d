"""A queue no bad run can stop (issue 24, item 2 and 4): every run that cannot be loaded or
run is marked and the worker goes on; a config written by a newer xlrun stays queued; reclaim
honours --max-attempts; liveness is judged by boot id, PID namespace and start time, never
by a pid from another namespace; --heartbeat and --stale-after are checked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from queue_helpers import enqueue
from sqlalchemy import update

from xlrun import processes
from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import Run


def set_config(url: str, run_id: int, edit) -> None:
    engine = get_engine(url)
    config = json.loads(store.get_run(engine, run_id)["config_json"])
    edit(config)
    with engine.begin() as conn:
        conn.execute(update(Run.__table__).where(Run.__table__.c.id == run_id)
                     .values(config_json=json.dumps(config)))


def statuses(url: str) -> dict[int, dict]:
    engine = get_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(Run.__table__.select()).mappings().all()
    return {r["id"]: dict(r) for r in rows}


def test_an_unreadable_config_fails_its_run_and_the_worker_goes_on(tmp_path: Path) -> None:
    """Before: RunContext.load ran outside execute_run's try — the worker died with a
    TypeError and the run stayed ``running``."""
    from xlrun.execute.worker import WorkerOptions, run_worker

    url = f"sqlite:///{tmp_path / 'q.db'}"
    bad, good = enqueue(url, tmp_path, 2)
    set_config(url, bad, lambda c: c.update(train=["not", "a", "section"]))
    outcomes = run_worker(get_engine(url), WorkerOptions(device="cpu"))
    assert [(o.run_id, o.status) for o in outcomes] == [(bad, "failed"), (good, "done")]
    rows = statuses(url)
    assert rows[bad]["status"] == "failed" and "section 'train'" in rows[bad]["error"]
    assert rows[good]["status"] == "done"


def test_a_config_from_a_newer_xlrun_stays_queued(db_url: str, tmp_path: Path) -> None:
    """Before: the unknown key raised a TypeError that killed the worker and left the run
    ``running`` for the next worker to die on."""
    from xlrun.execute.worker import WorkerOptions, run_worker

    first, second, third = enqueue(db_url, tmp_path, 3)
    set_config(db_url, first, lambda c: c["model"].update(a_future_option=True))
    set_config(db_url, second, lambda c: c.update(config_version=99))
    outcomes = run_worker(get_engine(db_url), WorkerOptions(device="cpu"))
    assert [(o.run_id, o.status) for o in outcomes] == [(third, "done")]
    rows = statuses(db_url)
    for rid, why in ((first, "model.a_future_option"), (second, "config_version is 99")):
        assert rows[rid]["status"] == "queued", rows[rid]
        assert "written by a newer xlrun" in rows[rid]["error"] and why in rows[rid]["error"]
        assert rows[rid]["attempts"] == 0  # not counted: it was never tried
        assert rows[rid]["worker"] is None


def test_a_newer_config_through_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    (rid,) = enqueue(url, tmp_path, 1)
    set_config(url, rid, lambda c: c["train"].update(a_future_option=1))
    p = subprocess.run([sys.executable, "-m", "xlrun", "worker", "--db", url, "--device", "cpu"],
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, COLUMNS="300"))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "written by a newer xlrun" in p.stdout + p.stderr
    assert statuses(url)[rid]["status"] == "queued"


def test_a_worker_error_outside_the_run_marks_the_run_and_goes_on(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xlrun.execute.worker as worker_mod
    from xlrun.execute.run_context import RunOutcome

    ids = enqueue(sqlite_url, tmp_path, 3)

    def flaky(engine, run_id, **kwargs):
        if run_id == ids[0]:
            raise TypeError("a bug outside the run's own try")
        store.finish_run(engine, run_id, "done")
        return RunOutcome(run_id, "done", 1.0)

    monkeypatch.setattr(worker_mod, "execute_run", flaky)
    outcomes = worker_mod.run_worker(get_engine(sqlite_url), worker_mod.WorkerOptions())
    assert [o.status for o in outcomes] == ["failed", "done", "done"]
    row = statuses(sqlite_url)[ids[0]]
    assert row["status"] == "failed" and "a bug outside" in row["error"]


# ----------------------------------------------------------------------------- reclaim
def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _hold(url: str, run_id: int, pid: int, identity: str | None, attempts: int = 1) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        conn.execute(update(Run.__table__).where(Run.__table__.c.id == run_id).values(
            status="running", worker=f"{socket.gethostname()}:{pid}:worker",
            worker_process=identity, attempts=attempts, heartbeat_at=store.db_now(conn)))


def test_reclaim_of_a_dead_worker_honours_max_attempts(db_url: str, tmp_path: Path) -> None:
    """Before: reclaim_dead_local requeued a run whose worker died every time (attempts 1, 2,
    3, 4, …), so a run that kills its worker took down worker after worker."""
    tired, fresh = enqueue(db_url, tmp_path, 2)
    pid = _dead_pid()
    here = f"{processes.boot_id()}/{processes.pid_namespace()}"
    _hold(db_url, tired, pid, f"{here}/{pid}/123", attempts=3)
    _hold(db_url, fresh, pid, f"{here}/{pid}/123", attempts=1)
    assert store.reclaim_dead_local(get_engine(db_url), max_attempts=3) == [fresh]
    rows = statuses(db_url)
    assert rows[tired]["status"] == "failed" and "gave up after 3 attempts" in rows[tired]["error"]
    assert rows[fresh]["status"] == "queued" and "is gone" in rows[fresh]["error"]


def test_a_holder_in_another_pid_namespace_is_never_judged_by_its_pid(
        db_url: str, tmp_path: Path) -> None:
    """A worker in a container with host networking (same hostname, its own PID namespace):
    its pid means nothing here. Before: the run was taken from the live worker because that
    pid did not exist in this namespace."""
    (rid,) = enqueue(db_url, tmp_path, 1)
    pid = _dead_pid()  # no such process here; in the holder's namespace it is alive
    _hold(db_url, rid, pid, f"{processes.boot_id()}/4026599999/{pid}/777")
    assert store.reclaim_dead_local(get_engine(db_url)) == []
    assert statuses(db_url)[rid]["status"] == "running"
    # another boot or machine with the same host name: likewise left to the heartbeats
    _hold(db_url, rid, pid, f"another-boot/{processes.pid_namespace()}/{pid}/777")
    assert store.reclaim_dead_local(get_engine(db_url)) == []
    # a claim without identity (an older xlrun): heartbeats only
    _hold(db_url, rid, pid, None)
    assert store.reclaim_dead_local(get_engine(db_url)) == []
    assert statuses(db_url)[rid]["status"] == "running"


def test_liveness_by_start_time_catches_a_reused_pid(sqlite_url: str, tmp_path: Path) -> None:
    if not Path("/proc/self/stat").is_file():
        pytest.skip("no /proc")
    live, reused = enqueue(sqlite_url, tmp_path, 2)
    me = processes.process_identity()
    _hold(sqlite_url, live, os.getpid(), me)
    boot, ns, pid, started = me.split("/")
    _hold(sqlite_url, reused, os.getpid(), f"{boot}/{ns}/{pid}/{int(started) - 50}")
    assert store.reclaim_dead_local(get_engine(sqlite_url)) == [reused]
    assert statuses(sqlite_url)[live]["status"] == "running"


def test_a_claim_records_the_process_identity(sqlite_url: str, tmp_path: Path) -> None:
    (rid,) = enqueue(sqlite_url, tmp_path, 1)
    assert store.claim_run(get_engine(sqlite_url), "w", [rid]) == rid
    ident = statuses(sqlite_url)[rid]["worker_process"]
    assert ident == processes.process_identity()
    assert processes.holder_gone(ident) is False


# ----------------------------------------------------------------------------- options
@pytest.mark.parametrize("args, message", [
    (["--heartbeat", "0"], "--heartbeat must be 1 second or more"),
    (["--heartbeat", "nan"], "--heartbeat must be 1 second or more"),
    (["--stale-after", "0"], "--stale-after must be at least twice --heartbeat"),
    (["--heartbeat", "10", "--stale-after", "15"], ">= 20 s"),
    (["--max-attempts", "0"], "--max-attempts must be 1 or more"),
    (["--deadline", "-1"], "--deadline must be a finite number >= 0"),
])
def test_worker_options_are_checked(tmp_path: Path, args: list[str], message: str) -> None:
    """Before: ``--stale-after 0`` took live runs from their workers and ``--heartbeat 0``
    sent ~140 database updates a second; both were accepted."""
    db = tmp_path / "never.db"
    p = subprocess.run([sys.executable, "-m", "xlrun", "worker", "--db", f"sqlite:///{db}",
                        *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stdout + p.stderr
    assert message in p.stderr and "Traceback" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    assert not db.exists()  # nothing written


def test_a_run_error_that_looks_like_markup_stops_no_loop(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: ``xlrun submit`` (the local executor) logged a failed run's last error line
    through rich markup, and an error text such as ``[/x]`` raised MarkupError out of the
    loop, leaving the other runs unrun."""
    import xlrun.execute.pipeline as pipeline
    import xlrun.execute.worker as worker_mod
    from xlrun.execute.executors.local import LocalExecutor
    from xlrun.execute.progress import RichProgress
    from xlrun.execute.run_context import RunOutcome

    error = "ValueError: bad value [/x] in [red]"

    def failing(engine, run_id, **kwargs):
        store.finish_run(engine, run_id, "failed", error=error)
        return RunOutcome(run_id, "failed", 1.0, error)

    monkeypatch.setattr(pipeline, "execute_run", failing)
    monkeypatch.setattr(worker_mod, "execute_run", failing)
    ids = enqueue(sqlite_url, tmp_path, 4)
    with RichProgress() as progress:
        outcomes = LocalExecutor(device="cpu").run(get_engine(sqlite_url), ids[:2], progress)
        assert [o.run_id for o in outcomes] == ids[:2]
        outcomes = worker_mod.run_worker(get_engine(sqlite_url), worker_mod.WorkerOptions(),
                                         progress)
    assert [o.run_id for o in outcomes] == ids[2:]
