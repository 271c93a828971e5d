"""Run lifecycle and result writes.

Every write that could be repeated is idempotent: runs are keyed by
``(experiment_id, run_key)``; a result set for ``(run, dataset, split)`` is replaced as a
whole in one transaction, so a crash never leaves half of one and a retry never doubles it;
log rows use insert-or-ignore on their natural keys.
"""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
from sqlalchemy import Connection, Engine, Table, delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from xlrun.db.models import (
    BatchLanguages,
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryMeasure,
    QueryResult,
    Retrieved,
    Run,
    RunMetric,
    SamplingPlan,
    TrainLog,
    utcnow,
)
from xlrun.errors import UsageError
from xlrun.processes import pid_alive
from xlrun.secrets import mask
from xlrun.spec.schema import CompiledRun

CHUNK = 5000


@dataclass(frozen=True)
class SubmitResult:
    """What a submission did to the runs table."""

    experiment_id: int
    run_ids: tuple[int, ...]
    new: int
    requeued: int
    done: int
    running: int


def _insert(conn: Connection, table: Table) -> Any:
    """An INSERT that ignores rows whose primary key exists (dialect-specific)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    return table.insert()


def insert_rows(conn: Connection, table: Table, rows: Sequence[dict[str, Any]],
                ignore_existing: bool = False) -> None:
    """Bulk insert ``rows`` in chunks (insert-or-ignore when ``ignore_existing``)."""
    stmt = _insert(conn, table) if ignore_existing else table.insert()
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start:start + CHUNK]
        if chunk:
            conn.execute(stmt, list(chunk))


def submit_runs(engine: Engine, experiment: str, spec_toml: str,
                runs: Sequence[CompiledRun], output_dir: str | None = None,
                env: dict[str, str | None] | None = None) -> SubmitResult:
    """Create or update the experiment and enqueue its runs, in one transaction.

    New run keys are inserted as ``queued``; ``failed`` runs go back to ``queued`` with the
    config compiled now (a run imported from an export never runs its imported config); ``done``
    and ``running`` runs are left alone, so resubmitting never duplicates work.
    ``output_dir`` (absolute) is stored with each new run, so whichever worker or node runs
    it later finds the same checkpoints. ``env`` (what the spec's ``${VAR}`` expanded, never
    a secret: :mod:`xlrun.spec.env`) is recorded with them as ``config_json["env"]``.
    """
    with engine.begin() as conn:
        exp_t = Experiment.__table__
        row = conn.execute(select(exp_t.c.id).where(exp_t.c.name == experiment)).first()
        if row is None:
            conn.execute(_insert(conn, exp_t).values(name=experiment, spec_toml=spec_toml,
                                                     created_at=utcnow()))
            row = conn.execute(select(exp_t.c.id).where(exp_t.c.name == experiment)).one()
        else:
            conn.execute(update(exp_t).where(exp_t.c.id == row.id).values(spec_toml=spec_toml))
        exp_id = row.id
        run_t = Run.__table__
        rows = [dict(
            experiment_id=exp_id, run_key=r.run_key, status="queued",
            config_json=json.dumps(dict(r.config.to_dict(), **(
                {"output_dir": output_dir} if output_dir else {}), **(
                {"env": env} if env else {})), sort_keys=True),
            model=r.config.model.name, sampler=r.config.sampler,
            language_sampling=r.config.language_sampling, clustering=r.config.clustering,
            seed=r.seed, attempts=0, created_at=utcnow(),
        ) for r in runs]
        keys = [r.run_key for r in runs]
        before = {r.run_key: r.status for r in conn.execute(
            select(run_t.c.run_key, run_t.c.status).where(run_t.c.experiment_id == exp_id))}
        insert_rows(conn, run_t, rows, ignore_existing=True)
        failed = [k for k in keys if before.get(k) == "failed"]
        config_of = {r["run_key"]: r["config_json"] for r in rows}
        for key in failed:  # requeued with the config compiled now (never an imported one)
            conn.execute(update(run_t).where(run_t.c.experiment_id == exp_id,
                                             run_t.c.run_key == key)
                         .values(status="queued", error=None, worker=None,
                                 config_json=config_of[key]))
        ids = {r.run_key: r.id for r in conn.execute(
            select(run_t.c.run_key, run_t.c.id)
            .where(run_t.c.experiment_id == exp_id, run_t.c.run_key.in_(keys)))}
    return SubmitResult(
        experiment_id=exp_id, run_ids=tuple(ids[k] for k in keys),
        new=sum(k not in before for k in keys), requeued=len(failed),
        done=sum(before.get(k) == "done" for k in keys),
        running=sum(before.get(k) == "running" for k in keys),
    )


def claim_run(engine: Engine, worker: str, run_ids: Iterable[int] | None = None,
              device: str | None = None) -> int | None:
    """Atomically move one queued run to ``running`` for ``worker``; its id, or None.

    One UPDATE … WHERE status = 'queued' … RETURNING: on Postgres the candidate row is
    locked with ``FOR UPDATE SKIP LOCKED``; on SQLite the statement holds the database write
    lock. Either way two workers can never claim the same run.
    """
    run_t = Run.__table__
    pick = select(run_t.c.id).where(run_t.c.status == "queued").order_by(run_t.c.id).limit(1)
    if run_ids is not None:
        ids = list(run_ids)
        if not ids:
            return None
        pick = pick.where(run_t.c.id.in_(ids))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        now = utcnow()
        stmt = (update(run_t)
                .where(run_t.c.id == pick.scalar_subquery(), run_t.c.status == "queued")
                .values(status="running", worker=worker, heartbeat_at=db_now(conn),
                        started_at=now,
                        host=socket.gethostname(), device=device, error=None,
                        finished_at=None, attempts=run_t.c.attempts + 1)
                .returning(run_t.c.id))
        row = conn.execute(stmt).first()
    return row.id if row else None


def heartbeat(engine: Engine, run_id: int, worker: str) -> bool:
    """Refresh the claim; False when the run is no longer ours (reclaimed elsewhere)."""
    run_t = Run.__table__
    with engine.begin() as conn:
        res = conn.execute(update(run_t).where(run_t.c.id == run_id, run_t.c.worker == worker,
                                               run_t.c.status == "running")
                           .values(heartbeat_at=db_now(conn)))
    return res.rowcount == 1


def db_now(conn: Connection) -> Any:
    """The database server's current UTC time: heartbeats are stamped and judged by one clock,
    so workers on machines with skewed clocks never reclaim each other's live runs."""
    if conn.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", "now")
    return func.now()


def _stale_cutoff(conn: Connection, seconds: float) -> Any:
    if conn.dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d %H:%M:%f", "now", f"{-float(seconds):+.3f} seconds")
    return func.now() - timedelta(seconds=seconds)


def reclaim_stale(engine: Engine, stale_after_s: float, max_attempts: int = 3) -> list[int]:
    """Put ``running`` runs whose last heartbeat is more than ``stale_after_s`` seconds old
    (by the database's clock) back to queued.

    A run that has already been tried ``max_attempts`` times (e.g. it kills its worker by
    running out of memory) is marked ``failed`` instead, so it cannot take down worker
    after worker. Returns the ids put back in the queue.
    """
    run_t = Run.__table__
    with engine.begin() as conn:
        stale = ((run_t.c.status == "running")
                 & (run_t.c.heartbeat_at < _stale_cutoff(conn, stale_after_s)))
        conn.execute(update(run_t).where(stale, run_t.c.attempts >= max_attempts)
                     .values(status="failed", worker=None, finished_at=utcnow(),
                             error=f"gave up after {max_attempts} attempts: each time its "
                                   "worker stopped heartbeating (killed? out of memory?)"))
        rows = conn.execute(update(run_t).where(stale)
                            .values(status="queued", worker=None,
                                    error="reclaimed: worker stopped heartbeating")
                            .returning(run_t.c.id)).all()
    return [r.id for r in rows]


def set_run_device(engine: Engine, run_id: int, device: str) -> None:
    """Record the device a run actually uses (``auto`` resolved)."""
    run_t = Run.__table__
    with engine.begin() as conn:
        conn.execute(update(run_t).where(run_t.c.id == run_id).values(device=device))


MODEL_INFO_KEY = "model_resolved"
"""The ``runs.config_json`` key under which a run records how its model was loaded."""


def set_run_model_info(engine: Engine, run_id: int, info: dict[str, Any]) -> None:
    """Record in ``runs.config_json`` (key ``model_resolved``) what the loaded model did and
    where each setting came from (the model, the spec or xlrun's default)."""
    run_t = Run.__table__
    with engine.begin() as conn:
        text = conn.execute(select(run_t.c.config_json).where(run_t.c.id == run_id)).scalar_one()
        config = json.loads(text)
        config[MODEL_INFO_KEY] = info
        conn.execute(update(run_t).where(run_t.c.id == run_id).values(
            config_json=json.dumps(config, sort_keys=True)))


def reclaim_dead_local(engine: Engine, host: str | None = None) -> list[int]:
    """Requeue ``running`` runs held by a process of this host that no longer exists.

    Worker names are ``host:pid:tag``; a run whose worker process is gone (killed, crashed
    machine session) would otherwise wait for the heartbeat timeout.
    """
    host = host or socket.gethostname()
    run_t = Run.__table__
    with engine.connect() as conn:
        held = conn.execute(select(run_t.c.id, run_t.c.worker).where(
            run_t.c.status == "running", run_t.c.worker.like(f"{host}:%"))).all()
    dead = []
    for rid, worker in held:
        parts = worker.split(":")
        if len(parts) >= 2 and parts[1].isdigit() and not pid_alive(int(parts[1])):
            dead.append((rid, worker))
    reclaimed = []
    with engine.begin() as conn:
        for rid, worker in dead:
            res = conn.execute(update(run_t).where(run_t.c.id == rid, run_t.c.worker == worker,
                                                   run_t.c.status == "running")
                               .values(status="queued", worker=None,
                                       error=f"reclaimed: worker {worker} is gone"))
            if res.rowcount == 1:
                reclaimed.append(rid)
    return reclaimed


def finish_run(engine: Engine, run_id: int, status: str, error: str | None = None,
               worker: str | None = None, timings: dict[str, float] | None = None) -> bool:
    """Mark a run ``done``, ``failed`` or back to ``queued``. With ``worker``, only if it
    still holds the run; with ``timings`` (seconds per stage), store them with the run.
    ``error`` is stored with passwords masked (:func:`xlrun.secrets.mask`).
    Returns whether the row changed."""
    if status not in ("done", "failed", "queued"):
        raise ValueError(status)
    run_t = Run.__table__
    values: dict[str, Any] = {"status": status, "error": mask(error) if error else error,
                              "finished_at": utcnow() if status != "queued" else None}
    if timings is not None:
        values["timings_json"] = json.dumps(timings)
    if status == "queued":
        values["worker"] = None
    stmt = update(run_t).where(run_t.c.id == run_id)
    if worker is not None:
        stmt = stmt.where(run_t.c.worker == worker, run_t.c.status == "running")
    with engine.begin() as conn:
        return conn.execute(stmt.values(**values)).rowcount == 1


def get_run(engine: Engine, run_id: int) -> dict[str, Any]:
    """A run row as a dict, with its experiment name (UsageError when absent)."""
    run_t, exp_t = Run.__table__, Experiment.__table__
    with engine.connect() as conn:
        row = conn.execute(select(run_t, exp_t.c.name.label("experiment"),
                                  exp_t.c.spec_toml.label("spec_toml"))
                           .join(exp_t, exp_t.c.id == run_t.c.experiment_id)
                           .where(run_t.c.id == run_id)).mappings().first()
    if row is None:
        raise UsageError(f"no run with id {run_id}")
    return dict(row)


def write_train_log(engine: Engine, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Append training log rows (a resumed run may log a step again: ignored)."""
    with engine.begin() as conn:
        insert_rows(conn, TrainLog.__table__, [dict(r, run_id=run_id) for r in rows],
                    ignore_existing=True)


def write_batch_languages(engine: Engine, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Append batch-composition rows (idempotent per step and language pair)."""
    with engine.begin() as conn:
        insert_rows(conn, BatchLanguages.__table__, [dict(r, run_id=run_id) for r in rows],
                    ignore_existing=True)


def write_sampling_plan(engine: Engine, run_id: int, rows: Sequence[dict[str, Any]]) -> None:
    """Replace the run's ``sampling_plan`` rows in one transaction."""
    with engine.begin() as conn:
        conn.execute(delete(SamplingPlan.__table__).where(
            SamplingPlan.__table__.c.run_id == run_id))
        insert_rows(conn, SamplingPlan.__table__, [dict(r, run_id=run_id) for r in rows])


def write_languages(engine: Engine, run_id: int, clusters: Sequence[Sequence[str]],
                    distances: Sequence[dict[str, Any]]) -> None:
    """Replace the run's language clusters and distance rows in one transaction."""
    with engine.begin() as conn:
        for table in (LanguageCluster.__table__, LanguageDistance.__table__):
            conn.execute(delete(table).where(table.c.run_id == run_id))
        insert_rows(conn, LanguageCluster.__table__,
                    [{"run_id": run_id, "lang": lang, "cluster": i}
                     for i, members in enumerate(clusters) for lang in members])
        insert_rows(conn, LanguageDistance.__table__,
                    [dict(d, run_id=run_id) for d in distances])


def _arrow_columns(frame: Any, cols: Sequence[str]) -> list[list[Any]]:
    return [frame.column(c).to_pylist() for c in cols]


def bulk_insert_frame(conn: Connection, table: Table, frame: Any, run_id: int | None = None
                      ) -> None:
    """Insert a frame fast: ``COPY`` on Postgres, a raw ``executemany`` on SQLite.

    ``frame`` is a pyarrow Table (what the evaluation produces; no polars needed) or a polars
    DataFrame. ``run_id``, when given, fills the ``run_id`` column. Columns not in the frame
    get their defaults (NULL). Runs inside ``conn``'s transaction.
    """
    is_arrow = hasattr(frame, "column_names")
    names_in = list(frame.column_names if is_arrow else frame.columns)
    n_rows = frame.num_rows if is_arrow else frame.height
    if n_rows == 0:
        return
    cols = [c for c in names_in if c in table.c and (run_id is None or c != "run_id")]
    all_cols = (["run_id"] if run_id is not None else []) + cols
    names = ", ".join(f'"{c}"' for c in all_cols)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg2":
        buf = io.StringIO()
        if is_arrow:
            t = frame.select(cols)
            if run_id is not None:
                t = t.add_column(0, "run_id", pa.array([run_id] * n_rows, type=pa.int64()))
            raw = io.BytesIO()
            # every valid value quoted, NULL unquoted: COPY … CSV reads an unquoted empty
            # field as NULL and a quoted one as an empty string
            pacsv.write_csv(t, raw, pacsv.WriteOptions(include_header=False,
                                                       quoting_style="all_valid"))
            buf = io.StringIO(raw.getvalue().decode("utf-8"))
            null = ""
        else:
            import polars as pl  # deferred on purpose: the run path never imports polars

            f = frame.select(cols)
            if run_id is not None:
                f = f.select(pl.lit(run_id).alias("run_id"), *cols)
            f.write_csv(buf, include_header=False, null_value="\\N")
            buf.seek(0)
            null = "\\N"
        cursor = conn.connection.dbapi_connection.cursor()
        try:
            cursor.copy_expert(f"COPY {table.name} ({names}) FROM STDIN WITH (FORMAT csv, "
                               f"NULL '{null}')", buf)
        finally:
            cursor.close()
        return
    if is_arrow:
        columns = _arrow_columns(frame, cols)
        if run_id is not None:
            columns.insert(0, [run_id] * n_rows)
        rows: list[tuple[Any, ...]] = list(zip(*columns, strict=True))
    else:
        f = frame.select(cols)
        rows = ([(run_id, *r) for r in f.iter_rows()] if run_id is not None else f.rows())
    if conn.dialect.name == "sqlite":
        marks = ", ".join("?" for _ in all_cols)
        sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"
        for start in range(0, len(rows), 50_000):
            conn.exec_driver_sql(sql, rows[start:start + 50_000])
    else:
        insert_rows(conn, table, [dict(zip(all_cols, r, strict=True)) for r in rows])


def write_results(engine: Engine, run_id: int, dataset: str, split: str,
                  frames: dict[str, Any]) -> None:
    """Replace the (run, dataset, split) result set in ONE transaction.

    ``frames`` maps ``query_results``, ``query_measures``, ``retrieved`` and ``run_metrics``
    to pyarrow Tables, polars DataFrames or lists of dicts whose columns match the tables,
    without ``run_id``.
    """
    tables = {"query_results": QueryResult.__table__, "query_measures": QueryMeasure.__table__,
              "retrieved": Retrieved.__table__, "run_metrics": RunMetric.__table__}
    with engine.begin() as conn:
        for table in tables.values():
            conn.execute(delete(table).where(table.c.run_id == run_id,
                                             table.c.dataset == dataset, table.c.split == split))
        for name, table in tables.items():
            frame = frames.get(name)
            if frame is None:
                continue
            if hasattr(frame, "column_names") or hasattr(frame, "with_columns"):
                bulk_insert_frame(conn, table, frame, run_id=run_id)
            else:
                insert_rows(conn, table, [dict(r, run_id=run_id) for r in frame])


def count_rows(engine: Engine, table: Table, run_id: int | None = None) -> int:
    """Number of rows in ``table`` (for one run if given)."""
    stmt = select(func.count()).select_from(table)
    if run_id is not None:
        stmt = stmt.where(table.c.run_id == run_id)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())
