"""Benchmark: ``xlrun report --by language-pair --compare language_sampling`` over 1,000,000
``query_results`` rows (2 arms × 5 seeds × 110 language pairs × 910 queries) in SQLite.

The report fits the seeds × questions model of ``xlrun/report/inference.py`` in each of the
110 cells (paired seeds, 910 questions). Usage: ``python benchmarks/report_1m.py [--queries
910] [--keep DB]``. Prints the time to generate the database and the end-to-end time of the
report command (a fresh Python process, imports included) with its CPU time; the target is
< 10 s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sqlalchemy import insert

LANGS = ("ar", "de", "en", "es", "fi", "hi", "ja", "ru", "sw", "th", "zh")
ARMS = ("random", "clustered")
SEEDS = (0, 1, 2, 3, 4)

_INSERT = ("INSERT INTO query_results (run_id, dataset, split, setting, query_lang, doc_lang, "
           "query_id, n_relevant, ap, ndcg_at_10, mrr_at_10, recall_at_100, "
           "first_relevant_rank) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def generate(url: str, n_queries: int) -> int:
    """Fill a fresh database at ``url``; return the number of query_results rows."""
    from xlrun.db.engine import get_engine
    from xlrun.db.models import Experiment, Run

    engine = get_engine(url)
    rng = np.random.default_rng(0)
    pairs = [(q, d) for q in LANGS for d in LANGS if q != d]
    qids = [f"q{i}" for i in range(n_queries)]
    difficulty = rng.uniform(0.2, 0.8, size=(len(LANGS), n_queries))
    total = 0
    with engine.begin() as conn:
        exp_id = conn.execute(insert(Experiment).values(name="bench", spec_toml="")
                              .returning(Experiment.id)).scalar_one()
        for a_i, arm in enumerate(ARMS):
            for seed in SEEDS:
                run_id = conn.execute(insert(Run).values(
                    experiment_id=exp_id, run_key=f"{arm}-{seed}", status="done",
                    config_json=json.dumps({"sampling": {"language_sampling": arm},
                                            "train": {"seed": seed}}),
                    model="m", sampler="hybrid", language_sampling=arm, seed=seed,
                ).returning(Run.id)).scalar_one()
                batch = []
                for q, d in pairs:
                    effect = 0.02 * a_i if LANGS.index(d) % 3 == 0 else 0.0
                    ap = np.clip(difficulty[LANGS.index(q)] + effect
                                 + rng.normal(0, 0.05, n_queries), 0, 1).tolist()
                    batch.extend((run_id, "bench", "test", "cross", q, d, qid, 1, v, v, v, v, 1)
                                 for qid, v in zip(qids, ap, strict=True))
                conn.exec_driver_sql(_INSERT, batch)
                total += len(batch)
    engine.dispose()
    return total


def main() -> None:
    """Generate the database, run the report, print the timings."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=910)
    ap.add_argument("--keep", default=None, help="write the database here and keep it")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.keep) if args.keep else Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        t0 = time.perf_counter()
        n = generate(url, args.queries)
        print(f"generated {n:,} query_results rows in {time.perf_counter() - t0:.1f} s")
        cmd = [sys.executable, "-c",
               "from xlrun.cli.report import report_command; report_command()",
               "--by", "language-pair", "--compare", "language_sampling", "--db", url,
               "--format", "csv", "--out", str(Path(tmp) / "report.csv")]
        t0 = time.perf_counter()
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True)
        elapsed = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        lines = (Path(tmp) / "report.csv").read_text().count("\n") - 1
        print(f"xlrun report --by language-pair --compare language_sampling: {elapsed:.2f} s "
              f"end to end, {cpu:.2f} s CPU ({lines} report rows; target < 10 s)")


if __name__ == "__main__":
    main()
