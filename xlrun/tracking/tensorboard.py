"""``tensorboard``: TensorBoard event files, one folder per run.

``[tracking.tensorboard] log_dir`` (default ``<output_dir>/tensorboard``; a relative folder is
inside ``output_dir``) gets ``<experiment>/<run-3_hybrid_size_seed1>/`` per run: scalars
``train/loss``, ``train/learning_rate``, ``train/examples_per_s`` per logged step and
``eval/<dataset>/<split>/<setting>/<measure>`` at the last step, and the run's hyperparameters
for TensorBoard's HParams dashboard. Watch them with ``tensorboard --logdir <log_dir>``.
Writes through PyTorch's ``SummaryWriter``, which needs the ``tensorboard`` package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlrun.tracking.base import TRACKERS, EvalResult, Tracker, metric_name, slug


@dataclass(frozen=True)
class TensorBoardOptions:
    """``[tracking.tensorboard]``."""

    log_dir: str = ""
    """Where the event files go (default ``<output_dir>/tensorboard``)."""


@TRACKERS.register("tensorboard")
class TensorBoardTracker(Tracker):
    """Scalars and hyperparameters in TensorBoard event files."""

    name = "tensorboard"
    Options = TensorBoardOptions
    modules = ("tensorboard",)
    extra = "tracking-tensorboard"

    writer: Any = None

    def folder(self) -> Path:
        """This run's event folder."""
        base = Path(self.options.log_dir or "tensorboard").expanduser()
        if not base.is_absolute():
            base = self.run.output_dir / base
        return base / slug(self.run.experiment) / self.run.folder_name

    def start(self) -> None:
        """Open the writer and record the hyperparameters (the HParams session start)."""
        # deferred on purpose: TensorBoard is imported only by runs that report to it
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        self.eval_tags: list[str] = []
        self.writer = SummaryWriter(log_dir=str(self.folder()), flush_secs=10)
        _, start, _ = hparams(dict(self.run.params), {})
        self.writer.file_writer.add_summary(start)

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """One scalar per metric."""
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_eval(self, result: EvalResult, step: int) -> None:
        """The measures as scalars; their tags become the HParams dashboard's metrics."""
        metrics = {metric_name(result, s, m): v for (s, m), v in result.setting_means().items()}
        self.log_metrics(metrics, step)
        self.eval_tags += list(metrics)

    def finish(self, status: str) -> None:
        """The HParams experiment (naming the measures as its metrics), the session's end
        when the run is done, and the file closed."""
        # deferred on purpose (see start)
        from torch.utils.tensorboard.summary import hparams

        experiment, _, end = hparams(dict(self.run.params), dict.fromkeys(self.eval_tags, 0.0))
        self.writer.file_writer.add_summary(experiment)
        if status == "done":
            self.writer.file_writer.add_summary(end)
        self.writer.close()

