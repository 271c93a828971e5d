"""The study on one machine within a hard deadline: the body of ``gpu_study.sh``.

    python benchmarks/study/study.py smoke --device cuda [--limit 30]
    python benchmarks/study/study.py plan [--specs SPEC ...] [--order FILE] [--resume DIR]
    python benchmarks/study/study.py run OUT_DIR --deadline EPOCH_S [--device cuda]
        [--lanes 4] [--lane-devices DEV ...] [--threads 0] [--specs SPEC ...] [--order FILE]
        [--resume docs/study/export] [--langsim DIR] [--run-estimate 60] [--export-reserve 30]

``smoke``: a few quickstart training steps and an evaluation on ``--device`` in a throwaway
database, after recording ``nvidia-smi`` (compute mode, memory; "not found" on a machine
without it). Exits 3 with one clear line when the device is missing or the run fails; a run
slower than ``--limit`` seconds is a warning (``SMOKE SLOW``), not a failure: the first run
in a process pays one-time costs that later runs do not.

``plan`` (the dry run): the study's runs in the order they will run — tier by tier as the
order file says (``experiments/run_order/lareqa_study.toml``), seed by seed within a tier — with
those already finished in ``--resume`` marked; writes nothing.

``run``: one SQLite database under ``$XLRUN_STUDY_WORK`` (default ``/tmp/xlrun-study``).
The parent process never initialises CUDA; everything below except the lanes runs on the CPU.

1. reads which runs are done from the run tables of the committed exports (``--resume``: a
   folder with a ``manifest.json``, or folders of such folders, any depth up to 3): their
   query rows are not read, and those runs are not run again;
2. copies the carried ``embedding`` language distances (``--langsim DIR``: one folder per
   experiment, made by ``prepare.py`` on the CPU) where the runs look for them, checks every
   spec as ``xlrun submit`` does (on the CPU: data, samplers, exposure plans, clusters), and
   enqueues the unfinished runs in plan order (claims take the lowest id);
3. runs ``--lanes`` warm worker processes (``xlrun worker`` lanes, one device each, threads =
   cores / lanes). Every lane shares ONE absolute deadline: runs must end by the hard stop
   (``--deadline`` minus ``--export-reserve``), and a lane claims a run only while the time
   left is at least its own p90 run time (``--run-estimate`` before its first). A lane whose
   device fails two runs in a row stops (its runs go back to the queue for the others). At
   the hard stop a run still going is interrupted and goes back to the queue;
4. while the lanes run, every finished run reaches ``OUT_DIR`` within seconds: it is exported
   (``xlrun db export --done-only`` of the runs finished since the last part) as a part
   ``part-NNN/`` of ``study-export.tar``, which is rewritten atomically (written beside,
   then renamed), as are ``run.json``, ``status.txt`` and ``timings.csv``. A call killed at
   any moment (SIGKILL included) leaves a tar whose every part imports with
   ``xlrun db import``. At the end, when time allows, the parts are merged into one.

OUT_DIR holds at most 7 files and the one being written (``.partial``): ``study-export.tar``,
``status.txt`` (tiers, arms, seeds; which lanes stopped and why), ``timings.csv`` (stage
seconds and input shapes per run), ``lanes.log`` (the end of each lane's log), ``run.json``
(what happened, in numbers; ``"complete": false`` until the end); ``gpu_study.sh`` adds
``smoke.txt`` and ``study.log`` (and, after the study, ``bench.json``).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tarfile
import time
import tomllib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SPECS = ("experiments/lareqa_study.toml", "experiments/lareqa_study_b.toml")
ORDER = "experiments/run_order/lareqa_study.toml"
WORK = Path(os.environ.get("XLRUN_STUDY_WORK", "/tmp/xlrun-study"))
PARTIAL = ".partial"
"""The one file in OUT_DIR that may be incomplete: every file there is written under this
name first, then renamed (one at a time, so OUT_DIR never holds more than 7 + 1 files)."""
LANE_GRACE_S = 15.0
"""Seconds between the hard stop's SIGINT (runs go back to the queue) and SIGKILL."""

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
def nvidia_smi(timeout_s: float = 20.0) -> str:
    """What ``nvidia-smi`` says about the GPUs (name, compute mode, memory, driver) and its
    plain table; one line saying so where it is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "nvidia-smi: not found (no NVIDIA tools on this machine)"
    out = []
    for args in (["--query-gpu=index,name,compute_mode,memory.total,memory.used,"
                  "driver_version,persistence_mode", "--format=csv"], []):
        try:
            p = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout_s)
            out.append((p.stdout + p.stderr).strip() or f"(nvidia-smi exited {p.returncode})")
        except (OSError, subprocess.TimeoutExpired) as e:
            out.append(f"nvidia-smi {' '.join(args)}: {type(e).__name__}: {e}")
    return "\n".join(out)


def smoke(device: str, limit_s: float) -> int:
    """A few quickstart steps on ``device``; 0 when it ran (a warning line when it took
    longer than ``limit_s``), 3 with a message when the device is missing or the run fails.

    ``limit_s`` bounds the run itself (building the tiny model, training, evaluating,
    writing), not the imports and the device's start-up before it, which are reported."""
    t_start = time.perf_counter()
    smi = nvidia_smi()
    print("nvidia-smi:\n  " + smi.replace("\n", "\n  "), flush=True)
    if "Exclusive" in smi:
        print("WARNING: a GPU is in an exclusive compute mode: one process at a time can use "
              "it, so all lanes but one will stop with device errors", flush=True)
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
        print(f"SMOKE SLOW (a warning, the study goes on): it took {seconds:.0f}s, over the "
              f"{limit_s:.0f}s limit", flush=True)
    return 0


# ----------------------------------------------------------------------------- the order
@dataclasses.dataclass(frozen=True)
class Tier:
    """One tier of the order file: arm labels (a label without ``[...]`` also matches every
    clustering of that arm) and the seeds (empty: every seed of the matching runs)."""

    name: str
    arms: tuple[str, ...]
    seeds: tuple[int, ...] = ()


REST = "not in the order file"


def load_order(path: str | Path) -> list[Tier]:
    """The tiers of an order file (``[[tier]]`` tables with ``name``, ``arms``, ``seeds``)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise SystemExit(f"order file {path}: {e}") from e
    tiers = []
    for i, t in enumerate(data.get("tier", [])):
        name, arms, seeds = t.get("name"), t.get("arms"), t.get("seeds", [])
        if not isinstance(name, str) or not name:
            raise SystemExit(f"order file {path}: tier[{i}].name must be a text")
        if not isinstance(arms, list) or not arms or not all(isinstance(a, str) for a in arms):
            raise SystemExit(f"order file {path}: tier[{i}].arms must be a list of arm labels")
        if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
            raise SystemExit(f"order file {path}: tier[{i}].seeds must be a list of integers")
        unknown = set(t) - {"name", "arms", "seeds"}
        if unknown:
            raise SystemExit(f"order file {path}: tier[{i}] has unknown keys "
                             f"{', '.join(sorted(unknown))} (allowed: name, arms, seeds)")
        tiers.append(Tier(name, tuple(arms), tuple(seeds)))
    if not tiers:
        raise SystemExit(f"order file {path}: no [[tier]]")
    return tiers


def arm_matches(pattern: str, label: str) -> bool:
    """``label`` is ``pattern``, or ``pattern`` names the arm without its ``[...]``."""
    return label == pattern or ("[" not in pattern and label.startswith(pattern + "["))


@dataclasses.dataclass(frozen=True)
class Planned:
    """One run of the study at its place in the order."""

    position: int
    tier: str
    spec_index: int
    experiment: str
    arm: str
    seed: int
    run: Any  # CompiledRun
    done: bool

    @property
    def run_key(self) -> str:
        return self.run.run_key


def plan_runs(specs: Sequence[str | Path], order: Sequence[Tier],
              done: Iterable[tuple[str, str]] = ()) -> tuple[list[Any], list[Planned]]:
    """The parsed specs and every run of them in the order the study runs them.

    Tier by tier; within a tier seed by seed, then spec by spec, then arm by arm as the tier
    lists them (the runs of one arm in the spec's grid order). A run goes to the first tier
    that names it; runs no tier names come last (tier :data:`REST`), seed by seed. ``done``:
    ``(experiment, run_key)`` of runs already finished (marked, kept in place).
    """
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import load_spec

    parsed = [load_spec(p) for p in specs]
    compiled = [compile_spec(s) for s in parsed]
    finished = set(done)
    taken: set[tuple[int, str]] = set()
    out: list[Planned] = []

    def add(tier: str, si: int, run: Any) -> None:
        taken.add((si, run.run_key))
        name = parsed[si].experiment.name
        out.append(Planned(len(out) + 1, tier, si, name, run.config.arm, run.seed, run,
                           (name, run.run_key) in finished))

    for tier in (*order, Tier(REST, ("",))):
        def named(run: Any, tier: Tier = tier) -> bool:
            return tier.name == REST or any(arm_matches(a, run.config.arm) for a in tier.arms)

        candidates = [(si, r) for si, runs in enumerate(compiled) for r in runs
                      if (si, r.run_key) not in taken and named(r)]
        seeds = list(tier.seeds) or sorted({r.seed for _, r in candidates})
        for seed in seeds:
            for si in range(len(compiled)):
                patterns = tier.arms if tier.name != REST else ("",)
                for pattern in patterns:
                    for s2, run in candidates:
                        if s2 != si or run.seed != seed or (si, run.run_key) in taken:
                            continue
                        if tier.name == REST or arm_matches(pattern, run.config.arm):
                            add(tier.name, si, run)
    return parsed, out


def describe_plan(planned: Sequence[Planned], *, every_run: bool = True) -> str:
    """The plan as text: runs per tier (to run / done), then each run in order."""
    tiers: dict[str, list[Planned]] = defaultdict(list)
    for p in planned:
        tiers[p.tier].append(p)
    lines = [f"{len(planned)} runs, {sum(p.done for p in planned)} already done; "
             f"{sum(not p.done for p in planned)} to run, in this order:"]
    for i, (name, ps) in enumerate(tiers.items(), 1):
        exps = sorted({p.experiment for p in ps})
        seeds = sorted({p.seed for p in ps})
        span = f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {seeds[0]}-{seeds[-1]}"
        lines.append(f"  tier {i}: {name}: {len(ps)} runs ({sum(p.done for p in ps)} done), "
                     f"{', '.join(exps)}, {span}")
    if every_run:
        lines.append("")
        lines.append(f"{'#':>4}  {'tier':<26} {'experiment':<9} {'seed':>4}  {'run_key':<16}  "
                     "arm")
        for p in planned:
            lines.append(f"{p.position:>4}  {p.tier[:26]:<26} {p.experiment:<9} {p.seed:>4}  "
                         f"{p.run_key:<16}  {p.arm}{'  (done)' if p.done else ''}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- resume
def resume_parts(resume: Path | None, depth: int = 3) -> list[Path]:
    """The export folders under ``resume`` (itself when it holds a ``manifest.json``, else
    its subfolders that do, up to ``depth`` levels down), sorted."""
    if resume is None or not resume.is_dir():
        return []
    if (resume / "manifest.json").is_file():
        return [resume]
    if depth <= 0:
        return []
    return [p for sub in sorted(q for q in resume.iterdir() if q.is_dir())
            for p in resume_parts(sub, depth - 1)]


def done_runs(resume: Path | None) -> dict[tuple[str, str], dict[str, Any]]:
    """``(experiment, run_key) → run row`` of the done runs in the exports under ``resume``,
    read from their ``experiments`` and ``runs`` files alone (checked against the manifest's
    SHA-256 where it has one); the query rows are not read."""
    import hashlib

    import pyarrow.parquet as pq

    from xlrun.db.transfer import read_manifest

    found: dict[tuple[str, str], dict[str, Any]] = {}
    for part in resume_parts(resume):
        manifest = read_manifest(part)
        files = {}
        for name in ("experiments", "runs"):
            rel = manifest.get("files", {}).get(name, f"{name}.parquet")
            path = (part / rel).resolve()
            if part.resolve() not in path.parents:
                raise SystemExit(f"{part}: manifest names {rel!r} outside the export")
            want = manifest.get("sha256", {}).get(name)
            if want and hashlib.sha256(path.read_bytes()).hexdigest() != want:
                raise SystemExit(f"{path}: its SHA-256 differs from the manifest's: the export "
                                 "is damaged")
            files[name] = pq.read_table(path)
        names = dict(zip(files["experiments"]["id"].to_pylist(),
                         files["experiments"]["name"].to_pylist(), strict=True))
        cols = [c for c in ("run_key", "status", "experiment_id", "sampler",
                            "language_sampling", "clustering", "seed")
                if c in files["runs"].column_names]
        for row in files["runs"].select(cols).to_pylist():
            if row["status"] == "done":
                found[(names[row["experiment_id"]], row["run_key"])] = dict(row, part=str(part))
    return found


# ----------------------------------------------------------------------------- set-up
def carry_langsim(src: Path | None, parsed: Sequence[Any]) -> int:
    """Copy the carried ``embedding`` distances (``src/<experiment>/*.json``, computed on the
    CPU by ``prepare.py``) into each experiment's ``<output_dir>/<experiment>/.langsim``,
    where ``xlrun submit``'s checks and the runs look for them. Returns the files copied."""
    if src is None or not src.is_dir():
        return 0
    n = 0
    for spec in parsed:
        name = spec.experiment.name
        folder = src / name
        if not folder.is_dir():
            continue
        dst = Path(spec.experiment.output_dir).resolve() / name / ".langsim"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(folder.glob("*.json")):
            shutil.copy2(f, dst / f.name)
            n += 1
    return n


def enqueue(engine: Any, parsed: Sequence[Any], planned: Sequence[Planned]) -> dict[str, int]:
    """Check the specs' unfinished runs as ``xlrun submit`` does — on the CPU: the parent
    never initialises CUDA — then submit them in plan order (one ``submit_runs`` per
    stretch of one spec, so ids follow the plan); counts."""
    from xlrun.db import store
    from xlrun.execute.preflight import check_runs

    todo = [p for p in planned if not p.done]
    for si, spec in enumerate(parsed):
        runs = [p.run for p in todo if p.spec_index == si]
        if runs:
            check_runs(runs, experiment=spec.experiment.name,
                       output_dir=Path(spec.experiment.output_dir).resolve(), device="cpu",
                       log=log)
    total = {"runs": len(planned), "done": len(planned) - len(todo), "new": 0}
    i = 0
    while i < len(todo):
        j = i
        while j < len(todo) and todo[j].spec_index == todo[i].spec_index:
            j += 1
        spec = parsed[todo[i].spec_index]
        res = store.submit_runs(engine, spec.experiment.name, spec.source_toml,
                                [p.run for p in todo[i:j]],
                                output_dir=str(Path(spec.experiment.output_dir).resolve()))
        total["new"] += res.new
        i = j
    return total


@dataclasses.dataclass
class Setup:
    """What the parent prepared before the lanes start."""

    engine: Any
    url: str
    db: Path
    parsed: list[Any]
    planned: list[Planned]
    resumed: dict[tuple[str, str], dict[str, Any]]
    counts: dict[str, int]
    seconds: dict[str, float]


def set_up(specs: Sequence[str | Path], order: Path, resume: Path | None,
           langsim: Path | None, work: Path = WORK) -> Setup:
    """The parent's set-up (CPU only): a fresh study database, the done runs of ``resume``,
    the plan, the carried distances, the checks and the queue."""
    from xlrun.db.engine import get_engine

    t0 = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    db = work / "study.db"
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    url = f"sqlite:///{db}"
    engine = get_engine(url)
    resumed = done_runs(resume)
    t1 = time.perf_counter()
    parsed, planned = plan_runs(specs, load_order(order), resumed)
    copied = carry_langsim(langsim, parsed)
    if langsim is not None:
        log(f"carried embedding distances: {copied} file(s) from {langsim}")
    t2 = time.perf_counter()
    counts = enqueue(engine, parsed, planned)
    t3 = time.perf_counter()
    return Setup(engine, url, db, parsed, planned, resumed, counts,
                 {"resume": round(t1 - t0, 3), "plan": round(t2 - t1, 3),
                  "check_and_enqueue": round(t3 - t2, 3)})


# ----------------------------------------------------------------------------- OUT_DIR
def publish(out: Path, name: str, write: Callable[[Path], None]) -> None:
    """Write ``out/name`` atomically: ``write`` fills ``out/.partial``, which is synced and
    renamed over ``name`` (a reader, or a kill at any moment, sees the old file or the new)."""
    tmp = out / PARTIAL
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, out / name)


def publish_text(out: Path, name: str, text: str) -> None:
    """:func:`publish` for a text file."""
    publish(out, name, lambda p: p.write_text(text, encoding="utf-8"))


# ----------------------------------------------------------------------------- export
class Exporter:
    """Exports the runs finished in this call, part by part, into ``OUT/study-export.tar``.

    A part is ``xlrun db export --done-only`` of a small SQLite copy holding the new runs'
    rows (the study database itself is only read); the tar holds every part (``part-NNN/``)
    and is rewritten atomically after each new part."""

    TABLES = ("train_log", "batch_languages", "query_results", "run_metrics",
              "language_clusters", "language_distances", "sampling_plan")

    def __init__(self, db: Path, work: Path, out: Path) -> None:
        from xlrun.db.engine import get_engine

        self.db, self.out = db, out
        self.root = work / "parts"
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        self.template = self.root / "template.db"
        get_engine(f"sqlite:///{self.template}").dispose()  # an empty, migrated database
        self.parts: list[Path] = []
        self.exported: list[int] = []
        self.rows: dict[str, int] = defaultdict(int)
        self.bytes = 0
        self.seconds = 0.0

    def finished(self) -> list[int]:
        """Ids of the done runs not exported yet."""
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            ids = [r[0] for r in con.execute("SELECT id FROM runs WHERE status = 'done' "
                                             "ORDER BY id")]
        finally:
            con.close()
        seen = set(self.exported)
        return [i for i in ids if i not in seen]

    def _copy(self, ids: Sequence[int], target: Path) -> None:
        shutil.copy(self.template, target)
        con = sqlite3.connect(f"file:{target}", uri=True, timeout=30)
        try:
            con.execute("ATTACH DATABASE ? AS src", (f"file:{self.db}?mode=ro",))
            marks = ",".join("?" for _ in ids)
            cols = {t: [r[1] for r in con.execute(f"PRAGMA main.table_info({t})")]
                    for t in ("experiments", "runs", *self.TABLES)}

            def copy(table: str, where: str) -> None:
                c = ", ".join(f'"{x}"' for x in cols[table])
                con.execute(f"INSERT INTO main.{table} ({c}) SELECT {c} FROM src.{table} "
                            f"WHERE {where}", list(ids))

            copy("experiments", f"id IN (SELECT experiment_id FROM src.runs WHERE id IN "
                                f"({marks}))")
            copy("runs", f"id IN ({marks})")
            for t in self.TABLES:
                copy(t, f"run_id IN ({marks})")
            con.commit()
        finally:
            con.close()

    def _export(self, ids: Sequence[int], name: str) -> Path:
        from xlrun.db.engine import get_engine
        from xlrun.db.transfer import export_database

        db = self.root / f"{name}.db"
        folder = self.root / name
        for p in (db, folder):
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
        self._copy(ids, db)
        engine = get_engine(f"sqlite:///{db}")
        try:
            s = export_database(engine, folder, done_only=True)
        finally:
            engine.dispose()
        db.unlink()
        for k, v in s.rows.items():
            self.rows[k] += v
        return folder

    def _write_tar(self, parts: Sequence[Path]) -> None:
        def write(tmp: Path) -> None:
            with tarfile.open(tmp, "w") as tar:
                for part in parts:
                    for f in sorted(part.iterdir()):
                        tar.add(f, arcname=f"{part.name}/{f.name}")

        publish(self.out, "study-export.tar", write)
        self.bytes = (self.out / "study-export.tar").stat().st_size

    def update(self) -> list[int]:
        """Export the runs finished since the last call as a new part and rewrite the tar;
        the ids exported (empty: nothing new)."""
        ids = self.finished()
        if not ids:
            return []
        t0 = time.perf_counter()
        part = self._export(ids, f"part-{len(self.parts) + 1:03d}")
        self.parts.append(part)
        self.exported += ids
        self._write_tar(self.parts)
        self.seconds += time.perf_counter() - t0
        return ids

    def merge(self) -> bool:
        """Replace the parts by one export of every run they hold (smaller: one query's rows of
        every run compress together); the tar is rewritten atomically. False when there was
        nothing to merge."""
        if len(self.parts) < 2:
            return False
        before = dict(self.rows)
        self.rows.clear()
        try:
            merged = self._export(self.exported, "merged")
        except BaseException:
            self.rows.update(before)
            raise
        final = self.root / "part-001"
        for p in self.parts:
            shutil.rmtree(p)
        merged.rename(final)
        self.parts = [final]
        self._write_tar(self.parts)
        return True


# ----------------------------------------------------------------------------- lanes
@dataclasses.dataclass
class Lane:
    """One worker process of the study."""

    number: int
    device: str
    proc: subprocess.Popen
    log_path: Path
    log_file: Any

    def report(self) -> dict[str, Any]:
        """Its device, exit code, runs (done, failed, given back) and why it stopped."""
        text = self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""
        lines = text.splitlines()
        counts = {s: sum(f": {s} in " in line for line in lines)
                  for s in ("done", "failed", "queued")}
        reason = next((re.split(r"stops(?: claiming)?: ", line, maxsplit=1)[1]
                       for line in reversed(lines)
                       if ": stops claiming: " in line or ": stops: " in line), "")
        reason = re.split(r"\s{2,}", reason.strip())[0]  # without rich's "file:line" column
        code = self.proc.poll()
        return {"lane": self.number, "device": self.device, "exit_code": code,
                "runs_done": counts["done"], "runs_failed": counts["failed"],
                "runs_given_back": counts["queued"],
                "stopped_for_device_errors": code == 75,
                "stop_reason": reason or ("queue empty" if code == 0 else
                                          f"exit code {code}" if code is not None else "")}


def _die_with_parent() -> None:
    """In a lane, before it starts: SIGKILL when the study process ends (Linux), so a killed
    call leaves no lane running on."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def start_lanes(db_url: str, devices: Sequence[str], threads: int, deadline: float,
                run_estimate_s: float, logs: Path) -> list[Lane]:
    """Start one ``xlrun worker`` lane per device (thread share = cores / lanes, unless
    ``threads``); each claims only while the time to ``deadline`` is at least its p90 run
    time."""
    from xlrun.execute.threads import share_of_cores, thread_env
    from xlrun.execute.worker import WorkerOptions, lane_command

    per_lane = threads or share_of_cores(len(devices))
    env = dict(os.environ, XLRUN_DB=db_url, PYTHONUNBUFFERED="1", COLUMNS="400",
               **thread_env(per_lane))
    logs.mkdir(parents=True, exist_ok=True)
    lanes = []
    for i, device in enumerate(devices, 1):
        options = WorkerOptions(device=device, threads=per_lane, heartbeat_s=15.0, tag="study",
                                deadline=deadline, run_estimate_s=run_estimate_s)
        f = open(logs / f"lane-{i}.log", "w")  # noqa: SIM115 - closed by the caller
        # its own process group (killed as one at the hard stop), in this session (ended with
        # the call), and killed when this process dies, however it dies (this process runs
        # no threads of its own, so the pre-exec hook is safe here)
        proc = subprocess.Popen(lane_command(options, i), env=env, stdout=f,
                                stderr=subprocess.STDOUT, process_group=0,
                                preexec_fn=_die_with_parent)  # noqa: PLW1509
        lanes.append(Lane(i, device, proc, logs / f"lane-{i}.log", f))
    log(f"{len(lanes)} lanes started ({', '.join(devices)}), {per_lane} threads each; runs "
        f"end by the hard stop in {deadline - time.time():.0f}s")
    return lanes


def lane_tails(lanes: Sequence[Lane], n: int = 60) -> str:
    """The end of each lane's log."""
    tails = []
    for lane in lanes:
        lines = lane.log_path.read_text(errors="replace").splitlines() \
            if lane.log_path.is_file() else []
        tails.append(f"== lane {lane.number} ({lane.device}; {len(lines)} lines, last {n})\n"
                     + "\n".join(lines[-n:]))
    return "\n\n".join(tails) + "\n"


# ----------------------------------------------------------------------------- summary
def _arm(sampler: str, language_sampling: str | None, clustering: str | None) -> str:
    from xlrun.spec.schema import arm_label

    return arm_label(sampler, language_sampling, clustering)


def summarise(engine: Any, planned: Sequence[Planned],
              resumed: dict[tuple[str, str], dict[str, Any]],
              lanes: Sequence[dict[str, Any]]) -> tuple[str, str, dict[str, int]]:
    """``status.txt`` and ``timings.csv`` (as text) and the runs of this call by status."""
    from sqlalchemy import text

    from xlrun.execute.pipeline import STAGES

    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT r.id, e.name, r.run_key, r.status, r.sampler, r.language_sampling, "
            "r.clustering, r.seed, r.timings_json, r.worker, r.error, r.attempts FROM runs r "
            "JOIN experiments e ON e.id = r.experiment_id ORDER BY r.id")).all()
    state = {(r.name, r.run_key): r for r in rows}
    tiers: dict[str, dict[tuple[str, str], dict[str, list[int]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for p in planned:
        r = state.get((p.experiment, p.run_key))
        status = "done before" if p.done else (r.status if r is not None else "not queued")
        tiers[p.tier][(p.experiment, p.arm)][status].append(p.seed)
    lines = []
    for i, (tier, arms) in enumerate(tiers.items(), 1):
        lines.append(f"tier {i}: {tier}")
        lines.append("  experiment  arm  done_seeds (this call + before)  running  queued  "
                     "failed")
        for (exp, arm), st in arms.items():
            done = sorted(st.get("done", []) + st.get("done before", []))
            lines.append(f"  {exp}  {arm}  {done}  {len(st.get('running', []))}  "
                         f"{len(st.get('queued', []))}  {len(st.get('failed', []))}")
    lines.append("")
    lines.append("lanes:")
    for lane in lanes:
        lines.append(f"  lane {lane['lane']} ({lane['device']}): exit {lane['exit_code']}, "
                     f"{lane['runs_done']} done, {lane['runs_failed']} failed, "
                     f"{lane['runs_given_back']} given back; stopped: {lane['stop_reason']}")
    errors = [f"run {r.id} ({r.status}, attempt {r.attempts}): "
              f"{(r.error or '').strip().splitlines()[-1][:300]}"
              for r in rows if r.error and r.status in ("failed", "queued")]
    if errors:
        lines += ["", "errors:", *errors]
    cols = [*STAGES, "other", "total"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run_id", "experiment", "status", "arm", "seed", *cols, "cpu_total",
                "shapes_train", "shapes_encode", "shapes_new", "worker"])
    for r in rows:
        if r.timings_json:
            t = json.loads(r.timings_json)
            sh = t.get("shapes", {})
            w.writerow([r.id, r.name, r.status, _arm(r.sampler, r.language_sampling,
                                                     r.clustering), r.seed,
                        *[t.get(c, "") for c in cols], t.get("cpu", {}).get("total", ""),
                        sh.get("train", ""), sh.get("encode", ""), sh.get("new", ""), r.worker])
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r.status] += 1
    return "\n".join(lines) + "\n", buf.getvalue(), dict(counts)


# ----------------------------------------------------------------------------- run
def run_study(out: Path, deadline: float, device: str, lanes: int, threads: int,
              specs: list[str], order: Path, resume: Path | None, langsim: Path | None,
              run_estimate_s: float, export_reserve_s: float,
              lane_devices: Sequence[str] = ()) -> int:
    """The ``run`` command (see the module docstring); 0 when it exported."""
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    (out / PARTIAL).unlink(missing_ok=True)
    report: dict[str, Any] = {"complete": False, "device": device, "specs": specs,
                              "deadline": deadline, "started": t0}
    setup = set_up(specs, order, resume, langsim)
    engine, planned = setup.engine, setup.planned
    report.update(resumed_runs=len(setup.resumed), enqueue=setup.counts,
                  setup_seconds=setup.seconds)
    log(f"resumed: {len(setup.resumed)} finished runs read from the exports' run tables in "
        f"{setup.seconds['resume']:.2f}s")
    print(describe_plan(planned, every_run=False), flush=True)
    exporter = Exporter(setup.db, WORK, out)
    lane_reports: list[dict[str, Any]] = []
    devices = list(lane_devices) or [device] * lanes

    def write_files(lanes_now: Sequence[Lane] = ()) -> None:
        nonlocal lane_reports
        if lanes_now:
            lane_reports = [lane.report() for lane in lanes_now]
        status, timings, counts = summarise(engine, planned, setup.resumed, lane_reports)
        report.update(status=counts, lanes=lane_reports, exported_runs=len(exporter.exported),
                      export_bytes=exporter.bytes, export_rows=dict(exporter.rows),
                      export_parts=len(exporter.parts),
                      export_seconds=round(exporter.seconds, 2),
                      seconds=round(time.time() - t0, 1))
        publish_text(out, "status.txt", status)
        publish_text(out, "timings.csv", timings)
        if lanes_now:
            publish_text(out, "lanes.log", lane_tails(lanes_now))
        publish_text(out, "run.json", json.dumps(report, indent=1, default=str))

    write_files()  # the tar follows with the first finished run
    hard_stop = deadline - export_reserve_s
    todo = setup.counts["runs"] - setup.counts["done"]
    if todo > 0 and hard_stop - time.time() > 0:
        running = start_lanes(setup.url, devices, threads, hard_stop, run_estimate_s,
                              WORK / "logs")
        report["hard_stopped"] = supervise(running, hard_stop, exporter, write_files)
        for lane in running:
            lane.log_file.close()
        write_files(running)
    else:
        log("nothing to run, or no time left to start a run")
    if exporter.update():
        write_files()
    left = deadline - time.time()
    if len(exporter.parts) > 1 and left > 10 + 0.5 * len(exporter.exported):
        t1 = time.perf_counter()
        try:
            exporter.merge()
            log(f"merged {len(exporter.exported)} runs into one part in "
                f"{time.perf_counter() - t1:.1f}s")
        except Exception as e:  # noqa: BLE001 - the tar of parts stands
            log(f"merging the parts failed ({type(e).__name__}: {e}); the parts stand")
    report["complete"] = True
    write_files()
    log(f"runs by status: {report['status']}; exported {len(exporter.exported)} finished runs: "
        f"{exporter.bytes / 1e6:.2f} MB")
    engine.dispose()
    return 0


def supervise(lanes: Sequence[Lane], hard_stop: float, exporter: Exporter,
              write_files: Callable[..., None], poll_s: float = 1.0) -> bool:
    """Watch the lanes until they end: export each finished run at once (and rewrite the
    files), refresh the files every 15 s, interrupt the runs still going at ``hard_stop``
    (they go back to the queue) and kill what is left :data:`LANE_GRACE_S` later. Whether
    the hard stop was needed."""
    stopped, kill_at, last = False, float("inf"), time.time()
    while any(lane.proc.poll() is None for lane in lanes):
        now = time.time()
        if now >= hard_stop and not stopped:
            log("hard stop: interrupting the runs still going (they go back to the queue)")
            for lane in lanes:
                if lane.proc.poll() is None:
                    lane.proc.send_signal(signal.SIGINT)
            stopped, kill_at = True, now + LANE_GRACE_S
        if now >= kill_at:
            for lane in lanes:
                if lane.proc.poll() is None:
                    os.killpg(lane.proc.pid, signal.SIGKILL)
            break
        try:  # nothing here may take the parent, and with it the lanes, down
            new = exporter.update()
            if new and exporter.bytes > MERGE_AT_BYTES and hard_stop - time.time() > \
                    20 + 1.0 * len(exporter.exported):
                t1 = time.perf_counter()
                exporter.merge()  # the tar must stay under the 16 MiB a returned file may have
                log(f"merged the parts: {exporter.bytes / 1e6:.2f} MB, "
                    f"{time.perf_counter() - t1:.1f}s")
            if new:
                log(f"exported run(s) {', '.join(map(str, new))}: {len(exporter.exported)} in "
                    f"{OUT_NAME}, {exporter.bytes / 1e6:.2f} MB")
            if new or now - last >= 15:
                write_files(lanes)
                last = now
        except Exception as e:  # noqa: BLE001 - tried again at the next poll
            log(f"export or files failed ({type(e).__name__}: {e}); trying again")
        time.sleep(poll_s)
    for lane in lanes:
        lane.proc.wait()
    return stopped


OUT_NAME = "study-export.tar"
MERGE_AT_BYTES = 11 * 2**20
"""Parts are merged into one (smaller) while the lanes run once the tar passes this size: a
file over 16 MiB does not come back from the device machine."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sm = sub.add_parser("smoke")
    sm.add_argument("--device", default="cuda")
    sm.add_argument("--limit", type=float, default=30.0)
    for name in ("plan", "run"):
        p = sub.add_parser(name)
        if name == "run":
            p.add_argument("out", type=Path)
            p.add_argument("--deadline", type=float, required=True,
                           help="epoch seconds: the end of the whole call's budget")
            p.add_argument("--device", default="cuda")
            p.add_argument("--lanes", type=int, default=4)
            p.add_argument("--lane-devices", nargs="+", default=[],
                           help="one device per lane (default: --device for each of --lanes)")
            p.add_argument("--threads", type=int, default=0)
            p.add_argument("--langsim", type=Path, default=None,
                           help="carried embedding distances, one folder per experiment")
            p.add_argument("--run-estimate", type=float, default=60.0,
                           help="seconds a run is assumed to take before a lane has finished "
                                "one")
            p.add_argument("--export-reserve", type=float, default=30.0,
                           help="seconds kept after the hard stop for the last export")
        p.add_argument("--specs", nargs="+", default=[str(ROOT / s) for s in SPECS])
        p.add_argument("--order", type=Path, default=ROOT / ORDER)
        p.add_argument("--resume", type=Path, default=ROOT / "docs" / "study" / "export")
    args = ap.parse_args(argv)
    if args.cmd == "smoke":
        return smoke(args.device, args.limit)
    if args.cmd == "plan":
        _, planned = plan_runs(args.specs, load_order(args.order), done_runs(args.resume))
        print(describe_plan(planned))
        return 0
    return run_study(args.out, args.deadline, args.device, args.lanes, args.threads,
                     args.specs, args.order, args.resume, args.langsim, args.run_estimate,
                     args.export_reserve, args.lane_devices)


if __name__ == "__main__":
    sys.exit(main())
