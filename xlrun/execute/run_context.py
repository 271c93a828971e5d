"""What every process that works on a stored run starts from: its config, its folders and how
it ended.

The local executor, a worker, a SLURM job and each ``torchrun`` rank of a multi-GPU run all
read a run the same way (:meth:`RunContext.load`). Light on purpose: executors import this
without the training stack.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.errors import XlrunError
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
    """How one execution ended.

    ``fault``: ``""`` for a run that ran (done, or failed for its own reasons), ``device`` for
    a device or infrastructure error (the run went back to the queue, or failed once it had
    used up its attempts), ``newer`` for a config written by a newer xlrun (left queued).
    """

    run_id: int
    status: str  # done | failed | queued (interrupted, or given back)
    seconds: float
    error: str | None = None
    timings: dict[str, Any] | None = None
    fault: str = ""


CONFIG_VERSION = 1
"""The ``runs.config_json`` layout this xlrun reads. A stored ``config_version`` above it
(written by a later xlrun whose configs mean something else) makes the run one this worker
leaves to a newer one; no ``config_version`` means 1."""


class NewerConfig(XlrunError):
    """A run's stored config was written by a newer xlrun (keys or a version this one does
    not know): a worker of this version leaves the run queued for a newer worker."""


class UnreadableConfig(XlrunError):
    """A run's stored config cannot be read (not JSON, a section missing or of the wrong
    type): the run fails with this message."""


_SECTIONS: dict[str, type] = {"model": ModelSection, "train_data": TrainDataSection,
                              "sampling": SamplingSection, "train": TrainSection,
                              "eval": EvalSection}


def _section(name: str, value: Any) -> Any:
    cls = _SECTIONS[name]
    if not isinstance(value, dict):
        raise UnreadableConfig(f"section {name!r} is {type(value).__name__}, not an object")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise NewerConfig(f"it has keys this xlrun does not know: "
                          f"{', '.join(f'{name}.{k}' for k in unknown)}")
    try:
        return cls(**value)
    except (TypeError, ValueError) as e:
        raise UnreadableConfig(f"section {name!r}: {e}") from e


def config_from_json(text: str) -> RunConfig:
    """Rebuild a :class:`RunConfig` from ``runs.config_json``.

    Raises:
        NewerConfig: the config has a ``config_version`` above :data:`CONFIG_VERSION` or keys
            this xlrun does not know (it was written by a newer xlrun).
        UnreadableConfig: it is not a config (not JSON, a section missing or malformed).
    """
    try:
        d = json.loads(text)
    except (TypeError, ValueError) as e:
        raise UnreadableConfig(f"runs.config_json is not JSON ({e})") from e
    if not isinstance(d, dict):
        raise UnreadableConfig(f"runs.config_json is {type(d).__name__}, not an object")
    version = d.get("config_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        raise UnreadableConfig(f"config_version is {version!r}, not an integer")
    if version > CONFIG_VERSION:
        raise NewerConfig(f"its config_version is {version}; this xlrun reads "
                          f"{CONFIG_VERSION}")
    missing = [k for k in _SECTIONS if k not in d]
    if missing:
        raise UnreadableConfig(f"runs.config_json lacks {', '.join(missing)}")
    if not isinstance(d["eval"], list):
        raise UnreadableConfig(f"section 'eval' is {type(d['eval']).__name__}, not a list")
    return RunConfig(
        model=_section("model", d["model"]),
        train_data=_section("train_data", d["train_data"]),
        sampling=_section("sampling", d["sampling"]),
        train=_section("train", d["train"]),
        eval=[_section("eval", e) for e in d["eval"]],
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
        config = config_from_json(row["config_json"])
        stored = json.loads(row["config_json"]).get("output_dir")
        try:
            out = Path(stored) if stored else output_dir_of(row["spec_toml"])
        except (TypeError, ValueError) as e:  # tomllib's errors are ValueErrors
            raise UnreadableConfig(f"its output_dir cannot be read: {e}") from e
        return cls(run_id, config, out, run_dir(out, row["experiment"], row["run_key"]),
                   row["experiment"], row["run_key"], row["spec_toml"] or "")

    @property
    def models_dir(self) -> Path:
        """Where built models (``quickstart:*``) are kept, shared by the experiment's runs."""
        return self.output_dir / ".models"
