"""Training a stored run, for whichever process does it: the encoder a run loads, and the
trainer's hooks that write its logs, batches and plan to the database.

:mod:`xlrun.execute.pipeline` trains here in-process; :mod:`xlrun.execute.distributed` does
the same on every ``torchrun`` rank of a multi-GPU run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from transformers.utils import logging as hf_logging

from xlrun.data.types import TrainCorpus
from xlrun.db import store
from xlrun.quickstart.tiny_model import resolve_model_name
from xlrun.spec.schema import ModelSection, RunConfig
from xlrun.train import encoder as encoders
from xlrun.train.encoder import Encoder
from xlrun.train.samplers import Batch
from xlrun.train.trainer import TrainHooks, TrainListener, TrainSummary, train


def load_encoder(model: ModelSection, device: str, cache_dir: Path) -> Encoder:
    """The run's encoder (:func:`xlrun.train.encoder.load_encoder`: the model's own
    sentence-transformers settings under the spec's); ``quickstart:*`` names build the tiny
    offline model first (into ``cache_dir``)."""
    hf_logging.disable_progress_bar()
    name = model.name
    if name.startswith("quickstart:"):
        name = resolve_model_name(name, cache_dir)
    return encoders.load_encoder(dataclasses.replace(model, name=name), device)


class TrainRecorder:
    """Builds the trainer's hooks: buffered ``train_log`` / ``batch_languages`` writes,
    a progress bar, the checkpoint folder, and a stop signal when the claim is lost."""

    def __init__(self, engine: Engine, run_id: int, workdir: Path,
                 stop: Callable[[], bool] | None = None,
                 on_loss: Callable[[float], None] | None = None) -> None:
        self.engine, self.run_id, self.workdir, self.stop = engine, run_id, workdir, stop
        self.on_loss = on_loss
        self._logs: list[dict[str, Any]] = []
        self._batches: list[dict[str, Any]] = []

    def flush(self) -> None:
        """Write what is buffered."""
        if self._logs:
            store.write_train_log(self.engine, self.run_id, self._logs)
            self._logs.clear()
        if self._batches:
            store.write_batch_languages(self.engine, self.run_id, self._batches)
            self._batches.clear()

    def on_log(self, step: int, loss: float, lr: float, examples_per_s: float | None) -> None:
        """A ``train_log`` row (written at once, with the batches before it)."""
        self._logs.append({"step": step, "loss": float(loss), "lr": float(lr),
                           "examples_per_s": examples_per_s})
        self.flush()
        if self.on_loss is not None:
            self.on_loss(float(loss))

    def on_batch(self, batch: Batch) -> None:
        """``batch_languages`` rows for one sampled batch."""
        for (q, d), n in sorted(batch.composition().items()):
            self._batches.append({"step": batch.step, "batch_kind": batch.kind,
                                  "query_lang": q, "doc_lang": d, "pairs": int(n)})
        if len(self._batches) >= 2000:
            self.flush()

    def on_plan(self, rows: list[dict[str, Any]]) -> None:
        """The sampler's plan (``sampling_plan`` rows), written at once."""
        store.write_sampling_plan(self.engine, self.run_id, rows)

    def hooks(self, on_progress: Callable[[int, int], None] | None = None,
              listeners: Sequence[TrainListener] = ()) -> TrainHooks:
        """The :class:`~xlrun.train.trainer.TrainHooks` to pass to ``train`` (``listeners``:
        e.g. the run's trackers)."""
        return TrainHooks(on_log=self.on_log, on_batch=self.on_batch, on_plan=self.on_plan,
                          progress=on_progress,
                          checkpoint_dir=self.workdir / "checkpoints", should_stop=self.stop,
                          listeners=listeners)


def train_recorded(engine: Engine, run_id: int, workdir: Path, config: RunConfig,
                   corpus: TrainCorpus, encoder: Encoder, clusters: list[list[str]] | None,
                   *, stop: Callable[[], bool] | None = None,
                   on_progress: Callable[[int, int], None] | None = None,
                   listeners: Sequence[TrainListener] = (),
                   on_loss: Callable[[float], None] | None = None) -> TrainSummary:
    """Train ``encoder`` as ``config`` says, recording logs, batches and the plan of run
    ``run_id`` and checkpointing into ``workdir`` (what is buffered is written even when
    training fails); ``listeners`` are told how training goes (the run's trackers);
    ``on_loss`` gets each logged window's mean loss (the progress bar's running loss)."""
    recorder = TrainRecorder(engine, run_id, workdir, stop=stop, on_loss=on_loss)
    try:
        return train(config, corpus, encoder, clusters, recorder.hooks(on_progress, listeners))
    finally:
        recorder.flush()
