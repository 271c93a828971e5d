"""Benchmark: what ``[[eval]] measures`` costs on an XQuAD-R-shaped run (11 languages × 1,190
questions: 11 mono + 110 cross + 11 pool cells, 157,080 query rows; one relevant document per
query in mono/cross, one per language in the pool).

Measures, for the measures given (default: six), with synthetic ranks (no encoder):

- the time to score every cell without and with the measures (``ResultFrames``: the
  ``query_results`` columns, then the measures and their ``query_measures`` rows);
- the bytes one stored value takes: ``query_measures`` written through
  ``store.write_results`` into SQLite (file size, after VACUUM) and, with ``--postgres URL``,
  Postgres (``pg_total_relation_size``), next to ``query_results``' bytes per row;
- the cost of trec_eval's tie order (sorting the document ids once per collection).

Usage: ``python benchmarks/measures_cost.py [--measures nDCG@100,R@1000,...] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

LANGS = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
N_Q = 1190
N_DOCS = 1183  # XQuAD-R candidates per language


def result_set(measures: list[str]) -> tuple[object, float]:
    """The four tables of one synthetic run and the seconds spent scoring."""
    from xlrun.evaluate.measures import parse_measures
    from xlrun.evaluate.runner import Collection, ResultFrames
    from xlrun.evaluate.types import EvalData

    rng = np.random.default_rng(0)
    data = EvalData("xquad-r", "test", {}, {}, {}, parallel=True)
    frames = ResultFrames(data, parse_measures(measures))
    col = Collection(np.zeros((0, 0), np.float32), None, np.array([], dtype=object),
                     np.array([], dtype=object))
    qids = np.array([f"{i:024x}" for i in rng.integers(0, 2**62, N_Q)], dtype=object)
    t0 = time.perf_counter()
    for x in LANGS:
        for y in (*LANGS, "all"):
            width = len(LANGS) if y == "all" else 1
            pool = N_DOCS * (len(LANGS) if y == "all" else 1)
            ranks = np.sort(rng.integers(1, pool, size=(N_Q, width)), axis=1).astype(float)
            setting = "multi" if y == "all" else "mono" if x == y else "cross"
            bias = ({"rank_distance": ranks[:, -1] - ranks[:, 0],
                     "same_lang_at_10": rng.random(N_Q), "same_lang_expected":
                     np.full(N_Q, 1 / 11)} if setting == "multi" else None)
            frames.add(setting, x, y, qids, ranks, np.zeros((N_Q, 0), np.int64),
                       np.zeros((N_Q, 0), np.float32), col, np.zeros((N_Q, width), np.int64),
                       0, bias)
    seconds = time.perf_counter() - t0
    return frames.output(), seconds


def sqlite_bytes(tables: dict, folder: Path, name: str) -> int:
    """File size of a fresh SQLite database holding one run with ``tables``."""
    import sqlite3

    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec

    path = folder / f"{name}.db"
    engine = get_engine(f"sqlite:///{path}")
    spec = ('[experiment]\nname = "b"\n[model]\nname = "quickstart:tiny"\n[train]\nsteps = 0\n'
            '[[eval]]\ndataset = "quickstart"\n')
    rid = store.submit_runs(engine, "b", spec, compile_spec(parse_spec(spec))).run_ids[0]
    store.write_results(engine, rid, "xquad-r", "test", tables)
    engine.dispose()
    con = sqlite3.connect(path)
    con.execute("VACUUM")
    con.close()
    return path.stat().st_size


def postgres_bytes(tables: dict, url: str) -> dict[str, int]:
    """Bytes of query_results and query_measures (tables and indexes) in a fresh database."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec

    name = f"xlrun_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        engine = get_engine(make_url(url).set(database=name).render_as_string(hide_password=False))
        spec = ('[experiment]\nname = "b"\n[model]\nname = "quickstart:tiny"\n[train]\n'
                'steps = 0\n[[eval]]\ndataset = "quickstart"\n')
        rid = store.submit_runs(engine, "b", spec, compile_spec(parse_spec(spec))).run_ids[0]
        store.write_results(engine, rid, "xquad-r", "test", tables)
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            out = {t: int(conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar())
                   for t in ("query_results", "query_measures")}
        engine.dispose()
        return out
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measures", default="nDCG@100,R@1000,P@1,Success@5,AP@100,RR")
    parser.add_argument("--postgres", default=os.environ.get("XLRUN_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    measures = [m for m in args.measures.split(",") if m]
    plain, t_plain = result_set([])
    with_m, t_with = result_set(measures)
    n = plain.query_results.num_rows
    rows = with_m.query_measures.num_rows
    print(f"{n} query rows, {len(measures)} measures → {rows} query_measures rows")
    print(f"scoring: {t_plain:.2f} s without measures, {t_with:.2f} s with them "
          f"({(t_with - t_plain) / len(measures):.2f} s per measure and run)")
    with tempfile.TemporaryDirectory() as tmp:
        a = sqlite_bytes(plain.tables(), Path(tmp), "plain")
        b = sqlite_bytes(with_m.tables(), Path(tmp), "measures")
    print(f"SQLite: query_results {a / n:.0f} B per query row (whole file); query_measures "
          f"{(b - a) / rows:.1f} B per value → {(b - a) / n:.0f} B per query for "
          f"{len(measures)} measures")
    if args.postgres:
        sizes = postgres_bytes(with_m.tables(), args.postgres)
        print(f"Postgres: query_results {sizes['query_results'] / n:.0f} B per query row; "
              f"query_measures {sizes['query_measures'] / rows:.1f} B per value")
    from xlrun.evaluate.runner import trec_tie_break

    for size in (13_013, 1_000_000):
        ids = [f"doc{i}" for i in np.random.default_rng(1).permutation(size)]
        t0 = time.perf_counter()
        trec_tie_break(ids)
        print(f"tie order of {size:,} document ids: {time.perf_counter() - t0:.3f} s")


if __name__ == "__main__":
    main()
