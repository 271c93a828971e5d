"""One run's trackers, fed from a background thread that no tracker can stop the run from.

:class:`TrackingSession` is what the run path talks to: the trainer calls it as a
:class:`~xlrun.train.trainer.TrainListener` (:meth:`~TrackingSession.on_log` every logged
step), the pipeline hands it each evaluated dataset (:meth:`~TrackingSession.log_eval`) and
closes it. Each call only puts an event on a queue; one thread per session starts the
trackers and passes the events on, in order.

Why a tracker can neither fail nor block a run: the database is the record of a run (every
logged step and measure is in ``train_log`` and ``run_metrics``); a tracker mirrors it into a
dashboard. Losing a dashboard must not cost hours of training, so

* a tracker that raises is switched off for the rest of the run, with one warning that names
  the tracker and its error (secrets masked) — never silently;
* a tracker that hangs (a tracking server that does not answer) holds its own thread, not
  the training loop; closing waits at most ``[tracking] close_timeout_s`` seconds, then warns
  that the tracker's output may be incomplete, and the run goes on;
* the queue is bounded (events past :data:`MAX_QUEUED` are dropped and counted in a warning).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from xlrun.secrets import mask
from xlrun.tracking.base import EvalResult, TrackedRun, Tracker

Warn = Callable[[str], None]
MAX_QUEUED = 100_000
"""Events a session holds before it drops new ones (a logged step is one event)."""

_log = logging.getLogger("xlrun.tracking")


class TrackingSession:
    """The trackers of one run, fed in order from one background thread.

    Args:
        trackers: the run's trackers (not started yet).
        run: the run.
        warn: where warnings go (default: the ``xlrun.tracking`` logger).
        close_timeout_s: how long :meth:`close` waits for the trackers to finish.
    """

    def __init__(self, trackers: Sequence[Tracker], run: TrackedRun, warn: Warn | None = None,
                 close_timeout_s: float = 60.0) -> None:
        self.run = run
        self.trackers = list(trackers)
        self.close_timeout_s = close_timeout_s
        self.warnings: list[str] = []
        self._warn = warn
        self._failed: set[str] = set()
        self._dropped = 0
        self._closed = False
        self._queue: queue.Queue[tuple[str, tuple[Any, ...]] | None] = queue.Queue(MAX_QUEUED)
        self._thread = threading.Thread(target=self._work, daemon=True,
                                        name=f"tracking-run-{run.run_id}")
        self._put("start", ())
        self._thread.start()

    # ------------------------------------------------------------------ what the run calls
    def on_train_begin(self, step: int, total: int) -> None:
        """Training starts (at ``step`` when resumed) towards ``total`` steps."""

    def on_log(self, step: int, loss: float, lr: float, examples_per_s: float | None) -> None:
        """A logged step: ``train/loss``, ``train/learning_rate`` and
        ``train/examples_per_s``."""
        metrics = {"train/loss": float(loss), "train/learning_rate": float(lr)}
        if examples_per_s is not None:
            metrics["train/examples_per_s"] = float(examples_per_s)
        self.log_metrics(metrics, step)

    def on_train_end(self, summary: Any) -> None:
        """Training ended: its seconds and throughput (``train/seconds``,
        ``train/mean_examples_per_s``) at its last step."""
        metrics = {"train/seconds": float(summary.seconds),
                   "train/mean_examples_per_s": float(summary.examples_per_s)}
        self.log_metrics(metrics, int(summary.steps))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record ``metrics`` at ``step`` in every tracker."""
        self._put("log_metrics", (dict(metrics), int(step)))

    def log_eval(self, result: EvalResult) -> None:
        """Record a dataset's measures (at the run's last step)."""
        self._put("log_eval", (result, self.run.steps))

    def close(self, status: str = "done") -> None:
        """Finish every tracker with ``status`` (``done``, ``failed``, ``killed``) and wait
        for them, at most ``close_timeout_s`` seconds."""
        if self._closed:
            return
        self._put("finish", (status,))
        self._closed = True
        self._queue.put(None)
        self._thread.join(self.close_timeout_s)
        if self._thread.is_alive():
            busy = ", ".join(t.name for t in self.trackers if t.name not in self._failed)
            self.warn(f"tracking: {busy} did not finish within {self.close_timeout_s:g} s for "
                      f"{self.run.name}; its output may be incomplete (the run is not affected)")
        if self._dropped:
            self.warn(f"tracking: {self._dropped} events of {self.run.name} were dropped (more "
                      f"than {MAX_QUEUED} waiting); the database has every logged step")

    @contextlib.contextmanager
    def closing(self) -> Iterator[TrackingSession]:
        """Close when the block ends: ``done``, or ``killed`` on an interrupt, ``failed`` on
        any other exception (which is re-raised)."""
        try:
            yield self
        except KeyboardInterrupt:
            self.close("killed")
            raise
        except BaseException:
            self.close("failed")
            raise
        self.close("done")

    def warn(self, message: str) -> None:
        """A warning, secrets masked: to ``warn`` (or the logger) and :attr:`warnings`."""
        message = mask(message)
        self.warnings.append(message)
        if self._warn is not None:
            with contextlib.suppress(Exception):
                self._warn(message)
                return
        _log.warning(message)

    # ------------------------------------------------------------------ the thread
    def _put(self, method: str, args: tuple[Any, ...]) -> None:
        if self._closed or not self.trackers:
            return
        try:
            self._queue.put_nowait((method, args))
        except queue.Full:
            self._dropped += 1

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            method, args = item
            for tracker in self.trackers:
                if tracker.name in self._failed:
                    continue
                try:
                    getattr(tracker, method)(*args)
                except Exception as e:  # noqa: BLE001 - a tracker never stops a run
                    self._failed.add(tracker.name)
                    first = (str(e).strip().splitlines() or [""])[0][:300]
                    self.warn(f"tracking: {tracker.name} failed for {self.run.name} while "
                              f"{_DOING.get(method, method)} ({type(e).__name__}: {first}); "
                              f"it is switched off for this run, which goes on")


_DOING = {"start": "starting", "log_metrics": "logging metrics",
          "log_eval": "logging the final measures", "finish": "finishing"}
