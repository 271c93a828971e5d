"""One run, start to finish: load → (cluster) → train → evaluate → store.

:func:`execute_run` is the single code path for every executor (local, worker, SLURM job)
and for ``xlrun evaluate``. It never prints; it reports through a
:class:`~xlrun.execute.progress.Progress` and writes through :mod:`xlrun.db.store`.
Each (run, dataset, split) result set is written in one transaction after it is complete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from xlrun.db import store
from xlrun.errors import DatabaseUnavailable, XlrunError
from xlrun.execute.progress import NullProgress, Progress
from xlrun.spec.schema import (
    EvalSection,
    ModelSection,
    RunConfig,
    SamplingSection,
    TrainDataSection,
    TrainSection,
)


@dataclass(frozen=True)
class RunOutcome:
    """How one execution ended."""

    run_id: int
    status: str  # done | failed | queued (interrupted)
    seconds: float
    error: str | None = None


def config_from_json(text: str) -> RunConfig:
    """Rebuild a :class:`RunConfig` from ``runs.config_json``."""
    d = json.loads(text)
    return RunConfig(
        model=ModelSection(**d["model"]),
        train_data=TrainDataSection(**d["train_data"]),
        sampling=SamplingSection(**d["sampling"]),
        train=TrainSection(**d["train"]),
        eval=[EvalSection(**e) for e in d["eval"]],
    )


def output_dir_of(spec_toml: str) -> Path:
    """``experiment.output_dir`` of a stored spec (default ``xlrun-out``), ``${VAR}`` expanded."""
    import tomllib

    from xlrun.spec.load import interpolate

    raw = tomllib.loads(spec_toml).get("experiment", {}).get("output_dir", "xlrun-out")
    return Path(interpolate(raw, "experiment.output_dir"))


def run_dir(output_dir: str | Path, experiment: str, run_key: str) -> Path:
    """Where a run keeps checkpoints and caches."""
    return Path(output_dir) / experiment / run_key


def load_encoder(model: ModelSection, device: str, cache_dir: Path):  # noqa: ANN201
    """The run's encoder; ``quickstart:*`` names build the tiny offline model first."""
    from transformers.utils import logging as hf_logging

    from xlrun.train.encoder import Encoder, EncoderConfig

    hf_logging.disable_progress_bar()
    name = model.name
    if name.startswith("quickstart:"):
        from xlrun.quickstart.tiny_model import resolve_model_name

        name = resolve_model_name(name, cache_dir)
    cfg = EncoderConfig(name=name, pooling=model.pooling, query_prefix=model.query_prefix,
                        passage_prefix=model.passage_prefix,
                        query_max_length=model.query_max_length,
                        passage_max_length=model.passage_max_length)
    return Encoder.load(cfg, device)


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


def _train(engine: Engine, run_id: int, config: RunConfig, encoder, workdir: Path,  # noqa: ANN001
           progress: Progress) -> dict[str, Any]:
    from xlrun.data.sources import load_train_corpus
    from xlrun.train.trainer import TrainHooks, train

    corpus = load_train_corpus(config.train_data)
    clusters = None
    if config.sampling.language_sampling == "clustered":
        clusters = _clusters(engine, run_id, config, corpus, encoder, workdir)
    log_rows: list[dict[str, Any]] = []
    batch_rows: list[dict[str, Any]] = []

    def flush() -> None:
        if log_rows:
            store.write_train_log(engine, run_id, log_rows)
            log_rows.clear()
        if batch_rows:
            store.write_batch_languages(engine, run_id, batch_rows)
            batch_rows.clear()

    def on_log(step: int, loss: float, lr: float, examples_per_s: float | None) -> None:
        log_rows.append({"step": step, "loss": float(loss), "lr": float(lr),
                         "examples_per_s": examples_per_s})
        flush()

    def on_batch(batch) -> None:  # noqa: ANN001
        for (q, d), n in sorted(batch.composition().items()):
            batch_rows.append({"step": batch.step, "batch_kind": batch.kind, "query_lang": q,
                               "doc_lang": d, "pairs": int(n)})
        if len(batch_rows) >= 2000:
            flush()

    with progress.task(f"run {run_id}: training", config.train.steps) as bar:
        last = [0]

        def on_progress(step: int, total: int) -> None:
            bar.advance(step - last[0])
            last[0] = step

        hooks = TrainHooks(on_log=on_log, on_batch=on_batch, progress=on_progress,
                           checkpoint_dir=workdir / "checkpoints")
        try:
            summary = train(config, corpus, encoder, clusters, hooks)
        finally:
            flush()
    return dataclasses.asdict(summary) if dataclasses.is_dataclass(summary) else dict(summary)


def _clusters(engine: Engine, run_id: int, config: RunConfig, corpus, encoder,  # noqa: ANN001
              workdir: Path) -> list[list[str]]:
    from xlrun.langsim.cluster import clusters_for_run
    from xlrun.langsim.sources import SimilarityContext

    langs = corpus.languages
    context = SimilarityContext.from_corpus(corpus, encoder, cache_dir=workdir.parent / ".langsim",
                                            model_id=config.model.name)
    clusters, distances = clusters_for_run(config.sampling, langs, context)
    rows = distances.to_rows() if distances is not None else []
    store.write_languages(engine, run_id, clusters, rows)
    return clusters


def _evaluate(engine: Engine, run_id: int, config: RunConfig, encoder,  # noqa: ANN001
              progress: Progress) -> None:
    from xlrun.evaluate.runner import evaluate_dataset
    from xlrun.evaluate.tasks import DATASETS

    for i, cfg in enumerate(config.eval):
        loader = DATASETS.get(cfg.dataset, f"eval[{i}].dataset")
        data = loader(cfg)
        label = f"run {run_id}: {cfg.dataset}"
        with progress.task(label, None) as bar:
            def on_progress(stage: str, done: int, total: int, bar=bar, label=label) -> None:
                bar.update(done, total, f"{label}: {stage}")

            out = evaluate_dataset(encoder, data, cfg, progress=on_progress)
        store.write_results(engine, run_id, cfg.dataset, cfg.split,
                            {"query_results": out.query_results, "retrieved": out.retrieved,
                             "run_metrics": out.run_metrics})


def execute_run(engine: Engine, run_id: int, *, worker: str, device: str = "auto",
                progress: Progress | None = None, heartbeat_s: float = 30.0) -> RunOutcome:
    """Train and evaluate a claimed run, store its results, and mark it done or failed.

    A KeyboardInterrupt puts the run back to ``queued`` and is re-raised. A lost database
    raises :class:`DatabaseUnavailable` after trying to requeue the run.
    """
    from xlrun.train.encoder import resolve_device

    progress = progress or NullProgress()
    t0 = time.perf_counter()
    row = store.get_run(engine, run_id)
    config = config_from_json(row["config_json"])
    spec_out = output_dir_of(row["spec_toml"])
    workdir = run_dir(spec_out, row["experiment"], row["run_key"])
    try:
        with _Heartbeat(engine, run_id, worker, heartbeat_s):
            dev = str(resolve_device(device))
            store.set_run_device(engine, run_id, dev)
            encoder = load_encoder(config.model, dev, Path(spec_out) / ".models")
            if config.train.steps > 0:
                _train(engine, run_id, config, encoder, workdir, progress)
            _evaluate(engine, run_id, config, encoder, progress)
        store.finish_run(engine, run_id, "done", worker=worker)
        return RunOutcome(run_id, "done", time.perf_counter() - t0)
    except KeyboardInterrupt:
        store.finish_run(engine, run_id, "queued", error="interrupted", worker=worker)
        raise
    except OperationalError as e:
        msg = f"database error during run {run_id}: {str(e.orig or e).strip().splitlines()[0]}"
        # the database may be gone for good; then the queue reclaims the run later
        with contextlib.suppress(Exception):
            store.finish_run(engine, run_id, "queued", error=msg, worker=worker)
        raise DatabaseUnavailable(msg + " (the run goes back to the queue)") from e
    except Exception as e:  # noqa: BLE001 - a failed run must not stop the others
        if isinstance(e, XlrunError):
            msg = f"{type(e).__name__}: {e}"
        else:
            msg = "".join(traceback.format_exception(e)[-6:])
        store.finish_run(engine, run_id, "failed", error=msg, worker=worker)
        return RunOutcome(run_id, "failed", time.perf_counter() - t0, msg)
