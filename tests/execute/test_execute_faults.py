"""A broken device stops its own worker, not the queue (issue 22): device errors put the run
back in the queue (within --max-attempts), two in a row stop the worker, a run's own error is
still ``failed``; the deadline is shared and claims follow the worker's p90 run time."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from queue_helpers import enqueue as _enqueue

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.errors import SpecError, TrainingDiverged
from xlrun.execute.faults import is_device_error
from xlrun.execute.run_context import RunOutcome


def enqueue(url: str, tmp_path: Path, n: int) -> list[int]:
    return _enqueue(url, tmp_path, n, name="faults")


@pytest.mark.parametrize("error, device", [
    (RuntimeError("CUDA error: an illegal memory access was encountered"), True),
    (RuntimeError("CUDA error: all CUDA-capable devices are busy or unavailable"), True),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
    (RuntimeError("cuDNN error: CUDNN_STATUS_INTERNAL_ERROR"), True),
    (AssertionError("Torch not compiled with CUDA enabled"), True),
    (RuntimeError("CUDA error: device-side assert triggered"), True),
    (ValueError("bad value"), False),
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied (4x3 and 5x6)"), False),
    (SpecError("train.batch_size", "larger than the data", value=10**6), False),
    (TrainingDiverged("the loss became NaN at step 3 (CUDA)"), False),
    (KeyError("model"), False),
])
def test_device_errors_are_told_from_the_runs_own(error: BaseException, device: bool) -> None:
    assert is_device_error(error) is device


def test_a_device_error_raised_from_another_error_counts() -> None:
    try:
        try:
            raise RuntimeError("CUDA error: unspecified launch failure")
        except RuntimeError as inner:
            raise ValueError("while encoding") from inner
    except ValueError as e:
        assert is_device_error(e)


def _fail_load_with(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    import xlrun.execute.pipeline as pipeline

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(pipeline, "load_encoder", broken)


def test_a_failing_device_stops_its_worker_and_leaves_the_queue(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the worker marked every run of the queue ``failed``, one every second or two."""
    from xlrun.execute.worker import WorkerOptions, run_worker

    ids = enqueue(db_url, tmp_path, 5)
    _fail_load_with(monkeypatch, RuntimeError("CUDA error: an illegal memory access was "
                                              "encountered"))
    outcomes = run_worker(get_engine(db_url), WorkerOptions(device="cpu"))
    assert [o.run_id for o in outcomes] == ids[:2]
    assert [(o.status, o.fault) for o in outcomes] == [("queued", "device")] * 2
    assert outcomes.device_stop and "2 runs in a row hit device errors" in outcomes.stop_reason
    assert "illegal memory access" in outcomes.stop_reason
    engine = get_engine(db_url)
    for rid in ids[:2]:
        row = store.get_run(engine, rid)
        assert row["status"] == "queued" and row["attempts"] == 1
        assert row["error"].startswith("device error:") and row["worker"] is None
    for rid in ids[2:]:  # never touched: left for the healthy workers
        row = store.get_run(engine, rid)
        assert row["status"] == "queued" and row["attempts"] == 0 and row["error"] is None


def test_a_device_error_fails_the_run_once_its_attempts_are_spent(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xlrun.execute.worker import WorkerOptions, run_worker

    (rid,) = enqueue(sqlite_url, tmp_path, 1)
    _fail_load_with(monkeypatch, torch.OutOfMemoryError("CUDA out of memory"))
    engine = get_engine(sqlite_url)
    for attempt in (1, 2):
        out = run_worker(engine, WorkerOptions(device="cpu", max_attempts=3, max_runs=1))
        assert out[0].status == "queued" and store.get_run(engine, rid)["attempts"] == attempt
    out = run_worker(engine, WorkerOptions(device="cpu", max_attempts=3, max_runs=1))
    row = store.get_run(engine, rid)
    assert out[0].status == "failed" and row["status"] == "failed"
    assert "gave up after 3 attempts" in row["error"] and "out of memory" in row["error"]


def test_a_runs_own_error_is_failed_and_does_not_stop_the_worker(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xlrun.execute.worker import WorkerOptions, run_worker

    ids = enqueue(sqlite_url, tmp_path, 3)
    _fail_load_with(monkeypatch, SpecError("model.name", "no such model", value="x"))
    outcomes = run_worker(get_engine(sqlite_url), WorkerOptions(device="cpu"))
    assert [(o.run_id, o.status, o.fault) for o in outcomes] == [(i, "failed", "") for i in ids]
    assert not outcomes.device_stop
    assert "no such model" in store.get_run(get_engine(sqlite_url), ids[0])["error"]


def test_one_good_run_between_device_errors_resets_the_count(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import xlrun.execute.worker as worker_mod

    ids = enqueue(sqlite_url, tmp_path, 4)
    script = {ids[0]: "device", ids[1]: "done", ids[2]: "device", ids[3]: "done"}

    def fake(engine, run_id, **kwargs):
        if script[run_id] == "device":
            store.requeue_run(engine, run_id, kwargs["worker"], "device error: CUDA", 3)
            return RunOutcome(run_id, "queued", 1.0, "CUDA", fault="device")
        store.finish_run(engine, run_id, "done")
        return RunOutcome(run_id, "done", 1.0)

    monkeypatch.setattr(worker_mod, "execute_run", fake)
    outcomes = worker_mod.run_worker(get_engine(sqlite_url),
                                     worker_mod.WorkerOptions(max_runs=4))
    assert [o.run_id for o in outcomes] == ids and not outcomes.device_stop


def test_claims_follow_the_shared_deadline_and_the_p90_run_time(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each run takes 40 s; the deadline is 150 s away and the first guess 30 s: claims at
    t = 0 (150 s left ≥ 30), 40 (110 ≥ 40), 80 (70 ≥ 40); at 120 only 30 s are left."""
    import xlrun.execute.worker as worker_mod

    ids = enqueue(sqlite_url, tmp_path, 6)
    now = [1_000_000.0]

    def fake(engine, run_id, **kwargs):
        now[0] += 40.0
        store.finish_run(engine, run_id, "done")
        return RunOutcome(run_id, "done", 40.0)

    monkeypatch.setattr(worker_mod, "execute_run", fake)
    options = worker_mod.WorkerOptions(deadline=now[0] + 150, run_estimate_s=30.0)
    outcomes = worker_mod.run_worker(get_engine(sqlite_url), options, wall=lambda: now[0])
    assert [o.run_id for o in outcomes] == ids[:3]
    assert "30s left before the deadline" in outcomes.stop_reason and "p90 40s" in \
        outcomes.stop_reason
    # the first guess alone keeps a worker from starting a run it cannot finish
    options = worker_mod.WorkerOptions(deadline=now[0] + 20, run_estimate_s=30.0)
    assert list(worker_mod.run_worker(get_engine(sqlite_url), options,
                                      wall=lambda: now[0])) == []


def test_run_time_estimate_is_the_p90_without_the_cold_first_run() -> None:
    from xlrun.execute.worker import run_time_estimate

    assert run_time_estimate([], 45.0) == 45.0
    assert run_time_estimate([70.0], 45.0) == 70.0
    assert run_time_estimate([70.0, 30.0], 45.0) == pytest.approx(66.0)
    # from the third run on the cold first run is left out
    assert run_time_estimate([70.0, 30.0, 32.0, 31.0], 45.0) == pytest.approx(31.8)


def test_the_worker_command_exits_75_when_its_device_fails(tmp_path: Path) -> None:
    """A lane whose device cannot run anything (here a CUDA device that is not there): it
    stops after two runs with exit code 75, and the runs are back in the queue."""
    url = f"sqlite:///{tmp_path / 'f.db'}"
    ids = enqueue(url, tmp_path, 3)
    p = subprocess.run([sys.executable, "-m", "xlrun", "worker", "--db", url, "--device",
                        "cuda:99"], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, COLUMNS="300"))
    assert p.returncode == 75, p.stdout + p.stderr
    assert "worker stopped: 2 runs in a row hit device errors" in p.stderr
    engine = get_engine(url)
    assert [store.get_run(engine, i)["status"] for i in ids] == ["queued"] * 3


def test_xlrun_submit_stops_on_a_failing_device_too(
        sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local executor (``xlrun submit``) stops after two device errors in a row instead of
    trying every run three times and failing the submission; the runs stay queued."""
    from xlrun.execute.executors.local import LocalExecutor

    ids = enqueue(sqlite_url, tmp_path, 4)
    _fail_load_with(monkeypatch, RuntimeError("CUDA error: all CUDA-capable devices are busy "
                                              "or unavailable"))
    outcomes = LocalExecutor(device="cpu").run(get_engine(sqlite_url), ids)
    assert [(o.run_id, o.status) for o in outcomes] == [(ids[0], "queued"), (ids[1], "queued")]
    engine = get_engine(sqlite_url)
    assert [store.get_run(engine, i)["status"] for i in ids] == ["queued"] * 4
