"""The training progress bar shows the running loss: each logged window's mean, as the
trainer's ``on_log`` hook reports it (and ``train_log`` stores it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from xlrun.execute import pipeline
from xlrun.execute.training import TrainRecorder


class _Task:
    def __init__(self, seen: list[tuple[int, str | None]]) -> None:
        self.seen = seen

    def advance(self, n: int = 1) -> None:
        pass

    def update(self, completed: int, total: int | None = None,
               description: str | None = None) -> None:
        self.seen.append((completed, description))


class RecordingProgress:
    """A progress sink that keeps every update of every bar."""

    def __init__(self) -> None:
        self.bars: dict[str, list[tuple[int, str | None]]] = {}

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[_Task]:
        yield _Task(self.bars.setdefault(description, []))

    def log(self, message: str) -> None:
        pass


def test_recorder_passes_each_logged_loss_on(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    monkeypatch.setattr("xlrun.execute.training.store.write_train_log", lambda *a: None)
    losses: list[float] = []
    rec = TrainRecorder(None, 1, tmp_path, on_loss=losses.append)  # type: ignore[arg-type]
    hooks = rec.hooks()
    hooks.on_log(10, 2.5, 1e-3, 40.0)
    hooks.on_log(20, 1.25, 1e-3, 40.0)
    assert losses == [2.5, 1.25]


def test_training_bar_shows_the_running_loss(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    def fake_train(engine: Any, run_id: int, workdir: Path, config: Any, corpus: Any,
                   encoder: Any, clusters: Any, *, stop: Any, on_progress: Any,
                   listeners: Any, on_loss: Any) -> Any:
        for step in range(1, 7):  # the trainer: progress every step, a log every 3
            on_progress(step, 6)
            if step % 3 == 0:
                on_loss(1.0 / step)
        return SimpleNamespace(resumed_from=0)

    monkeypatch.setattr(pipeline, "train_recorded", fake_train)
    monkeypatch.setattr(pipeline, "load_train_corpus", lambda section: None)
    config = SimpleNamespace(train_data=None, train=SimpleNamespace(steps=6, gpus=1,
                                                                    save_model=False),
                             sampling=SimpleNamespace(language_sampling="size"))
    ctx = SimpleNamespace(config=config, run_id=7, workdir=tmp_path)
    progress = RecordingProgress()
    pipeline._train(None, ctx, None, progress, SimpleNamespace(lost=False), "sqlite://",
                    pipeline.StageTimer(), None, None)
    updates = progress.bars["run 7: training"]
    assert [u for u in updates if u[1] is not None] == [
        (3, "run 7: training (loss 0.3333)"), (6, "run 7: training (loss 0.1667)")]
    assert [u[0] for u in updates if u[1] is None] == [1, 2, 3, 4, 5, 6]
