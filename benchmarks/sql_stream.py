"""Benchmark: peak memory (RSS) and time of ``xlrun sql`` printing 1,000,000 rows.

A SQLite database gets one run with 1,000,000 ``retrieved`` rows (a top-k list: run, dataset,
split, setting, languages, query id, rank, document id, score, relevance); ``SELECT * FROM
retrieved`` is printed as CSV to /dev/null by a fresh ``python -m xlrun sql`` process, whose
peak RSS is read from ``wait4``. With ``XLRUN_TEST_POSTGRES_URL`` set, the same rows are
copied into a throwaway Postgres database and read there too. Runs the xlrun on
``PYTHONPATH`` (compare an older checkout with ``--pythonpath DIR``).

    PYTHONPATH=. python benchmarks/sql_stream.py [--rows 1000000] [--pythonpath DIR]
        [--memory-cap-gb 4] [--only sqlite|postgres]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

NOW = "'2026-01-01 00:00:00'"
COLUMNS = ("run_id, dataset, split, setting, query_lang, doc_lang, query_id, rank, doc_id, "
           "score, is_relevant")


def _rows(n: int):
    for i in range(n):
        yield (1, "xquad-r", "test", "cross", "en", "de", f"q{i // 100}", i % 100 + 1,
               f"doc-{i:07d}", 0.5 + (i % 9973) / 99730.0 + 1e-9 * i, int(i % 100 == 0))


def make_sqlite(path: Path, n: int, pythonpath: str) -> str:
    """A database at ``path`` with ``n`` retrieved rows (schema by ``xlrun db upgrade``)."""
    url = f"sqlite:///{path}"
    subprocess.run([sys.executable, "-m", "xlrun", "db", "upgrade", "--db", url], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": pythonpath},
                   cwd=tempfile.gettempdir())
    with sqlite3.connect(path) as c:
        c.execute("INSERT INTO experiments (id, name, spec_toml, created_at) "
                  f"VALUES (1, 'e', '', {NOW})")
        c.execute("INSERT INTO runs (id, experiment_id, run_key, status, config_json, model, "
                  f"sampler, seed, attempts, created_at) VALUES (1, 1, 'k', 'done', '{{}}', "
                  f"'m', 'hybrid', 1, 0, {NOW})")
        c.executemany(f"INSERT INTO retrieved ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                      _rows(n))
    c.close()
    return url


def make_postgres(base: str, n: int, pythonpath: str) -> tuple[str, str]:
    """A throwaway database on the server of ``base`` with the same rows; (url, name)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"xlrun_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    subprocess.run([sys.executable, "-m", "xlrun", "db", "upgrade", "--db", url], check=True,
                   capture_output=True, env={**os.environ, "PYTHONPATH": pythonpath},
                   cwd=tempfile.gettempdir())
    import psycopg2

    conn = psycopg2.connect(make_url(url).set(drivername="postgresql")
                            .render_as_string(hide_password=False))
    cur = conn.cursor()
    cur.execute(f"INSERT INTO experiments (id, name, spec_toml, created_at) VALUES (1, 'e', '', "
                f"{NOW})")
    cur.execute("INSERT INTO runs (id, experiment_id, run_key, status, config_json, model, "
                f"sampler, seed, attempts, created_at) VALUES (1, 1, 'k', 'done', '{{}}', 'm', "
                f"'hybrid', 1, 0, {NOW})")
    cur.execute(f"""INSERT INTO retrieved ({COLUMNS})
        SELECT 1, 'xquad-r', 'test', 'cross', 'en', 'de', 'q' || (i / 100), i % 100 + 1,
               'doc-' || lpad(i::text, 7, '0'), 0.5 + (i % 9973) / 99730.0 + 1e-9 * i,
               (i % 100 = 0)
        FROM generate_series(0, {n - 1}) i""")
    conn.commit()
    conn.close()
    return url, name


def drop_postgres(base: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def measure(args: list[str], pythonpath: str,
            cap_gb: float | None = None) -> tuple[float, float, float, int, str]:
    """(wall s, CPU s, peak RSS MB, exit code, last stderr line) of ``python -m xlrun ARGS``
    with stdout to /dev/null (run from the temp folder: ``-m`` would import an ``xlrun/`` in
    the working directory before ``PYTHONPATH``)."""
    env = {**os.environ, "PYTHONPATH": pythonpath}
    cmd = [sys.executable, "-m", "xlrun", *args]
    if cap_gb is not None:  # address space: a client that collects everything fails there
        cap = int(cap_gb * 1024**3)
        cmd = [sys.executable, "-c", f"import resource, runpy, sys; resource.setrlimit("
               f"resource.RLIMIT_AS, ({cap}, {cap})); sys.argv = ['xlrun', *sys.argv[1:]]; "
               "runpy.run_module('xlrun', run_name='__main__')", *args]
    t0 = time.monotonic()
    with open(os.devnull, "w") as null:
        p = subprocess.Popen(cmd, stdout=null, stderr=subprocess.PIPE, env=env,
                             cwd=tempfile.gettempdir())
        assert p.stderr is not None
        err = p.stderr.read().decode(errors="replace")
        _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    last = (err.strip().splitlines() or [""])[-1][:120]
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, p.returncode, last


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pythonpath", default=str(Path(__file__).resolve().parents[1]),
                    help="the xlrun checkout to measure (default: this one)")
    ap.add_argument("--memory-cap-gb", type=float, default=None,
                    help="limit each xlrun process's address space (an older xlrun that "
                         "collects every row then fails with MemoryError instead of filling "
                         "the machine)")
    ap.add_argument("--only", default=None, choices=["sqlite", "postgres"])
    a = ap.parse_args()
    pp = a.pythonpath
    with tempfile.TemporaryDirectory() as d:
        t0 = time.monotonic()
        url = make_sqlite(Path(d) / "r.db", a.rows, pp)
        print(f"generated {a.rows:,} retrieved rows in SQLite in {time.monotonic() - t0:.1f} s",
              flush=True)
        targets = [("sqlite", url)]
        base = os.environ.get("XLRUN_TEST_POSTGRES_URL") if a.only != "sqlite" else None
        pg_name = None
        if base:
            t0 = time.monotonic()
            pg_url, pg_name = make_postgres(base, a.rows, pp)
            targets.append(("postgres", pg_url))
            print(f"generated the same rows in Postgres in {time.monotonic() - t0:.1f} s",
                  flush=True)
        try:
            print(f"xlrun from {pp}")
            print("| database | command | wall s | CPU s | peak RSS MB | exit |")
            print("|---|---|---|---|---|---|")
            for kind, u in targets:
                if a.only and kind != a.only:
                    continue
                for label, args in (
                        ("select 1 (floor)", ["sql", "--db", u, "--format", "csv", "SELECT 1"]),
                        ("csv, all rows", ["sql", "--db", u, "--format", "csv",
                                           "SELECT * FROM retrieved"]),
                        ("table, all rows", ["sql", "--db", u, "SELECT * FROM retrieved"]),
                        ("csv --limit 10", ["sql", "--db", u, "--format", "csv", "--limit",
                                            "10", "SELECT * FROM retrieved"])):
                    wall, cpu, rss, code, last = measure(args, pp, a.memory_cap_gb)
                    note = f" ({last})" if code else ""
                    print(f"| {kind} | {label} | {wall:.1f} | {cpu:.1f} | {rss:.0f} | "
                          f"{code}{note} |", flush=True)
        finally:
            if pg_name and base:
                drop_postgres(base, pg_name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
