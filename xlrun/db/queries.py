"""Read-side queries behind ``xlrun status``, ``xlrun show`` and the Python API's ``experiments()``
and ``runs()`` (SQLAlchemy Core)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, select

from xlrun.db.models import Experiment, LanguageCluster, Run, RunMetric, TrainLog
from xlrun.db.store import MODEL_INFO_KEY, get_run
from xlrun.errors import UsageError

METRIC_NAMES = {"map": "map", "ndcg@10": "ndcg@10", "mrr@10": "mrr@10", "recall@100": "recall@100"}


@dataclass(frozen=True)
class Overview:
    """A printable table."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    footer: str = ""


@dataclass(frozen=True)
class RunDetails:
    """Everything ``xlrun show`` prints."""

    run: dict[str, Any]
    training: dict[str, Any] | None
    clusters: list[list[str]]
    metric_columns: list[str] = field(default_factory=list)
    metrics: list[list[Any]] = field(default_factory=list)
    model_rows: list[list[Any]] = field(default_factory=list)
    """``[setting, value, from]`` rows of how the model was loaded (empty before it was)."""
    model_format: str = ""


def _aware(ts: datetime | None) -> datetime | None:
    if ts is not None and ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts


def _duration(start: datetime | None, end: datetime | None, status: str) -> str:
    start, end = _aware(start), _aware(end)
    if start is None:
        return "-"
    if end is None:
        if status != "running":
            return "-"
        end = datetime.now(UTC)
    secs = (end - start).total_seconds()
    return f"{secs:.0f}s" if secs < 120 else f"{secs / 60:.1f}m"


def run_overview(engine: Engine, experiment: str | None = None,
                 metric: str | None = None, stale_after_s: float = 300.0) -> Overview:
    """Runs with model, arm columns, duration, worker, dataset and the main metric per
    setting.

    The metric columns are the overall means (query_lang = doc_lang = 'all') of the first
    evaluated dataset (the ``dataset`` column; ``(+N)``: N more datasets, see ``xlrun show``),
    one column per setting.
    """
    run_t, exp_t, m_t = Run.__table__, Experiment.__table__, RunMetric.__table__
    stmt = (select(run_t.c.id, exp_t.c.name, run_t.c.status, run_t.c.model, run_t.c.sampler,
                   run_t.c.language_sampling, run_t.c.clustering, run_t.c.seed,
                   run_t.c.started_at, run_t.c.finished_at, run_t.c.worker,
                   run_t.c.heartbeat_at, exp_t.c.spec_toml)
            .join(exp_t, exp_t.c.id == run_t.c.experiment_id).order_by(run_t.c.id))
    if experiment:
        stmt = stmt.where(exp_t.c.name == experiment)
    with engine.connect() as conn:
        if experiment and conn.execute(select(exp_t.c.id).where(exp_t.c.name == experiment)).first() is None:
            names = [r[0] for r in conn.execute(select(exp_t.c.name).order_by(exp_t.c.name))]
            raise UsageError(f"no experiment named {experiment!r}; known: {', '.join(names) or 'none'}")
        runs = conn.execute(stmt).all()
        metric = metric or _main_metric(runs[0].spec_toml if runs else "")
        if metric not in METRIC_NAMES:
            metric = _measure_name(metric)
        ids = [r.id for r in runs]
        mrows = conn.execute(
            select(m_t.c.run_id, m_t.c.dataset, m_t.c.setting, m_t.c.value)
            .where(m_t.c.run_id.in_(ids), m_t.c.metric == metric,
                   and_(m_t.c.query_lang == "all", m_t.c.doc_lang == "all"))).all() if ids else []
    first_ds: dict[int, str] = {}
    all_ds: dict[int, set[str]] = {}
    values: dict[tuple[int, str], float] = {}
    settings: list[str] = []
    for r in mrows:
        first_ds.setdefault(r.run_id, r.dataset)
        all_ds.setdefault(r.run_id, set()).add(r.dataset)
    for r in mrows:
        if r.dataset == first_ds[r.run_id]:
            values[(r.run_id, r.setting)] = r.value
            if r.setting not in settings:
                settings.append(r.setting)
    settings.sort(key=lambda s: ["mono", "cross", "multi"].index(s) if s in ("mono", "cross", "multi") else 9)
    now = datetime.now(UTC)
    rows = []
    stale = 0
    for r in runs:
        hb = _aware(r.heartbeat_at)
        is_stale = r.status == "running" and hb is not None and (now - hb).total_seconds() > stale_after_s
        stale += is_stale
        status = r.status + (" (stale)" if is_stale else "")
        more = len(all_ds.get(r.id, ())) - 1
        dataset = first_ds.get(r.id, "-") + (f" (+{more})" if more > 0 else "")
        rows.append([r.id, r.name, status, short_model(r.model), r.sampler,
                     r.language_sampling or "-", r.clustering or "-", missing(r.seed),
                     _duration(r.started_at, r.finished_at, r.status),
                     r.worker if r.status == "running" else "", dataset,
                     *[f"{values[(r.id, s)]:.4f}" if (r.id, s) in values else "" for s in settings]])
    datasets = sorted(set(first_ds.values()))
    title = f"runs ({metric} on {', '.join(datasets)} per setting)" if datasets else "runs"
    footer = f"{stale} running run(s) have not sent a heartbeat for {stale_after_s:.0f}s" if stale else ""
    return Overview(title, ["id", "experiment", "status", "model", "sampler",
                            "language_sampling", "clustering", "seed", "duration", "worker",
                            "dataset", *[f"{metric} {s}" for s in settings]], rows, footer)


MISSING = "-"
"""How ``xlrun status`` and ``xlrun show`` print a value a run does not have."""

MODEL_WIDTH = 32
"""Characters of a model name ``xlrun status`` shows (longer ones keep their end)."""


def missing(value: Any) -> Any:
    """``value``, or :data:`MISSING` for ``None``."""
    return MISSING if value is None else value


def short_model(name: str | None) -> str:
    """A model name for a table column: at most :data:`MODEL_WIDTH` characters, keeping the
    end (a local folder's last components, a hub id's name)."""
    if not name:
        return MISSING
    return name if len(name) <= MODEL_WIDTH else "…" + name[-(MODEL_WIDTH - 1):]


def _measure_name(metric: str) -> str:
    """The canonical ir_measures name of ``metric`` (``run_metrics`` holds the means of the
    measures runs stored), or a UsageError listing what is allowed."""
    from xlrun.evaluate.measures import MeasureError, measures_of

    try:
        found = measures_of(metric)
    except MeasureError as e:
        raise UsageError(f"unknown metric {metric!r}; allowed: {', '.join(METRIC_NAMES)} or a "
                         f"measure the runs stored by its ir_measures name ({e})") from None
    if len(found) != 1:
        raise UsageError(f"--metric {metric!r} names {len(found)} measures; name one")
    return found[0].name


def _main_metric(spec_toml: str) -> str:
    try:
        return tomllib.loads(spec_toml).get("experiment", {}).get("main_metric", "map")
    except tomllib.TOMLDecodeError:
        return "map"


def run_details(engine: Engine, run_id: int) -> RunDetails:
    """A run's row, training summary, clusters and overall metrics."""
    run = get_run(engine, run_id)
    log_t, c_t, m_t = TrainLog.__table__, LanguageCluster.__table__, RunMetric.__table__
    with engine.connect() as conn:
        logs = conn.execute(select(log_t.c.step, log_t.c.loss, log_t.c.examples_per_s)
                            .where(log_t.c.run_id == run_id).order_by(log_t.c.step)).all()
        clusters_rows = conn.execute(select(c_t.c.lang, c_t.c.cluster)
                                     .where(c_t.c.run_id == run_id)
                                     .order_by(c_t.c.cluster, c_t.c.lang)).all()
        metrics = conn.execute(
            select(m_t.c.dataset, m_t.c.split, m_t.c.setting, m_t.c.metric, m_t.c.value)
            .where(m_t.c.run_id == run_id, m_t.c.query_lang == "all", m_t.c.doc_lang == "all")
            .order_by(m_t.c.dataset, m_t.c.split, m_t.c.setting, m_t.c.metric)).all()
    training = None
    if logs:
        eps = [r.examples_per_s for r in logs if r.examples_per_s]
        training = {"steps": logs[-1].step, "first_loss": logs[0].loss, "last_loss": logs[-1].loss,
                    "examples_per_s": sum(eps) / len(eps) if eps else None,
                    "rows": len(logs), "first_step": logs[0].step,
                    "losses": [float(r.loss) for r in logs]}
    clusters: dict[int, list[str]] = {}
    for r in clusters_rows:
        clusters.setdefault(r.cluster, []).append(r.lang)
    names = sorted({r.metric for r in metrics})
    table: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in metrics:
        table.setdefault((r.dataset, r.split, r.setting), {})[r.metric] = r.value
    rows = [[d, sp, st, *[f"{v[m]:.4f}" if m in v else "" for m in names]]
            for (d, sp, st), v in table.items()]
    model_format, model_rows = _model_rows(run["config_json"])
    return RunDetails(run=run, training=training, clusters=list(clusters.values()),
                      metric_columns=["dataset", "split", "setting", *names], metrics=rows,
                      model_rows=model_rows, model_format=model_format)


def _model_rows(config_json: str) -> tuple[str, list[list[Any]]]:
    """How a run's model was loaded (``runs.config_json`` → ``model_resolved``) as rows."""
    info = json.loads(config_json).get(MODEL_INFO_KEY)
    if not isinstance(info, dict):
        return "", []
    order = ["pooling", "include_prompt", "query_prefix", "passage_prefix", "query_max_length",
             "passage_max_length", "normalize"]
    settings = info.get("settings", {})
    rows: list[list[Any]] = [
        [k, json.dumps(settings[k]["value"], ensure_ascii=False), settings[k]["from"]]
        for k in sorted(settings, key=lambda k: order.index(k) if k in order else len(order))]
    for i, layer in enumerate(info.get("dense") or []):
        rows.append([f"dense[{i}]", layer, "model"])
    if info.get("format") == "sentence-transformers":
        rows.append(["lowercase", json.dumps(bool(info.get("lowercase"))), "model"])
        rows.append(["similarity", info.get("similarity", "cosine"), "model"])
    if info.get("trust_remote_code"):
        rows.append(["trust_remote_code", "true", "spec"])
    return str(info.get("format", "")), rows


EXPERIMENT_COLUMNS: tuple[str, ...] = ("experiment", "description", "created_at", "runs", "done",
                                       "running", "queued", "failed")
"""Columns of :func:`experiment_rows` (the Python API's ``experiments()``)."""

RUN_COLUMNS: tuple[str, ...] = ("run_id", "experiment", "run_key", "status", "model", "sampler",
                                "language_sampling", "clustering", "seed", "device", "host",
                                "started_at", "finished_at", "attempts", "error", "config_json")
"""Columns of :func:`run_rows` (the Python API's ``runs()``, which adds ``arm``)."""


def _description(spec_toml: str) -> str:
    try:
        return str(tomllib.loads(spec_toml).get("experiment", {}).get("description", ""))
    except tomllib.TOMLDecodeError:
        return ""


def experiment_rows(conn: Connection) -> list[tuple[Any, ...]]:
    """One row per experiment (:data:`EXPERIMENT_COLUMNS`): its name, the description of its
    spec, when it was created and how many runs it has in each status, by name."""
    exp_t, run_t = Experiment.__table__, Run.__table__
    counts: dict[int, dict[str, int]] = {}
    for exp_id, status, n in conn.execute(
            select(run_t.c.experiment_id, run_t.c.status, func.count())
            .group_by(run_t.c.experiment_id, run_t.c.status)):
        counts.setdefault(exp_id, {})[status] = int(n)
    rows = []
    for exp_id, name, spec, created in conn.execute(
            select(exp_t.c.id, exp_t.c.name, exp_t.c.spec_toml, exp_t.c.created_at)
            .order_by(exp_t.c.name)):
        c = counts.get(exp_id, {})
        rows.append((name, _description(spec or ""), created, sum(c.values()),
                     *[c.get(s, 0) for s in ("done", "running", "queued", "failed")]))
    return rows


def run_rows(conn: Connection, experiment: str | None = None) -> list[tuple[Any, ...]]:
    """One row per run (:data:`RUN_COLUMNS`), by id; only ``experiment``'s when given.

    Raises:
        UsageError: ``experiment`` does not exist (the message lists those that do).
    """
    exp_t, run_t = Experiment.__table__, Run.__table__
    stmt = (select(run_t.c.id, exp_t.c.name, run_t.c.run_key, run_t.c.status, run_t.c.model,
                   run_t.c.sampler, run_t.c.language_sampling, run_t.c.clustering,
                   run_t.c.seed, run_t.c.device, run_t.c.host, run_t.c.started_at,
                   run_t.c.finished_at, run_t.c.attempts, run_t.c.error, run_t.c.config_json)
            .join(exp_t, exp_t.c.id == run_t.c.experiment_id).order_by(run_t.c.id))
    if experiment is not None:
        if conn.execute(select(exp_t.c.id).where(exp_t.c.name == experiment)).first() is None:
            names = list(conn.execute(select(exp_t.c.name).order_by(exp_t.c.name)).scalars())
            raise UsageError(f"unknown experiment {experiment!r}; known: "
                             f"{', '.join(names) or '(none)'}")
        stmt = stmt.where(exp_t.c.name == experiment)
    return [tuple(r) for r in conn.execute(stmt)]
