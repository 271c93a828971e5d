"""A CPU rehearsal of the GPU study command (benchmarks/study/gpu_study.sh), end to end.

The same script the GPU machine runs, with the install step skipped, on CPU: a tiny random
model pack around the real tokenizer (restricted to the data slice), a small slice of the
real MLQA-R/XQuAD-R data (a generated LAReQA-format corpus without ../shared), the two study
specs cut to the untrained reference + hybrid/size + hybrid/clustered × 2 seeds.

What it shows (issue 22): the runs go in the priority order; a smoke over its time limit
warns and the study goes on; a lane whose device fails (here a CUDA device that is not
there) stops after two runs, which go back to the queue and are run by the healthy lanes,
and the summary says so; the export reports through every command of docs/results.md. Then
a second call resumes from the first one's export (its run table only) and is killed with
SIGKILL in the middle of its runs: what it left in its OUT_DIR imports, with every run that
had finished before the kill.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
STUDY = REPO / "benchmarks" / "study"
FILES = {"study-export.tar", "status.txt", "timings.csv", "run.json", "smoke.txt", "study.log",
         "lanes.log", "bench.json"}


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHON=sys.executable,
               XLRUN_STUDY_WORK=str(tmp / "work"), XLRUN_OUTPUT=str(tmp / "work" / "out"))
    env.pop("XLRUN_DB", None)
    env.update(extra)
    return env


def _import_parts(tar_path: Path, dest: Path, db: Path) -> set[str]:
    """Every part of a study tar imported into ``db``; the run keys it holds."""
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import import_database

    with tarfile.open(tar_path) as tar:
        tar.extractall(dest, filter="data")
    engine = get_engine(f"sqlite:///{db}")
    for part in sorted(p for p in dest.iterdir() if (p / "manifest.json").is_file()):
        import_database(engine, part)
    with engine.connect() as conn:
        keys = {r[0] for r in conn.exec_driver_sql("SELECT run_key FROM runs WHERE status = "
                                                   "'done'")}
    engine.dispose()
    return keys


LATENCY_S = 8.0
"""A finished run is in OUT_DIR's export within this many seconds (a poll, its export, the
tar rewritten: about 2 s on a loaded 2-core machine)."""


def _epoch(stamp: str) -> float:
    """``runs.finished_at`` (UTC, as SQLite holds it) in epoch seconds."""
    return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()


def _gone(pid: int, wait_s: float = 20.0) -> bool:
    """Whether process ``pid`` has ended (a zombie nobody reaped counts as ended)."""
    end = time.time() + wait_s
    while time.time() < end:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.5)
    return False


@pytest.mark.slow
def test_gpu_study_script_rehearsed_on_cpu(tmp_path: Path) -> None:
    dev = tmp_path / "device"
    shared = str(SHARED) if SHARED.is_dir() else str(tmp_path / "no-shared")
    p = subprocess.run([sys.executable, str(STUDY / "prepare.py"), "--rehearsal", str(dev),
                        "--shared", shared], capture_output=True, text=True, timeout=600,
                       env=_env(tmp_path))
    assert p.returncode == 0, p.stdout + p.stderr
    specs = f"{dev}/specs/lareqa_study.toml {dev}/specs/lareqa_study_b.toml"
    out = tmp_path / "out"
    # lane 3 has a device that cannot run anything; the smoke's limit is far too short
    env = _env(tmp_path, SKIP_INSTALL="1", XLRUN_STUDY_DEVICE="cpu", DEVICE_DIR=str(dev),
               STUDY_SPECS=specs, RESUME_DIR=str(tmp_path / "none"),
               LANE_DEVICES="cpu cpu cuda:99", BUDGET_S="800", RUN_ESTIMATE_S="20",
               EXPORT_RESERVE_S="30", SMOKE_S="0.5", SMOKE_TIMEOUT_S="600", BENCH_ARGS="--tiny", BENCH_MIN_S="20")
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(STUDY / "gpu_study.sh"), str(out)], capture_output=True,
                       text=True, timeout=1200, env=env)
    seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    files = sorted(f.name for f in out.iterdir())
    assert set(files) == FILES, files  # 8 files, none left half-written
    report = json.loads((out / "run.json").read_text())
    status = (out / "status.txt").read_text()
    assert report["complete"] is True and report["status"] == {"done": 10}, (report, status)
    assert report["export_bytes"] < 8e6 and report["exported_runs"] == 10

    # the smoke: nvidia-smi recorded (absent here), over its limit, a warning, the study went on
    smoke = (out / "smoke.txt").read_text()
    assert "nvidia-smi: not found" in smoke and "smoke ok on cpu" in smoke
    assert "SMOKE SLOW" in smoke and "over the 0s limit" in smoke
    assert "warning: the smoke was slow; going on" in (out / "study.log").read_text()

    # the failing lane stopped after two runs, which the healthy lanes then ran
    lanes = {lane["lane"]: lane for lane in report["lanes"]}
    assert lanes[3]["stopped_for_device_errors"] and lanes[3]["exit_code"] == 75, lanes
    assert lanes[3]["runs_given_back"] == 2 and lanes[3]["runs_done"] == 0
    assert "2 runs in a row hit device errors" in lanes[3]["stop_reason"]
    assert "Torch not compiled with CUDA" in lanes[3]["stop_reason"] or "CUDA" in \
        lanes[3]["stop_reason"]
    assert lanes[1]["exit_code"] == 0 and lanes[2]["exit_code"] == 0
    assert lanes[1]["runs_done"] + lanes[2]["runs_done"] == 10
    assert "lane 3 (cuda:99): exit 75" in status and "hit device errors" in status
    db = sqlite3.connect(tmp_path / "work" / "study.db")
    rows = db.execute("SELECT id, sampler, language_sampling, seed, attempts, status, error "
                      "FROM runs ORDER BY id").fetchall()
    assert sorted(r[4] for r in rows) == [1] * 8 + [2] * 2  # the two given back: tried twice
    assert all(r[5] == "done" for r in rows)

    # the priority order: the references, then seed 1 of every key arm (A, then B), seed 2
    order = [(r[1], r[2], r[3]) for r in rows]
    assert [s for s, _, _ in order[:2]] == ["none", "none"]
    assert [seed for _, _, seed in order[2:]] == [1, 1, 1, 1, 2, 2, 2, 2]
    assert [ls for _, ls, _ in order[2:6]] == ["size", "clustered", "size", "clustered"]

    # stage timings with the input shapes of each run
    timings = (out / "timings.csv").read_text().splitlines()
    assert len(timings) == 11 and "shapes_train" in timings[0] and "shapes_encode" in timings[0]

    # the time the study left went to the throughput benchmarks (toy models here)
    bench = json.loads((out / "bench.json").read_text())
    assert bench["skipped"] == [] and bench["tiny"] is True, bench
    assert {"train_ratio", "encode_ratio_256"} <= set(bench["summary"]), bench["summary"]

    # the export reports through every documented command
    p = subprocess.run([sys.executable, str(STUDY / "check_results_doc.py"), "--export",
                        str(out / "study-export.tar"), "--in-process"], capture_output=True,
                       text=True, timeout=600, env=_env(tmp_path))
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]

    # ---- a second allocation: resumes from the export (committed as
    # docs/study/export/alloc-1 would be), adds seeds 3-7, and is killed with SIGKILL once
    # some of its 20 new runs have finished
    resume = tmp_path / "resume" / "alloc-1"
    resume.mkdir(parents=True)
    with tarfile.open(out / "study-export.tar") as tar:
        tar.extractall(resume, filter="data")
    more = []
    for name in ("lareqa_study.toml", "lareqa_study_b.toml"):
        spec = dev / "specs" / name
        spec3 = spec.with_name(name.replace(".toml", "_3.toml"))
        spec3.write_text(spec.read_text().replace("seeds = [1, 2]",
                                                  "seeds = [1, 2, 3, 4, 5, 6, 7]"))
        more.append(str(spec3))
    out2 = tmp_path / "out2"
    work2 = tmp_path / "work2"
    proc = subprocess.Popen(
        [sys.executable, str(STUDY / "study.py"), "run", str(out2), "--deadline",
         str(time.time() + 900), "--device", "cpu", "--lanes", "2", "--specs", *more,
         "--resume", str(tmp_path / "resume"), "--run-estimate", "10"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        env=_env(tmp_path, XLRUN_E5=str(tmp_path / "work" / "model"),
                 XLRUN_STUDY_WORK=str(work2)))
    study_db = work2 / "study.db"
    deadline = time.time() + 400
    done_at_kill: dict[str, float] = {}
    try:
        while time.time() < deadline and proc.poll() is None:
            if study_db.is_file():
                con = sqlite3.connect(study_db, timeout=30)
                try:
                    done = [_epoch(f) for (f,) in con.execute(
                        "SELECT finished_at FROM runs WHERE status = 'done'")]
                except sqlite3.OperationalError:  # not migrated yet
                    done = []
                finally:
                    con.close()
                # kill once a run finished LATENCY_S ago: the next may be half done, half
                # exported or being written to OUT_DIR at that moment
                if done and min(done) < time.time() - LATENCY_S:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()[0][-4000:]
        kill_time = time.time()
        os.killpg(proc.pid, signal.SIGKILL)  # the whole call, at once
        proc.wait(timeout=60)
        con = sqlite3.connect(study_db, timeout=30)
        done_at_kill = {k: _epoch(f) for k, f in con.execute(
            "SELECT run_key, finished_at FROM runs WHERE status = 'done'")}
        workers = [w for (w,) in con.execute("SELECT worker FROM runs WHERE worker IS NOT "
                                             "NULL")]
        con.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for w in workers:  # the lanes died with their parent (no lane runs on)
        assert _gone(int(w.split(":")[1])), w
    assert done_at_kill
    left = {f.name for f in out2.iterdir()}
    assert "study-export.tar" in left and left <= FILES | {".partial"}
    report2 = json.loads((out2 / "run.json").read_text())
    assert report2["complete"] is False and report2["resumed_runs"] == 10
    assert report2["enqueue"] == {"runs": 30, "done": 10, "new": 20}
    assert report2["setup_seconds"]["resume"] < 10
    exported = _import_parts(out2 / "study-export.tar", tmp_path / "imported",
                             tmp_path / "imported.db")
    # every run in OUT_DIR was finished; every run finished before the kill is in OUT_DIR,
    # but for one that finished in the last seconds (its export takes a moment)
    assert exported <= set(done_at_kill)
    late = {k for k, t in done_at_kill.items() if t > kill_time - LATENCY_S}
    assert set(done_at_kill) - late <= exported and exported, (done_at_kill, exported)
    print(f"rehearsal: {seconds:.0f}s for the script")
