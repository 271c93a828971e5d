"""Where a warm worker's study run spends its time, stage by stage, on CPU.

    python benchmarks/study_stages.py [--runs 4] [--steps 20] [--threads 0] [--shared ../shared]

A direction-A-shaped run (train MLQA-R, evaluate XQuAD-R in full: 11 languages, 132
language pairs, ≈157k ``query_results`` rows, ``top_k = 0`` as in the study specs) with
the study's real tokenizer (multilingual-e5-small's, from ``../shared``) in front of a tiny
random model (1 layer, 32 dimensions), so that the model's own compute is small and what is
left is what does not grow with the model: data, tokenisation, search bookkeeping, metrics,
writes, process and run overhead. One ``xlrun worker`` process executes ``--runs`` runs
(hybrid/size, seeds 1…N) against SQLite: the first run is cold, the others warm. Prints the
stage seconds of every run (``runs.timings_json``), the process start-up until the first
claim, and the warm runs' mean.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "study"))

SPEC = """
[experiment]
name = "stages"
output_dir = "{out}"
[model]
name = "{model}"
query_prefix = "query: "
passage_prefix = "passage: "
query_max_length = 64
passage_max_length = 256
[train_data]
source = "lareqa"
path = "{shared}/data/mlqa-r"
[sampling]
strategy = "hybrid"
language_sampling = "size"
[train]
steps = {steps}
batch_size = 64
lr = 2e-5
log_every = 10
[[eval]]
dataset = "xquad-r"
path = "{shared}/data/xquad-r"
settings = ["mono", "cross", "multi"]
top_k = 0
batch_size = 256
[grid]
seeds = {seeds}
"""
STAGES = ("load", "data", "clustering", "train", "encode", "search", "metrics", "write",
          "other", "total")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=4)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    args = ap.parse_args()
    import pack as packlib

    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec

    tok = args.shared / "models" / "multilingual-e5-small"
    with tempfile.TemporaryDirectory(prefix="xlrun-stages-") as tmp:
        t = Path(tmp)
        packlib.tiny(tok, t / "pack", layers=1, hidden=32)
        model = packlib.export_hf(t / "pack", t / "model")
        text = SPEC.format(out=t / "out", model=model, shared=args.shared.resolve(),
                           steps=args.steps, seeds=list(range(1, args.runs + 1)))
        url = f"sqlite:///{t / 'stages.db'}"
        store.submit_runs(get_engine(url), "stages", text,
                          compile_spec(parse_spec(text, base_dir=t)))
        env = dict(os.environ, XLRUN_DB=url, PYTHONPATH=str(ROOT))
        t0 = time.time()
        p = subprocess.run([sys.executable, "-m", "xlrun", "worker", "--device", "cpu",
                            "--threads", str(args.threads)], env=env, capture_output=True,
                           text=True)
        wall = time.time() - t0
        if p.returncode:
            print(p.stdout[-3000:], p.stderr[-3000:])
            return 1
        from sqlalchemy import text as sql

        engine = get_engine(url)
        with engine.connect() as conn:
            rows = conn.execute(sql("SELECT id, started_at, timings_json FROM runs ORDER BY id")
                                ).all()
            n_qr = conn.execute(sql("SELECT COUNT(*) FROM query_results WHERE run_id = 1")
                                ).scalar_one()
    from datetime import datetime

    st = rows[0].started_at
    st = datetime.fromisoformat(st) if isinstance(st, str) else st
    first_start = (st if st.tzinfo else st.replace(tzinfo=UTC)).timestamp()
    print(f"{len(rows)} runs in one worker process, {wall:.1f}s wall; query_results per run: "
          f"{n_qr}; process start → first claim ≈ {max(0.0, first_start - t0):.1f}s")
    print("wall seconds (cpu seconds of the worker process in brackets)")
    print("run  " + "  ".join(f"{s:>14}" for s in STAGES))
    warm = []
    for r in rows:
        tm = json.loads(r.timings_json)
        cpu = tm.get("cpu", {})
        print(f"{r.id:>3}  " + "  ".join(
            f"{tm[s]:6.2f} ({cpu[s]:5.2f})" if s in cpu else f"{tm[s]:6.2f}        "
            for s in STAGES))
        if r.id > 1:
            warm.append(tm)
    if warm:
        def mean(key: str, cpu: bool = False) -> float:
            return sum((w["cpu"] if cpu else w).get(key, 0.0) for w in warm) / len(warm)

        print("warm " + "  ".join(f"{mean(s):6.2f} ({mean(s, True):5.2f})" for s in STAGES))
        fixed = ("load", "data", "clustering", "search", "metrics", "write")
        wall = sum(mean(s) for s in fixed) + mean("other")
        cpu = sum(mean(s, True) for s in fixed)
        start = max(0.0, first_start - t0) / len(rows)
        print(f"warm run, stages that do not grow with the model ({', '.join(fixed)}, other): "
              f"{wall:.2f}s wall, {cpu:.2f}s CPU; encode with the tiny model (tokenisation "
              f"cached after the first run): {mean('encode'):.2f}s wall, "
              f"{mean('encode', True):.2f}s CPU; process start-up per run: {start:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
