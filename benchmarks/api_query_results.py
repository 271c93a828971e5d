"""Benchmark: the Python API reading 1,000,000 ``query_results`` rows into polars.

``xlrun.connect(url).query_results()`` (the grouped read: the database concatenates each run ×
language pair's values, polars splits them; ~2,200 rows cross the driver) against fetching the
same rows one Python tuple each (what ``pl.read_database`` over SQLAlchemy does). The database
is :mod:`report_1m`'s (2 arms × 5 seeds × 110 pairs × 910 questions). Usage:
``python benchmarks/api_query_results.py [--queries 910] [--db PATH]`` (an existing database
from ``report_1m.py --keep PATH`` is reused).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report_1m import generate

import xlrun


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    """Time both reads and check they hold the same values."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=910)
    ap.add_argument("--db", default=None, help="reuse (or write) the database here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(args.db) if args.db else Path(tmp) / "bench.db"
        url = f"sqlite:///{db}"
        if not db.exists():
            t0 = time.perf_counter()
            n = generate(url, args.queries)
            print(f"generated {n:,} query_results rows in {time.perf_counter() - t0:.1f} s")
        with xlrun.connect(url) as res:
            t0, c0 = time.perf_counter(), _cpu()
            fast = res.query_results(columns=["ap"])
            print(f"xlrun.connect(...).query_results(): {fast.height:,} rows in "
                  f"{time.perf_counter() - t0:.2f} s ({_cpu() - c0:.2f} s CPU)")
            t0, c0 = time.perf_counter(), _cpu()
            with res.engine.connect() as conn:
                slow = pl.read_database(
                    "SELECT run_id, dataset, split, setting, query_lang, doc_lang, query_id, ap "
                    "FROM query_results", conn)
            print(f"row by row (pl.read_database over SQLAlchemy): {slow.height:,} rows in "
                  f"{time.perf_counter() - t0:.2f} s ({_cpu() - c0:.2f} s CPU)")
        key = ["run_id", "setting", "query_lang", "doc_lang", "query_id"]
        same = fast.select(*key, "ap").sort(key).equals(slow.select(*key, "ap").sort(key))
        print(f"same values: {same}")


if __name__ == "__main__":
    main()
