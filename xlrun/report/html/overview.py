"""The page's overview: which experiments, arms, seeds, runs (done, failed, …), models,
datasets and stage timings the page covers, and where it came from (xlrun version, spec
hashes, run keys, the database URL without its password)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from sqlalchemy import Connection, select
from sqlalchemy.engine import URL

from xlrun import __version__
from xlrun.db.models import Experiment, Run
from xlrun.report.frames import (
    _MISSING,
    ARM_COLUMNS,
    WHOLE_ARM,
    ReportFilter,
    _arm_label,
    _config_value,
    apply_where,
)
from xlrun.secrets import mask
from xlrun.spec.schema import arm_label

STAGES: tuple[str, ...] = ("load", "data", "clustering", "train", "encode", "search",
                           "metrics", "write", "other")
"""The stages of ``runs.timings_json`` in pipeline order (others follow, sorted)."""



@dataclass(frozen=True)
class Overview:
    """What the page covers: ``runs`` (one row per run of the selection, any status:
    ``run_id, experiment, arm, seed, status, run_key, model, device, seconds``),
    ``experiments`` (``experiment, created_at, spec_sha256, runs``), ``timings`` (mean wall
    seconds per stage and arm over the finished runs that recorded them), ``datasets``
    (``dataset, split, settings`` from the runs' evaluation sections), the masked database
    URL, the xlrun version and when the page was made."""

    runs: pl.DataFrame
    experiments: pl.DataFrame
    timings: pl.DataFrame
    datasets: pl.DataFrame
    database: str
    version: str
    generated_at: str

    def counts(self) -> pl.DataFrame:
        """Per arm: runs by status (``done``, ``failed``, other), seeds and models."""
        if self.runs.height == 0:
            return pl.DataFrame(schema={"arm": pl.String})
        return (self.runs.group_by("arm", maintain_order=True)
                .agg(pl.len().cast(pl.Int64).alias("runs"),
                     (pl.col("status") == "done").sum().cast(pl.Int64).alias("done"),
                     (pl.col("status") == "failed").sum().cast(pl.Int64).alias("failed"),
                     pl.col("status").is_in(["done", "failed"]).not_().sum().cast(pl.Int64)
                     .alias("other"),
                     pl.col("seed").unique().sort().cast(pl.String).str.join(", ")
                     .alias("seeds"),
                     pl.col("model").unique().sort().str.join(", ").alias("models")))


def safe_url(url: URL | str) -> str:
    """The database URL as text with its password masked in every form
    (:func:`xlrun.secrets.mask`: user information, ``password=``-like query parameters)."""
    from sqlalchemy.engine import make_url

    u = make_url(url) if isinstance(url, str) else url
    return mask(u.render_as_string(hide_password=True))


def _arm_of(row: dict[str, Any], compare: str) -> str:
    """The run's arm under ``compare``, labelled as :func:`~xlrun.report.frames.load_runs`
    labels the finished runs (its helpers, so that any status gets the same label)."""
    if compare == WHOLE_ARM:
        return arm_label(row["sampler"], row["language_sampling"], row["clustering"])
    if compare in ARM_COLUMNS:
        value = row[compare]
    else:
        value = _config_value(row["config_json"], compare)
        value = None if value is _MISSING else value
    return _arm_label(value) or "(none)"


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    if end.tzinfo is None:
        end = end.replace(tzinfo=UTC)
    return (end - start).total_seconds()


def load_overview(conn: Connection, filt: ReportFilter, compare: str) -> Overview:
    """The overview of the runs ``filt`` selects (its experiment and ``--where`` clauses;
    every status), their arms under ``compare``."""
    stmt = (select(Run.id, Run.run_key, Run.status, Run.seed, Run.model, Run.sampler,
                   Run.language_sampling, Run.clustering, Run.config_json, Run.device,
                   Run.started_at, Run.finished_at, Run.timings_json,
                   Experiment.name.label("experiment"))
            .join(Experiment, Experiment.id == Run.experiment_id).order_by(Run.id))
    exps = select(Experiment.name, Experiment.created_at, Experiment.spec_toml)
    if filt.experiment is not None:
        stmt = stmt.where(Experiment.name == filt.experiment)
        exps = exps.where(Experiment.name == filt.experiment)
    rows = [dict(r._mapping) for r in conn.execute(stmt)]
    schema = {"run_id": pl.Int64, "run_key": pl.String, "status": pl.String, "seed": pl.Int64,
              "model": pl.String, "sampler": pl.String, "language_sampling": pl.String,
              "clustering": pl.String, "config_json": pl.String, "experiment": pl.String}
    table = pl.DataFrame([{"run_id": r["id"], **{k: r[k] for k in list(schema)[1:]}}
                          for r in rows], schema=schema)
    if filt.where and table.height:
        try:
            table = apply_where(table, filt.where)
        except Exception:  # noqa: BLE001 - no run of any status matches: an empty overview
            table = table.clear()
    keep = set(table["run_id"].to_list())
    rows = [r for r in rows if r["id"] in keep]
    runs = pl.DataFrame(
        [{"run_id": r["id"], "experiment": r["experiment"], "arm": _arm_of(r, compare),
          "seed": r["seed"], "status": r["status"], "run_key": r["run_key"], "model": r["model"],
          "device": r["device"], "seconds": _seconds(r["started_at"], r["finished_at"])}
         for r in rows],
        schema={"run_id": pl.Int64, "experiment": pl.String, "arm": pl.String,
                "seed": pl.Int64, "status": pl.String, "run_key": pl.String,
                "model": pl.String, "device": pl.String, "seconds": pl.Float64})
    names = set(runs["experiment"].to_list())
    experiments = pl.DataFrame(
        [{"experiment": name, "created_at": str(created)[:19],
          "spec_sha256": hashlib.sha256(spec.encode("utf-8")).hexdigest()[:16],
          "runs": int((runs["experiment"] == name).sum())}
         for name, created, spec in conn.execute(exps.order_by(Experiment.name))
         if name in names],
        schema={"experiment": pl.String, "created_at": pl.String, "spec_sha256": pl.String,
                "runs": pl.Int64})
    return Overview(runs=runs, experiments=experiments, timings=_timings(rows, compare),
                    datasets=_datasets(rows), database=safe_url(conn.engine.url),
                    version=__version__,
                    generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _timings(rows: list[dict[str, Any]], compare: str) -> pl.DataFrame:
    """Mean wall seconds per arm and stage over the finished runs with ``timings_json``."""
    records = []
    for r in rows:
        if r["status"] != "done" or not r["timings_json"]:
            continue
        try:
            t = json.loads(r["timings_json"])
        except ValueError:
            continue
        for stage, secs in t.items():
            if stage != "total" and isinstance(secs, int | float):
                records.append((_arm_of(r, compare), stage, float(secs)))
    frame = pl.DataFrame(records, schema={"arm": pl.String, "stage": pl.String,
                                          "seconds": pl.Float64}, orient="row")
    order = {s: i for i, s in enumerate(STAGES)}
    return (frame.group_by("arm", "stage", maintain_order=True)
            .agg(pl.col("seconds").mean(), pl.len().cast(pl.Int64).alias("runs"))
            .with_columns(pl.col("stage").replace_strict(order, default=len(STAGES),
                                                         return_dtype=pl.Int64).alias("__o"))
            .sort("arm", "__o", "stage").drop("__o"))


def _datasets(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """``dataset, split, settings, runs`` from the runs' ``[[eval]]`` sections."""
    seen: dict[tuple[str, str], tuple[set[str], set[int]]] = {}
    for r in rows:
        try:
            sections = json.loads(r["config_json"]).get("eval", [])
        except (ValueError, AttributeError):
            continue
        for sec in sections if isinstance(sections, list) else []:
            if not isinstance(sec, dict):
                continue
            key = (str(sec.get("dataset")), str(sec.get("split") or "test"))
            settings, ids = seen.setdefault(key, (set(), set()))
            settings.update(str(s) for s in sec.get("settings", []))
            ids.add(r["id"])
    order = {"mono": 0, "cross": 1, "multi": 2}
    return pl.DataFrame(
        [{"dataset": d, "split": s,
          "settings": ", ".join(sorted(sets, key=lambda x: (order.get(x, 9), x))),
          "runs": len(ids)} for (d, s), (sets, ids) in sorted(seen.items())],
        schema={"dataset": pl.String, "split": pl.String, "settings": pl.String,
                "runs": pl.Int64})
