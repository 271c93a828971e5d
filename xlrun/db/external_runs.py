"""Store a ranking made elsewhere (an imported TREC run) as a run of an experiment.

An imported run is an ordinary ``runs`` row, written ``done`` in ONE transaction with its
result tables: its arm columns are ``sampler`` = the name it was imported under (``bm25``),
``language_sampling`` and ``clustering`` NULL, ``seed`` 0, so ``--compare arm`` labels it
with that name; ``model`` is ``trec-run:<file name>``; ``config_json`` is a run config with
``train.steps = 0`` and the ``[[eval]]`` section it was scored with, plus ``external_run``
(file, SHA-256, name). Its ``run_key`` hashes the file's content, the section and the name,
so importing the same file again adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from sqlalchemy import Engine, select

from xlrun.db.models import (
    Experiment,
    QueryMeasure,
    QueryResult,
    Retrieved,
    Run,
    RunMetric,
    utcnow,
)
from xlrun.db.store import bulk_insert_frame

EXTERNAL_KEY = "external_run"
"""The ``runs.config_json`` key that describes an imported run."""


@dataclass(frozen=True)
class StoredRun:
    """What :func:`store_external_run` did: the run's id and whether it was new."""

    run_id: int
    new: bool
    same_arm: int
    """Other runs of the experiment under the same name (the arm now has ``same_arm + 1``)."""


def store_external_run(engine: Engine, experiment: str, name: str, run_key: str,
                       config: dict[str, Any], model: str, tables: Mapping[str, pa.Table],
                       spec_toml: str) -> StoredRun:
    """Insert the experiment (with ``spec_toml`` when it is new), the run (``done``) and its
    result ``tables`` in one transaction; a run with the same key in the experiment is left
    as it is (``new`` false)."""
    exp_t, run_t = Experiment.__table__, Run.__table__
    with engine.begin() as conn:
        row = conn.execute(select(exp_t.c.id).where(exp_t.c.name == experiment)).first()
        if row is None:
            conn.execute(exp_t.insert().values(name=experiment, spec_toml=spec_toml,
                                               created_at=utcnow()))
            row = conn.execute(select(exp_t.c.id).where(exp_t.c.name == experiment)).one()
        exp_id = int(row[0])
        same = list(conn.execute(select(run_t.c.id, run_t.c.run_key).where(
            run_t.c.experiment_id == exp_id, run_t.c.sampler == name)))
        for rid, key in same:
            if key == run_key:
                return StoredRun(int(rid), False, len(same) - 1)
        taken = conn.execute(select(run_t.c.id).where(run_t.c.experiment_id == exp_id,
                                                     run_t.c.run_key == run_key)).first()
        if taken is not None:
            return StoredRun(int(taken[0]), False, len(same))
        now = utcnow()
        conn.execute(run_t.insert().values(
            experiment_id=exp_id, run_key=run_key, status="done",
            config_json=json.dumps(config, sort_keys=True), model=model, sampler=name,
            language_sampling=None, clustering=None, seed=0, attempts=1, created_at=now,
            started_at=now, finished_at=now, device="none", worker="import-run"))
        run_id = int(conn.execute(select(run_t.c.id).where(
            run_t.c.experiment_id == exp_id, run_t.c.run_key == run_key)).scalar_one())
        targets = {"query_results": QueryResult.__table__,
                   "query_measures": QueryMeasure.__table__,
                   "retrieved": Retrieved.__table__, "run_metrics": RunMetric.__table__}
        for table_name, table in targets.items():
            frame = tables.get(table_name)
            if frame is not None:
                bulk_insert_frame(conn, table, frame, run_id=run_id)
    return StoredRun(run_id, True, len(same))
