"""Crash safety with real training: kill -9 of a worker mid-training, and torchrun runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import BatchLanguages, TrainLog
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

SPEC = """
[experiment]
name = "crash"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 24
passage_max_length = 32
[train_data]
source = "quickstart"
languages = ["en", "de", "ru"]
[sampling]
strategy = "hybrid"
[train]
steps = {steps}
batch_size = 8
lr = 1e-3
log_every = 5
checkpoint_every = 10
gpus = {gpus}
[[eval]]
dataset = "quickstart"
languages = ["en", "de", "ru"]
settings = ["mono", "cross"]
max_queries_per_language = 10
"""


def enqueue(tmp_path: Path, steps: int, gpus: int = 1) -> tuple[str, int]:
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    text = SPEC.format(out=tmp_path / "out", steps=steps, gpus=gpus)
    runs = compile_spec(parse_spec(text, base_dir=tmp_path))
    return url, store.submit_runs(get_engine(url), "crash", text, runs).run_ids[0]


def worker(url: str, cwd: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "xlrun", "worker", "--db", url, "--device",
                             "cpu", "--heartbeat", "1", *extra], cwd=cwd,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for_step(url: str, run_id: int, step: int, proc: subprocess.Popen) -> None:
    """Poll train_log until ``step`` is logged; fail if ``proc`` dies or 180 s pass."""
    deadline = time.time() + 180
    while max_logged_step(url, run_id) < step:
        assert proc.poll() is None, "the process ended before training got there"
        assert time.time() < deadline, "training did not get there in time"
        time.sleep(0.2)


def max_logged_step(url: str, run_id: int) -> int:
    t = TrainLog.__table__
    with get_engine(url).connect() as conn:
        return conn.execute(select(func.max(t.c.step)).where(t.c.run_id == run_id)).scalar() or 0


@pytest.mark.slow
def test_kill_9_during_training_is_reclaimed_and_resumed(tmp_path: Path) -> None:
    url, rid = enqueue(tmp_path, steps=60)
    first = worker(url, tmp_path)
    wait_for_step(url, rid, 25, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = max_logged_step(url, rid)
    assert store.get_run(get_engine(url), rid)["status"] == "running"  # orphaned
    assert killed_at < 60
    time.sleep(3)
    second = worker(url, tmp_path, "--stale-after", "2")
    out = second.communicate(timeout=600)[0]
    assert second.returncode == 0, out
    assert "reclaimed run" in out
    resumed = [line for line in out.splitlines() if "resumed from the checkpoint at step" in line]
    assert resumed, out
    step = int(resumed[0].split("step")[-1].split()[0])
    assert 10 <= step <= killed_at  # from the last checkpoint, not from scratch
    row = store.get_run(get_engine(url), rid)
    assert row["status"] == "done" and row["attempts"] == 2
    # train_log has each step once, up to the end
    t = TrainLog.__table__
    with get_engine(url).connect() as conn:
        steps = [r[0] for r in conn.execute(select(t.c.step).where(t.c.run_id == rid))]
    assert len(steps) == len(set(steps)) and max(steps) == 60


@pytest.mark.slow
def test_multi_process_training_with_torchrun(tmp_path: Path) -> None:
    """train.gpus = 2 runs under torchrun (gloo on CPU here): two ranks, one global batch."""
    url, rid = enqueue(tmp_path, steps=6, gpus=2)
    proc = worker(url, tmp_path)
    out = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, out
    engine = get_engine(url)
    assert store.get_run(engine, rid)["status"] == "done", store.get_run(engine, rid)["error"]
    b = BatchLanguages.__table__
    with engine.connect() as conn:
        pairs = conn.execute(select(b.c.step, func.sum(b.c.pairs)).where(b.c.run_id == rid)
                             .group_by(b.c.step)).all()
    # global batch = per-device batch (8) × 2 ranks, recorded once (by rank 0)
    assert len(pairs) == 6 and all(n == 16 for _, n in pairs)
    assert max_logged_step(url, rid) == 6


@pytest.mark.slow
def test_resubmitting_after_a_crash_resumes_at_once(tmp_path: Path) -> None:
    """kill -9 of `xlrun submit`, then the same command again: the orphaned run is taken
    back immediately (its worker process is gone) and resumes from its checkpoint."""
    _, rid = enqueue(tmp_path, steps=60)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(out=tmp_path / "out", steps=60, gpus=1))
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", COLUMNS="200")
    cmd = [sys.executable, "-m", "xlrun", "submit", str(spec), "--db", url, "--device", "cpu"]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    wait_for_step(url, rid, 15, first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert store.get_run(get_engine(url), rid)["status"] == "running"
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=600)
    out = again.stdout + again.stderr
    assert again.returncode == 0, out
    assert "worker on this machine is gone" in out and "resumed from the checkpoint" in out
    assert store.get_run(get_engine(url), rid)["status"] == "done"


@pytest.mark.slow
def test_sigterm_puts_the_run_back_in_the_queue(tmp_path: Path) -> None:
    """SLURM's time limit or a plain `kill` (SIGTERM) is handled like Ctrl-C."""
    url, rid = enqueue(tmp_path, steps=400)
    proc = worker(url, tmp_path)
    wait_for_step(url, rid, 5, proc)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    row = store.get_run(get_engine(url), rid)
    assert row["status"] == "queued" and row["error"] == "interrupted"
