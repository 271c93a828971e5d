"""A CPU rehearsal of the GPU study command (benchmarks/study/gpu_study.sh), end to end.

The same script the GPU machine runs, with the install step skipped, on CPU: a tiny random
model pack around the real tokenizer (restricted to the data slice), a small slice of the
real MLQA-R/XQuAD-R data (a generated LAReQA-format corpus without ../shared), the two study
specs cut to the untrained reference + hybrid/size + hybrid/clustered × 2 seeds, then the
throughput benchmarks on toy models with the time left. Then the
export is imported and reported through every command of docs/results.md, and a second
call resumes from the first one's export under a deadline that leaves no time for new runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
STUDY = REPO / "benchmarks" / "study"


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHON=sys.executable,
               XLRUN_STUDY_WORK=str(tmp / "work"), XLRUN_OUTPUT=str(tmp / "work" / "out"))
    env.pop("XLRUN_DB", None)
    env.update(extra)
    return env


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
    env = _env(tmp_path, SKIP_INSTALL="1", XLRUN_STUDY_DEVICE="cpu", DEVICE_DIR=str(dev),
               STUDY_SPECS=specs, RESUME_DIR=str(tmp_path / "none"), LANES="2",
               BUDGET_S="500", MIN_RUN_S="20", EXPORT_RESERVE_S="30", SMOKE_S="400",
               BENCH_ARGS="--tiny", BENCH_MIN_S="20")
    t0 = time.monotonic()
    p = subprocess.run(["bash", str(STUDY / "gpu_study.sh"), str(out)], capture_output=True,
                       text=True, timeout=900, env=env)
    seconds = time.monotonic() - t0
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    files = sorted(f.name for f in out.iterdir())
    assert len(files) <= 8 and {"study-export.tar", "status.txt", "timings.csv", "run.json",
                                "smoke.txt", "study.log", "lanes.log", "bench.json"} <= set(files), files
    report = json.loads((out / "run.json").read_text())
    assert report["status"] == {"done": 10}, (report, (out / "status.txt").read_text())
    assert report["export_bytes"] < 8e6
    timings = (out / "timings.csv").read_text().splitlines()
    assert len(timings) == 11 and "encode" in timings[0]
    assert "smoke ok on cpu" in (out / "smoke.txt").read_text()
    # the time the study left went to the throughput benchmarks (toy models here)
    bench = json.loads((out / "bench.json").read_text())
    assert bench["skipped"] == [] and bench["tiny"] is True, bench
    assert {"train_ratio", "encode_ratio_256"} <= set(bench["summary"]), bench["summary"]

    # the export reports through every documented command
    p = subprocess.run([sys.executable, str(STUDY / "check_results_doc.py"), "--export",
                        str(out / "study-export.tar"), "--in-process"], capture_output=True,
                       text=True, timeout=600, env=_env(tmp_path))
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]

    # a second allocation: resumes from the export (committed as docs/study/export/part-1
    # would be), adds a third seed, and has no time left to start a run: nothing is redone or
    # lost, and its export holds only what it finished itself (nothing)
    resume = tmp_path / "resume"
    (resume / "part-1").mkdir(parents=True)
    with tarfile.open(out / "study-export.tar") as tar:
        tar.extractall(resume / "part-1", filter="data")
    more = []
    for name in ("lareqa_study.toml", "lareqa_study_b.toml"):
        spec = dev / "specs" / name
        spec3 = spec.with_name(name.replace(".toml", "_3.toml"))
        spec3.write_text(spec.read_text().replace("seeds = [1, 2]", "seeds = [1, 2, 3]"))
        more.append(str(spec3))
    out2 = tmp_path / "out2"
    p = subprocess.run([sys.executable, str(STUDY / "study.py"), "run", str(out2),
                        "--deadline", str(time.time() + 40), "--device", "cpu", "--lanes", "1",
                        "--specs", *more, "--resume", str(resume), "--min-run", "30",
                        "--export-reserve", "30"],
                       capture_output=True, text=True, timeout=300,
                       env=_env(tmp_path, XLRUN_E5=str(tmp_path / "work" / "model")))
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-4000:]
    again = json.loads((out2 / "run.json").read_text())
    assert again["resumed_runs"] == 10
    assert again["enqueue"]["done"] == 10 and again["enqueue"]["runs"] == 14
    assert again["status"] == {"done": 10, "queued": 4}, again
    assert again["export_rows"]["runs"] == 0
    print(f"rehearsal: {seconds:.0f}s for the script")
