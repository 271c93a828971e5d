"""One run, start to finish: load → (cluster) → train → evaluate → store.

:func:`execute_run` is the single code path for every executor (local, worker, SLURM job)
and for ``xlrun evaluate``. It never prints; it reports through a
:class:`~xlrun.execute.progress.Progress` and writes through :mod:`xlrun.db.store`.
Each (run, dataset, split) result set is written in one transaction after it is complete.

The seconds spent in each of :data:`STAGES` are stored with the run (``runs.timings_json``,
shown by ``xlrun show``). With a :class:`~xlrun.execute.cache.WarmCache` (workers and the
local executor keep one per process), runs that share a model and data reuse the loaded
tokenizer and weights (restored to the loaded state), tokenisations, corpora and evaluation
data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from xlrun.data.train_sources import load_train_corpus
from xlrun.data.types import TrainCorpus
from xlrun.db import store
from xlrun.db.run_results import train_log_rows
from xlrun.errors import DatabaseUnavailable, XlrunError
from xlrun.evaluate.runner import evaluate_dataset
from xlrun.evaluate.tasks import DATASETS
from xlrun.execute.cache import WarmCache
from xlrun.execute.distributed import launch
from xlrun.execute.progress import NullProgress, Progress, ProgressTask
from xlrun.execute.run_context import RunContext, RunOutcome
from xlrun.execute.tracking import eval_result, model_revision, open_tracking, replay_train_log
from xlrun.execute.training import load_encoder, train_recorded
from xlrun.files import disk_full, explain_write_error
from xlrun.langsim.cluster import clusters_for_run
from xlrun.langsim.embedding import SimilarityContext
from xlrun.spec.schema import RunConfig
from xlrun.tracking import TrackingSession
from xlrun.train.encoder import Encoder, resolve_device

__all__ = ["STAGES", "ClaimLost", "RunOutcome", "StageTimer", "execute_run"]

STAGES: tuple[str, ...] = ("load", "data", "clustering", "train", "encode", "search",
                           "metrics", "write")
"""The stages a run's time is split into (plus ``other`` — claims, heartbeats, setup — and
``total``): ``load`` the encoder (or restore its weights), ``data`` read training and
evaluation data, ``clustering`` language distances and clusters, ``train`` the training loop
(with its log writes), ``encode`` queries and candidates, ``search`` the exact searches,
``metrics`` per-query metrics and aggregates, ``write`` the result sets and the final update."""


class StageTimer:
    """Seconds per stage of one run: wall clock, and this process's CPU time (which, unlike
    the wall clock, does not grow when other programs share the cores)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._t0 = time.perf_counter()
        self._c0 = time.process_time()

    def add(self, stage: str, seconds: float, cpu: float | None = None) -> None:
        """Count ``seconds`` (and ``cpu`` seconds) towards ``stage``."""
        self.seconds[stage] = self.seconds.get(stage, 0.0) + float(seconds)
        if cpu is not None:
            self.cpu[stage] = self.cpu.get(stage, 0.0) + float(cpu)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed block as ``name``."""
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0, time.process_time() - c0)

    def summary(self) -> dict[str, Any]:
        """Every stage of :data:`STAGES` (0 when not reached), ``other`` and ``total`` in
        wall-clock seconds, rounded to milliseconds, and under ``cpu`` the CPU seconds of the
        stages timed as a block (and ``total``)."""
        total = time.perf_counter() - self._t0
        out: dict[str, Any] = {k: round(self.seconds.get(k, 0.0), 3) for k in STAGES}
        out["other"] = round(max(0.0, total - sum(self.seconds.get(k, 0.0) for k in STAGES)), 3)
        out["total"] = round(total, 3)
        out["cpu"] = {**{k: round(v, 3) for k, v in self.cpu.items()},
                      "total": round(time.process_time() - self._c0, 3)}
        return out


class _Heartbeat:
    """Refreshes the run's claim every ``interval`` seconds in a background thread."""

    def __init__(self, engine: Engine, run_id: int, worker: str, interval: float) -> None:
        self._stop = threading.Event()
        self.lost = False
        self._args = (engine, run_id, worker)
        self._interval = interval
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"heartbeat-{run_id}")

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not store.heartbeat(*self._args):
                    self.lost = True
            except Exception:  # noqa: BLE001 - a missed beat is retried next interval
                pass

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class ClaimLost(XlrunError):
    """Another worker reclaimed this run (our heartbeats stopped reaching the database)."""


def _train(engine: Engine, ctx: RunContext, encoder: Encoder, progress: Progress,
           heartbeat: _Heartbeat, db_url: str, timer: StageTimer,
           cache: WarmCache | None, tracking: TrackingSession) -> Encoder:
    config, run_id = ctx.config, ctx.run_id
    with timer.stage("data"):
        corpus = (cache.train_corpus(config.train_data, load_train_corpus) if cache is not None
                  else load_train_corpus(config.train_data))
    clusters = None
    if config.sampling.language_sampling == "clustered":
        with timer.stage("clustering"):
            clusters = _clusters(engine, ctx, corpus, encoder)
    if config.train.gpus > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        model_dir = launch(db_url, run_id, config.train.gpus, ctx.workdir / "model")
        replay_train_log(tracking, train_log_rows(engine, run_id))  # logged by the ranks
        return load_encoder(dataclasses.replace(config.model, name=str(model_dir)),
                            str(encoder.device), ctx.workdir / ".models")
    label = f"run {run_id}: training"
    with timer.stage("train"), progress.task(label, config.train.steps) as bar:
        shown = {"step": 0, "total": config.train.steps}

        def on_progress(step: int, total: int) -> None:
            shown.update(step=step, total=total)
            bar.update(step, total)

        def on_loss(loss: float) -> None:  # the running loss: the last logged window's mean
            bar.update(shown["step"], shown["total"], f"{label} (loss {loss:.4f})")

        summary = train_recorded(engine, run_id, ctx.workdir, config, corpus, encoder, clusters,
                                 stop=lambda: heartbeat.lost, on_progress=on_progress,
                                 listeners=[tracking], on_loss=on_loss)
    if summary.resumed_from:
        progress.log(f"run {run_id}: resumed from the checkpoint at step {summary.resumed_from}")
    if heartbeat.lost:
        raise ClaimLost(f"run {run_id} was reclaimed by another worker; stopped after a checkpoint")
    if config.train.save_model:
        encoder.save(ctx.workdir / "model")
    return encoder


def _clusters(engine: Engine, ctx: RunContext, corpus: TrainCorpus,
              encoder: Encoder) -> list[list[str]]:
    context = SimilarityContext.from_corpus(corpus, encoder,
                                            cache_dir=ctx.workdir.parent / ".langsim",
                                            model_id=ctx.config.model.name)
    clusters, distances = clusters_for_run(ctx.config.sampling, corpus.languages, context)
    rows = distances.to_rows() if distances is not None else []
    store.write_languages(engine, ctx.run_id, clusters, rows)
    return clusters


def _evaluate(engine: Engine, run_id: int, config: RunConfig, encoder: Encoder,
              progress: Progress, timer: StageTimer, cache: WarmCache | None,
              tracking: TrackingSession) -> None:
    for i, cfg in enumerate(config.eval):
        dataset = DATASETS.get(cfg.dataset, f"eval[{i}].dataset")
        with timer.stage("data"):
            data = cache.eval_data(cfg, dataset.load) if cache is not None else dataset.load(cfg)
        label = f"run {run_id}: {cfg.dataset}"
        with progress.task(label, None) as bar:
            def on_progress(stage: str, done: int, total: int, bar: ProgressTask = bar,
                            label: str = label) -> None:
                bar.update(done, total, f"{label}: {stage}")

            out = evaluate_dataset(encoder, data, cfg, progress=on_progress)
        for stage in ("encode", "search", "metrics"):
            timer.add(stage, out.info.get(f"{stage}_s", 0.0), out.info.get(f"{stage}_cpu_s"))
        with timer.stage("write"):
            store.write_results(engine, run_id, cfg.dataset, cfg.split, out.tables())
        tracking.log_eval(eval_result(cfg.dataset, cfg.split, out.run_metrics, out.info,
                                      data.meta))


def execute_run(engine: Engine, run_id: int, *, worker: str, device: str = "auto",
                progress: Progress | None = None, heartbeat_s: float = 30.0,
                cache: WarmCache | None = None) -> RunOutcome:
    """Train and evaluate a claimed run, store its results and stage timings, and mark it
    done or failed.

    ``cache``: a :class:`~xlrun.execute.cache.WarmCache` shared with the runs before and
    after this one in the same process (None: load everything afresh).

    A KeyboardInterrupt puts the run back to ``queued`` and is re-raised. A lost database
    raises :class:`DatabaseUnavailable` after trying to requeue the run.
    """
    progress = progress or NullProgress()
    t0 = time.perf_counter()
    timer = StageTimer()
    ctx = RunContext.load(engine, run_id)
    config = ctx.config
    try:
        with _Heartbeat(engine, run_id, worker, heartbeat_s) as beat:
            dev = str(resolve_device(device))
            store.set_run_device(engine, run_id, dev)
            with timer.stage("load"):
                encoder = (cache.encoder(config.model, dev, ctx.models_dir, load_encoder)
                           if cache is not None
                           else load_encoder(config.model, dev, ctx.models_dir))
            store.set_run_model_info(engine, run_id, encoder.describe())
            warn = None if isinstance(progress, NullProgress) else progress.log
            with open_tracking(ctx, warn, model_revision(encoder)).closing() as tracking:
                if config.train.steps > 0:
                    encoder = _train(engine, ctx, encoder, progress, beat,
                                     engine.url.render_as_string(hide_password=False), timer,
                                     cache, tracking)
                _evaluate(engine, run_id, config, encoder, progress, timer, cache, tracking)
        with timer.stage("write"):
            timings = timer.summary()
            finished = store.finish_run(engine, run_id, "done", worker=worker, timings=timings)
        if not finished:
            # reclaimed while we evaluated: the other worker's (identical) result set stands
            raise ClaimLost(f"run {run_id} was reclaimed by another worker before it finished")
        return RunOutcome(run_id, "done", time.perf_counter() - t0, timings=timings)
    except KeyboardInterrupt:
        store.finish_run(engine, run_id, "queued", error="interrupted", worker=worker)
        raise
    except ClaimLost as e:
        return RunOutcome(run_id, "queued", time.perf_counter() - t0, str(e))
    except OperationalError as e:
        msg = f"database error during run {run_id}: {str(e.orig or e).strip().splitlines()[0]}"
        # the database may be gone for good; then the queue reclaims the run later
        with contextlib.suppress(Exception):
            store.finish_run(engine, run_id, "queued", error=msg, worker=worker)
        raise DatabaseUnavailable(msg + " (the run goes back to the queue)") from e
    except Exception as e:  # noqa: BLE001 - a failed run must not stop the others
        if isinstance(e, XlrunError):
            msg = f"{type(e).__name__}: {e}"
        elif disk_full(e):  # not "enforce fail at inline_container.cc" or a traceback
            msg = f"WriteFailed: {explain_write_error(e, ctx.output_dir)}"
        else:
            msg = "".join(traceback.format_exception(e)[-6:])
        timings = timer.summary()
        store.finish_run(engine, run_id, "failed", error=msg, worker=worker, timings=timings)
        return RunOutcome(run_id, "failed", time.perf_counter() - t0, msg, timings=timings)
