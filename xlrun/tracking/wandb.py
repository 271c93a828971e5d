"""``wandb``: a Weights & Biases run per xlrun run, offline unless the spec says otherwise.

``[tracking.wandb]``: ``mode`` (``offline``, the default — nothing leaves the machine; upload
later with ``wandb sync <dir>/wandb/offline-run-*`` — or ``online``, which needs a W&B login,
or ``disabled``; default ``$WANDB_MODE``, else ``offline``), ``project`` (default
``$WANDB_PROJECT``, else the experiment's name), ``entity``, ``group`` (default the run's
arm, so that the seeds of an arm are one group), ``tags`` and ``dir`` (default
``output_dir``; W&B writes ``<dir>/wandb/``). The W&B run id is derived from the experiment
and the run key, so a resumed run continues its W&B run. Logged: the hyperparameters as the
run's config, the training metrics per logged step, the final measures (also in the run's
summary) and an exit code (0 when the run is done).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from xlrun.tracking.base import TRACKERS, Tracker


@dataclass(frozen=True)
class WandbOptions:
    """``[tracking.wandb]``."""

    mode: Literal["offline", "online", "disabled"] | None = None
    """``offline`` (default, unless ``$WANDB_MODE`` says otherwise), ``online``, ``disabled``."""
    project: str = ""
    entity: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    dir: str = ""
    """Where W&B writes its ``wandb/`` folder (default ``output_dir``; relative: inside it)."""


def wandb_id(experiment: str, run_key: str) -> str:
    """The W&B run id of an xlrun run: the same for every attempt of the run."""
    return "xlrun-" + hashlib.sha256(f"{experiment}\0{run_key}".encode()).hexdigest()[:16]


@TRACKERS.register("wandb")
class WandbTracker(Tracker):
    """Config, history and summary in a W&B run."""

    name = "wandb"
    Options = WandbOptions
    modules = ("wandb",)
    extra = "tracking-wandb"

    wb: Any = None

    def mode(self) -> str:
        """The W&B mode this run uses."""
        return self.options.mode or os.environ.get("WANDB_MODE") or "offline"

    def folder(self) -> Path:
        """The folder W&B writes its ``wandb/`` folder into."""
        base = Path(self.options.dir or ".").expanduser()
        return base if base.is_absolute() else self.run.output_dir / base

    def start(self) -> None:
        """``wandb.init`` with the run's config (resuming the run's W&B id)."""
        # deferred on purpose: W&B is imported only by runs that report to it
        import wandb

        r, o = self.run, self.options
        folder = self.folder()
        folder.mkdir(parents=True, exist_ok=True)
        self.wb = wandb.init(
            project=o.project or os.environ.get("WANDB_PROJECT") or r.experiment,
            entity=o.entity or None, group=o.group or r.arm, tags=list(o.tags) or None,
            name=r.name, id=wandb_id(r.experiment, r.run_key), resume="allow",
            mode=self.mode(), dir=str(folder), config=dict(r.params), reinit="create_new",
            settings=wandb.Settings(console="off", silent=True))

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """One history row at ``step``."""
        self.wb.log(dict(metrics), step=step)

    def finish(self, status: str) -> None:
        """End the W&B run (exit code 0 when done, 1 otherwise)."""
        self.wb.finish(exit_code=0 if status == "done" else 1)
