"""The trainer's listener seam (``TrainHooks.listeners``): every listener hears the start
(with the step a resume starts from), each logged step exactly as ``on_log`` gets it, and the
end with the run's summary."""

from __future__ import annotations

from xlrun.spec.schema import (
    ModelSection,
    RunConfig,
    SamplingSection,
    TrainDataSection,
    TrainSection,
)
from xlrun.train.trainer import TrainHooks, TrainSummary, train


def run_config(**train_kw) -> RunConfig:
    train_kw = dict(batch_size=6, lr=1e-3, warmup_ratio=0.2, seed=3) | train_kw
    return RunConfig(model=ModelSection(name="tiny"), train_data=TrainDataSection(),
                     sampling=SamplingSection(language_sampling="uniform"),
                     train=TrainSection(**train_kw), eval=[])


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_begin(self, step: int, total: int) -> None:
        self.events.append(("begin", step, total))

    def on_log(self, step: int, loss: float, lr: float, examples_per_s: float) -> None:
        self.events.append(("log", step, loss, lr, examples_per_s))

    def on_train_end(self, summary: TrainSummary) -> None:
        self.events.append(("end", summary))


def test_listeners_hear_begin_every_logged_step_and_end(toy_corpus, make_encoder, tmp_path):
    logs: list[tuple] = []
    a, b = Listener(), Listener()
    done: list[int] = []
    cfg = run_config(steps=6, log_every=2, checkpoint_every=2)
    hooks = TrainHooks(on_log=lambda *x: logs.append(x), listeners=[a, b],
                       checkpoint_dir=tmp_path, progress=lambda s, n: done.append(s),
                       should_stop=lambda: len(done) >= 4)
    part = train(cfg, toy_corpus, make_encoder(seed=0), None, hooks)
    assert part.steps == 4
    assert a.events == b.events
    assert a.events[0] == ("begin", 0, 6)
    assert a.events[1:-1] == [("log", *x) for x in logs]
    assert [e[1] for e in a.events[1:-1]] == [2, 4]
    assert a.events[-1] == ("end", part)

    again = Listener()
    rest = train(cfg, toy_corpus, make_encoder(seed=0),
                 None, TrainHooks(listeners=[again], checkpoint_dir=tmp_path))
    assert again.events[0] == ("begin", 4, 6)  # resumed from the checkpoint at step 4
    assert [e[1] for e in again.events[1:-1]] == [6] and again.events[-1] == ("end", rest)
