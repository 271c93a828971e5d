"""Workers sharing one machine: the quickstart (7 runs) with 1 worker, then with N workers.

    python benchmarks/worker_share.py [--workers 1 4] [--repeat 2] [--threads 0]

Each measurement: a fresh SQLite database and output folder (the tiny model is built once
beforehand and copied in, so no measurement pays for it), ``xlrun submit
experiments/quickstart.toml --no-run``, then N ``xlrun worker --device cpu`` processes
started together; the wall time until the last one exits and the CPU seconds the workers
used (user + system, from ``getrusage``: threads spinning on an oversubscribed machine
show up here even when other programs slow the wall clock) are printed, one line per
measurement, in the order run (1, N, 1, N, … back to back, since the machine may be shared),
with the load average at the start.
``--threads`` is passed to every worker (0: each takes its share of the cores).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "experiments" / "quickstart.toml"


def measure(workers: int, threads: int, models: Path) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="xlrun-share-") as tmp:
        out = Path(tmp) / "out"
        shutil.copytree(models, out / ".models")
        env = dict(os.environ, XLRUN_DB=f"sqlite:///{tmp}/q.db", XLRUN_OUTPUT=str(out),
                   PYTHONPATH=str(ROOT))
        xl = [sys.executable, "-m", "xlrun"]
        subprocess.run([*xl, "submit", str(SPEC), "--no-run"], env=env, check=True,
                       capture_output=True)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        procs = [subprocess.Popen([*xl, "worker", "--device", "cpu", "--threads", str(threads)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for _ in range(workers)]
        errs = [p.communicate()[1] for p in procs]
        seconds = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        bad = [e.decode()[-2000:] for p, e in zip(procs, errs, strict=True) if p.returncode]
        if bad:
            raise SystemExit("a worker failed:\n" + "\n".join(bad))
        done = subprocess.run([*xl, "sql", "--format", "csv",
                               "SELECT COUNT(*) FROM runs WHERE status = 'done'"],
                              env=env, capture_output=True, text=True, check=True)
        assert done.stdout.strip().splitlines()[-1] == "7", done.stdout
    return seconds, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="xlrun-models-") as tmp:
        models = Path(tmp) / ".models"
        sys.path.insert(0, str(ROOT))
        from xlrun.quickstart.tiny_model import resolve_model_name

        resolve_model_name("quickstart:tiny", models)
        for r in range(args.repeat):
            for n in args.workers:
                load = os.getloadavg()[0]
                s, cpu = measure(n, args.threads, models)
                print(f"round {r + 1}: {n} worker(s), --threads {args.threads}: {s:.1f} s wall, "
                      f"{cpu:.1f} CPU s (load average {load:.1f} at the start)", flush=True)


if __name__ == "__main__":
    main()
