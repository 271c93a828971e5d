"""What every process that works on a stored run starts from: its config, its folders and how
it ended.

The local executor, a worker, a SLURM job and each ``torchrun`` rank of a multi-GPU run all
read a run the same way (:meth:`RunContext.load`). Light on purpose: executors import this
without the training stack.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.spec.env import allowed_names, interpolate
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
    timings: dict[str, Any] | None = None


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
    doc = tomllib.loads(spec_toml)
    raw = doc.get("experiment", {}).get("output_dir", "xlrun-out")
    return Path(interpolate(raw, "experiment.output_dir", allowed_names(doc.get("env"))))


def run_dir(output_dir: str | Path, experiment: str, run_key: str) -> Path:
    """Where a run keeps checkpoints and caches."""
    return Path(output_dir) / experiment / run_key


@dataclass(frozen=True)
class RunContext:
    """A stored run as a process executing it sees it.

    Attributes:
        run_id: ``runs.id``.
        config: the resolved config.
        output_dir: the experiment's ``output_dir`` (the one stored at submit time, else the
            stored spec's).
        workdir: the run's own folder (checkpoints, saved model, caches).
        experiment: the experiment's name.
        run_key: the run's key.
        spec_toml: the experiment's stored spec (its latest submission).
    """

    run_id: int
    config: RunConfig
    output_dir: Path
    workdir: Path
    experiment: str = ""
    run_key: str = ""
    spec_toml: str = ""

    @classmethod
    def load(cls, engine: Engine, run_id: int) -> RunContext:
        """Read run ``run_id`` from the database."""
        row = store.get_run(engine, run_id)
        stored = json.loads(row["config_json"]).get("output_dir")
        out = Path(stored) if stored else output_dir_of(row["spec_toml"])
        return cls(run_id, config_from_json(row["config_json"]), out,
                   run_dir(out, row["experiment"], row["run_key"]), row["experiment"],
                   row["run_key"], row["spec_toml"] or "")

    @property
    def models_dir(self) -> Path:
        """Where built models (``quickstart:*``) are kept, shared by the experiment's runs."""
        return self.output_dir / ".models"
