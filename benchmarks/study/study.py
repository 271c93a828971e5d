"""The study on one machine within a hard deadline: the body of ``gpu_study.sh``.

    python benchmarks/study/study.py smoke --device cuda [--limit 30]
    python benchmarks/study/study.py run OUT_DIR --deadline EPOCH_S [--device cuda]
        [--lanes 4] [--threads 0] [--specs SPEC ...] [--resume docs/study/export]
        [--min-run 45] [--export-reserve 45]

``smoke``: a few quickstart training steps and an evaluation on ``--device`` in a throwaway
database; exits 3 with one clear line when the device is missing or the run fails or takes
longer than ``--limit`` seconds.

``run``: one SQLite database under ``$XLRUN_STUDY_WORK`` (default ``/tmp/xlrun-study``):

1. imports the committed exports of the study (``--resume``: a folder with a
   ``manifest.json``, or a folder of such folders, one per earlier allocation): their finished
   runs are not run again;
2. enqueues every run of the specs in seed-major order — the untrained references first,
   then seed 1 of every arm of every spec, then seed 2, … (workers claim by id, so whenever
   the time runs out every arm has the same seeds);
3. runs ``--lanes`` warm worker processes on the device (``xlrun worker`` lanes: model and
   data loaded once per lane, threads = cores / lanes); no lane claims a run later than
   ``--min-run`` seconds before the hard stop, and at the hard stop (``--deadline`` minus
   ``--export-reserve``) a run still going is interrupted and goes back to the queue;
4. exports the runs finished in THIS call (``xlrun db export --done-only`` of a copy without
   the resumed runs: each allocation's export stays small — the returned file may be at most
   16 MiB — and is committed beside the earlier ones) and writes at most 6 files to
   OUT_DIR: ``study-export.tar``, ``status.txt`` (runs per arm and seed), ``timings.csv``
   (stage seconds per run), ``lanes.log`` (the end of each lane's log), ``run.json``
   (what happened, in numbers); ``gpu_study.sh`` adds ``study.log``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SPECS = ("experiments/lareqa_study.toml", "experiments/lareqa_study_b.toml")
WORK = Path(os.environ.get("XLRUN_STUDY_WORK", "/tmp/xlrun-study"))

SMOKE_SPEC = """
[experiment]
name = "smoke"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 32
passage_max_length = 48
[train_data]
source = "quickstart"
languages = ["en", "de", "ru"]
[sampling]
strategy = "hybrid"
[train]
steps = 6
batch_size = 16
lr = 2e-3
log_every = 3
[[eval]]
dataset = "quickstart"
languages = ["en", "de", "ru"]
max_queries_per_language = 16
top_k = 0
"""


def log(msg: str) -> None:
    """A timestamped line on stdout."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- smoke
def smoke(device: str, limit_s: float) -> int:
    """A few quickstart steps on ``device``; 0 when it ran in time, 3 with a message if not.

    ``limit_s`` bounds the run itself (building the tiny model, training, evaluating,
    writing), not the imports and the device's start-up before it, which are reported."""
    t_start = time.perf_counter()
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print(f"SMOKE FAILED: no CUDA device (torch {torch.__version__}, "
              f"cuda build {torch.version.cuda}); nothing was run", flush=True)
        return 3
    import transformers  # noqa: F401 - imported before the clock starts, like the CUDA context
    from transformers import BertModel  # noqa: F401

    import xlrun.train.trainer  # noqa: F401
    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.execute.executors.local import LocalExecutor
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec
    if device.startswith("cuda"):
        torch.zeros(1, device=device).sum().item()  # create the CUDA context
    t0 = time.perf_counter()
    work = WORK / "smoke"
    work.mkdir(parents=True, exist_ok=True)
    db = work / "smoke.db"
    db.unlink(missing_ok=True)
    text = SMOKE_SPEC.format(out=work / "out")
    runs = compile_spec(parse_spec(text, base_dir=work))
    engine = get_engine(f"sqlite:///{db}")
    ids = store.submit_runs(engine, "smoke", text, runs).run_ids
    outcomes = LocalExecutor(device=device).run(engine, ids)
    seconds = time.perf_counter() - t0
    bad = [o for o in outcomes if o.status != "done"]
    if bad or not outcomes:
        err = (bad[0].error or "").strip().splitlines()[-1:] if bad else ["no run executed"]
        print(f"SMOKE FAILED on {device} after {seconds:.0f}s: {' '.join(err)}", flush=True)
        return 3
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "cpu"
    print(f"smoke ok on {device} ({gpu}): {len(outcomes)} run in {seconds:.1f}s (train "
          f"{outcomes[0].timings['train']:.1f}s), after {t0 - t_start:.1f}s of imports and "
          f"device start-up; torch {torch.__version__}", flush=True)
    if seconds > limit_s:
        print(f"SMOKE FAILED: it took {seconds:.0f}s, over the {limit_s:.0f}s limit", flush=True)
        return 3
    return 0


# ----------------------------------------------------------------------------- the study
def seed_major(specs: list[str]) -> list[tuple[object, list]]:
    """``(parsed spec, runs)`` groups: seed 0 (untrained) first, then by seed, then spec."""
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import load_spec

    groups: dict[tuple[int, int], list] = defaultdict(list)
    parsed = []
    for i, path in enumerate(specs):
        spec = load_spec(path)
        parsed.append(spec)
        for run in compile_spec(spec):
            groups[(run.seed, i)].append(run)
    return [(parsed[i], runs) for (_seed, i), runs in sorted(groups.items(),
                                                             key=lambda kv: kv[0])]


def enqueue(engine, specs: list[str], device: str = "cpu") -> dict[str, int]:
    """Check every spec as ``xlrun submit`` does (data, each arm's sampler and exposure plan,
    embedding distances computed once and cached for the lanes), then submit every run in
    seed-major order (done runs stay done); counts by status."""
    from xlrun.db import store
    from xlrun.execute.preflight import check_runs
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import load_spec

    for path in specs:
        spec = load_spec(path)
        check_runs(compile_spec(spec), experiment=spec.experiment.name,
                   output_dir=Path(spec.experiment.output_dir).resolve(), device=device,
                   log=log)
    total: dict[str, int] = defaultdict(int)
    for spec, runs in seed_major(specs):
        res = store.submit_runs(engine, spec.experiment.name, spec.source_toml, runs,
                                output_dir=str(Path(spec.experiment.output_dir).resolve()))
        total["new"] += res.new
        total["done"] += res.done
        total["requeued"] += res.requeued
        total["runs"] += len(runs)
    return dict(total)


def run_lanes(db_url: str, device: str, lanes: int, threads: int, claim_for: float,
              hard_stop: float, logs: Path) -> dict[str, object]:
    """Start the lanes, stop them at ``hard_stop`` (epoch seconds); what happened."""
    from xlrun.execute.threads import share_of_cores, thread_env
    from xlrun.execute.worker import WorkerOptions, lane_command

    per_lane = threads or share_of_cores(lanes)
    env = dict(os.environ, XLRUN_DB=db_url, PYTHONUNBUFFERED="1", **thread_env(per_lane))
    options = WorkerOptions(device=device, claim_for_s=max(1.0, claim_for), threads=per_lane,
                            heartbeat_s=15.0, tag="study")
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for lane in range(1, lanes + 1):
        f = open(logs / f"lane-{lane}.log", "w")  # noqa: SIM115 - closed below
        procs.append((subprocess.Popen(lane_command(options, lane), env=env, stdout=f,
                                       stderr=subprocess.STDOUT, start_new_session=True), f))
    log(f"{lanes} lanes started on {device}, {per_lane} threads each; claims until "
        f"{claim_for:.0f}s from now, hard stop in {hard_stop - time.time():.0f}s")
    stopped = False
    while any(p.poll() is None for p, _ in procs):
        if time.time() >= hard_stop and not stopped:
            log("hard stop: interrupting the runs still going (they go back to the queue)")
            for p, _ in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGINT)
            stopped = True
            kill_at = time.time() + 20
        if stopped and time.time() >= kill_at:
            for p, _ in procs:
                if p.poll() is None:
                    os.killpg(p.pid, signal.SIGKILL)
            break
        time.sleep(0.5)
    codes = [p.wait() for p, _ in procs]
    for _, f in procs:
        f.close()
    return {"lanes": lanes, "threads_per_lane": per_lane, "exit_codes": codes,
            "hard_stopped": stopped}


def summarise(engine, out: Path) -> dict[str, object]:
    """``status.txt`` and ``timings.csv`` in ``out``; counts."""
    from sqlalchemy import text

    from xlrun.execute.pipeline import STAGES

    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT r.id, e.name, r.status, r.sampler, r.language_sampling, r.clustering, "
            "r.seed, r.timings_json, r.worker, r.error FROM runs r JOIN experiments e "
            "ON e.id = r.experiment_id ORDER BY r.id")).all()
    by_arm: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        arm = r.sampler if r.sampler == "none" else \
            f"{r.sampler}/{r.language_sampling}" + (f"[{r.clustering}]" if r.clustering else "")
        by_arm[(r.name, arm)][r.status].append(r.seed)
    lines = ["experiment  arm  done_seeds  queued  failed"]
    for (exp, arm), st in sorted(by_arm.items()):
        lines.append(f"{exp}  {arm}  {sorted(st.get('done', []))}  {len(st.get('queued', []))}"
                     f"  {len(st.get('failed', []))}")
    errors = [f"run {r.id}: {(r.error or '').strip().splitlines()[-1][:300]}"
              for r in rows if r.status == "failed" and r.error]
    (out / "status.txt").write_text("\n".join([*lines, "", *errors]) + "\n")
    cols = [*STAGES, "other", "total"]
    with open(out / "timings.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run_id", "experiment", "status", "sampler", "language_sampling", "seed",
                    *cols, "cpu_total"])
        for r in rows:
            if r.timings_json:
                t = json.loads(r.timings_json)
                w.writerow([r.id, r.name, r.status, r.sampler, r.language_sampling, r.seed,
                            *[t.get(c, "") for c in cols], t.get("cpu", {}).get("total", "")])
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r.status] += 1
    return dict(counts)


def resume_parts(resume: Path | None) -> list[Path]:
    """The export folders to resume from: ``resume`` itself when it holds a ``manifest.json``,
    else its subfolders that do (sorted: one per earlier allocation)."""
    if resume is None or not resume.is_dir():
        return []
    if (resume / "manifest.json").is_file():
        return [resume]
    return sorted(p for p in resume.iterdir() if (p / "manifest.json").is_file())


def new_runs_only(db: Path, resumed: set[tuple[str, str]]):
    """An engine on a copy of the study database without the ``(experiment, run_key)`` runs
    imported at the start, so the export holds only what this call finished (their rows go
    with them: ON DELETE CASCADE, enforced by xlrun's SQLite engines)."""
    from sqlalchemy import text

    from xlrun.db.engine import get_engine

    copy = db.with_name("export-copy.db")
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(copy) + suffix).unlink(missing_ok=True)
    src = get_engine(f"sqlite:///{db}")
    with src.connect() as conn:  # a consistent copy, WAL included
        conn.exec_driver_sql(f"VACUUM INTO '{copy}'")
    src.dispose()
    engine = get_engine(f"sqlite:///{copy}")
    with engine.begin() as conn:
        for name, key in sorted(resumed):
            conn.execute(text("DELETE FROM runs WHERE run_key = :k AND experiment_id = "
                              "(SELECT id FROM experiments WHERE name = :e)"),
                         {"k": key, "e": name})
    return engine


def run_study(out: Path, deadline: float, device: str, lanes: int, threads: int,
              specs: list[str], resume: Path | None, min_run_s: float,
              export_reserve_s: float) -> int:
    """The ``run`` command (see the module docstring); 0 when it exported."""
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import export_database, import_database

    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    WORK.mkdir(parents=True, exist_ok=True)
    db = WORK / "study.db"
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    engine = get_engine(url)
    report: dict[str, object] = {"device": device, "specs": specs}
    resumed_keys: set[tuple[str, str]] = set()
    for part in resume_parts(resume):
        s = import_database(engine, part)
        log(f"resumed from {part}: {s.runs_new} finished runs imported")
        report["resumed_runs"] = int(report.get("resumed_runs", 0)) + s.runs_new  # type: ignore[call-overload]
    if resume is not None:
        from sqlalchemy import text

        with engine.connect() as conn:
            resumed_keys = {(e, k) for e, k in conn.execute(text(
                "SELECT e.name, r.run_key FROM runs r JOIN experiments e "
                "ON e.id = r.experiment_id"))}
    counts = enqueue(engine, specs, device)
    report["enqueue"] = counts
    log(f"{counts['runs']} runs in the specs: {counts['done']} already done, "
        f"{counts['runs'] - counts['done']} to run (seed-major order)")
    hard_stop = deadline - export_reserve_s
    claim_for = hard_stop - min_run_s - time.time()
    if counts["runs"] - counts["done"] > 0 and claim_for > 0:
        report["lanes"] = run_lanes(url, device, lanes, threads, claim_for, hard_stop,
                                    WORK / "logs")
    else:
        log("nothing to run, or no time left to start a run")
    report["status"] = summarise(engine, out)
    log(f"runs by status: {report['status']}")
    export = WORK / "export"
    if export.exists():
        import shutil

        shutil.rmtree(export)
    s = export_database(new_runs_only(db, resumed_keys), export, done_only=True)
    with tarfile.open(out / "study-export.tar", "w") as tar:
        for p in sorted(export.iterdir()):
            tar.add(p, arcname=p.name)
    report["export_bytes"] = s.bytes
    report["export_rows"] = s.rows
    log(f"exported {s.rows.get('runs', 0)} finished runs: {s.bytes / 1e6:.2f} MB")
    tails = []
    for f in sorted((WORK / "logs").glob("lane-*.log")):
        lines = f.read_text(errors="replace").splitlines()
        tails.append(f"== {f.name} ({len(lines)} lines, last 60)\n" + "\n".join(lines[-60:]))
    (out / "lanes.log").write_text("\n\n".join(tails) + "\n")
    report["seconds"] = round(time.time() - t0, 1)
    (out / "run.json").write_text(json.dumps(report, indent=1, default=str))
    engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sm = sub.add_parser("smoke")
    sm.add_argument("--device", default="cuda")
    sm.add_argument("--limit", type=float, default=30.0)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--deadline", type=float, required=True, help="epoch seconds")
    r.add_argument("--device", default="cuda")
    r.add_argument("--lanes", type=int, default=4)
    r.add_argument("--threads", type=int, default=0)
    r.add_argument("--specs", nargs="+", default=[str(ROOT / s) for s in SPECS])
    r.add_argument("--resume", type=Path, default=ROOT / "docs" / "study" / "export")
    r.add_argument("--min-run", type=float, default=45.0,
                   help="claim no run later than this many seconds before the hard stop")
    r.add_argument("--export-reserve", type=float, default=45.0,
                   help="seconds kept for the export and the files after the hard stop")
    args = ap.parse_args(argv)
    if args.cmd == "smoke":
        return smoke(args.device, args.limit)
    return run_study(args.out, args.deadline, args.device, args.lanes, args.threads,
                     args.specs, args.resume, args.min_run, args.export_reserve)


if __name__ == "__main__":
    sys.exit(main())
