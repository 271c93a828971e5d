"""The session between a run and its trackers: events in order, a tracker that raises is
switched off with one warning (secrets masked), a tracker that hangs costs at most the close
timeout, and none of it reaches the caller."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

from xlrun.tracking.base import EvalResult, TrackedRun, Tracker
from xlrun.tracking.session import TrackingSession

RUN = TrackedRun(experiment="x", run_id=5, run_key="k" * 64, arm="hybrid/size", seed=1,
                 model="m", steps=30, output_dir=Path("/tmp"), params={"train.lr": 2e-5})
ROWS = (
    {"setting": "mono", "query_lang": "all", "doc_lang": "all", "metric": "ndcg@10", "value": 0.5},
    {"setting": "mono", "query_lang": "de", "doc_lang": "de", "metric": "ndcg@10", "value": 0.4},
)


class Recorder(Tracker):
    name = "recorder"

    def __init__(self, options: object = None, run: TrackedRun = RUN) -> None:
        super().__init__(options, run)
        self.calls: list[tuple] = []

    def start(self) -> None:
        self.calls.append(("start",))

    def log_metrics(self, metrics, step) -> None:
        self.calls.append(("metrics", step, dict(metrics)))

    def finish(self, status: str) -> None:
        self.calls.append(("finish", status))


class Broken(Recorder):
    name = "broken"

    def log_metrics(self, metrics, step) -> None:
        raise ConnectionError("could not reach http://me:hunter2@tracking.example/api\nmore")


class Hanging(Recorder):
    name = "hanging"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def start(self) -> None:
        self.release.wait(30)


def test_events_reach_every_tracker_in_order() -> None:
    rec = Recorder()
    session = TrackingSession([rec], RUN)
    session.on_train_begin(0, 30)
    session.on_log(10, 1.5, 1e-5, 100.0)
    session.on_log(20, 1.2, 5e-6, None)
    session.on_train_end(SimpleNamespace(steps=30, seconds=3.0, examples_per_s=90.0))
    session.log_eval(EvalResult("xquad-r", "test", ROWS))
    session.close()
    assert rec.calls == [
        ("start",),
        ("metrics", 10, {"train/loss": 1.5, "train/learning_rate": 1e-5,
                         "train/examples_per_s": 100.0}),
        ("metrics", 20, {"train/loss": 1.2, "train/learning_rate": 5e-6}),
        ("metrics", 30, {"train/seconds": 3.0, "train/mean_examples_per_s": 90.0}),
        ("metrics", 30, {"eval/xquad-r/test/mono/ndcg_at_10": 0.5}),
        ("finish", "done"),
    ]
    assert session.warnings == []


def test_a_tracker_that_raises_is_switched_off_with_one_masked_warning() -> None:
    rec, broken = Recorder(), Broken()
    said: list[str] = []
    session = TrackingSession([broken, rec], RUN, warn=said.append)
    for step in (10, 20, 30):
        session.on_log(step, 1.0, 1e-5, None)  # never raises here
    session.close("done")
    assert [c[0] for c in rec.calls] == ["start", "metrics", "metrics", "metrics", "finish"]
    assert [c[0] for c in broken.calls] == ["start"]  # off after its first error
    (warning,) = said
    assert "broken failed for run 5: hybrid/size seed 1" in warning
    assert "ConnectionError" in warning and "switched off" in warning
    assert "hunter2" not in warning and "me:***@tracking.example" in warning
    assert "more" not in warning  # one line


def test_a_hanging_tracker_costs_at_most_the_close_timeout() -> None:
    hanging = Hanging()
    said: list[str] = []
    session = TrackingSession([hanging], RUN, warn=said.append, close_timeout_s=0.5)
    t0 = time.perf_counter()
    for step in range(1, 1001):  # the training loop is never held up
        session.on_log(step, 1.0, 1e-5, None)
    assert time.perf_counter() - t0 < 0.5
    session.close("done")
    assert time.perf_counter() - t0 < 3.0
    assert len(said) == 1 and "did not finish within 0.5 s" in said[0]
    hanging.release.set()


def test_closing_marks_failed_and_killed_runs_and_reraises() -> None:
    for exc, status in ((RuntimeError("boom"), "failed"), (KeyboardInterrupt(), "killed")):
        rec = Recorder()
        try:
            with TrackingSession([rec], RUN).closing():
                raise exc
        except (RuntimeError, KeyboardInterrupt) as e:
            assert e is exc
        assert rec.calls[-1] == ("finish", status)


def test_without_trackers_nothing_runs() -> None:
    session = TrackingSession([], RUN)
    session.on_log(1, 1.0, 1.0, 1.0)
    session.close()
    assert session.warnings == []
