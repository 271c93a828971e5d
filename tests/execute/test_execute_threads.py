"""Workers divide the machine: thread shares, the live-worker registry, lanes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from xlrun.execute.threads import (
    THREAD_ENV_VARS,
    ThreadBudget,
    WorkerRegistry,
    share_of_cores,
    thread_env,
)

REPO = Path(__file__).resolve().parents[2]


def test_share_of_cores() -> None:
    assert share_of_cores(4, cores=2) == 1
    assert share_of_cores(1, cores=2) == 2
    assert share_of_cores(4, cores=16) == 4
    assert share_of_cores(3, cores=16) == 5
    assert share_of_cores(0, cores=8) == 8


def test_thread_env_caps_every_pool() -> None:
    env = thread_env(1)
    assert all(env[v] == "1" for v in THREAD_ENV_VARS)
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert thread_env(4)["TOKENIZERS_PARALLELISM"] == "true"


def test_registry_counts_live_workers_and_drops_dead_ones(tmp_path: Path) -> None:
    reg = WorkerRegistry(tmp_path)
    assert reg.live() == 0 and reg.count() == 1
    reg.register()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (tmp_path / dead).write_text("1")  # a worker that exited without unregistering
    lanes_parent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (tmp_path / str(lanes_parent.pid)).write_text("3")
        assert reg.live() == 4
        assert not (tmp_path / dead).exists()
        budget = ThreadBudget(0, reg)
        assert budget.threads() == share_of_cores(4)
        assert ThreadBudget(3, reg).threads() == 3
    finally:
        lanes_parent.kill()
        lanes_parent.wait()
    reg.unregister()
    assert reg.live() == 0


def test_limit_threads_sets_torch_and_environment() -> None:
    code = ("from xlrun.execute.threads import limit_threads\n"
            "limit_threads(1)\n"
            "import os, torch\n"
            "print(torch.get_num_threads(), torch.get_num_interop_threads(), "
            "os.environ['OMP_NUM_THREADS'], os.environ['TOKENIZERS_PARALLELISM'])\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["1", "1", "1", "false"]


SPEC = """
[experiment]
name = "lanes"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[[eval]]
dataset = "quickstart"
languages = ["en", "ru"]
max_queries_per_language = 4
top_k = 0
[grid]
"eval.batch_size" = [8, 16, 32]
"""


@pytest.mark.slow
def test_worker_lanes_run_the_queue(tmp_path: Path) -> None:
    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec

    url = f"sqlite:///{tmp_path / 'lanes.db'}"
    text = SPEC.format(out=tmp_path / "out")
    store.submit_runs(get_engine(url), "lanes", text,
                      compile_spec(parse_spec(text, base_dir=tmp_path)))
    p = subprocess.run([sys.executable, "-m", "xlrun", "worker", "--db", url, "--device", "cpu",
                        "--lanes", "2", "--threads", "1"], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "2 lanes started" in p.stderr
    from sqlalchemy import create_engine
    from sqlalchemy import text as sql

    with create_engine(url).connect() as conn:
        rows = conn.execute(sql("SELECT status, worker, timings_json FROM runs")).all()
    assert [r.status for r in rows] == ["done"] * 3
    assert {r.worker.rsplit("-", 1)[-1] for r in rows} <= {"lane1", "lane2"}
    assert all(r.timings_json for r in rows)
