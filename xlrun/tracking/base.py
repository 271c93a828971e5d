"""The tracker every tracker is, the ``TRACKERS`` registry, and what a tracker is told.

A tracker mirrors a run into a tool researchers watch their runs in: the spec names it in
``[tracking] report_to`` (the transformers convention) and may set its options in a table
``[tracking.<name>]``. A tracker is told three things, always in this order and always from
one background thread (:mod:`xlrun.tracking.session`): :meth:`Tracker.start` (the run's
hyperparameters are on :attr:`Tracker.run`), :meth:`Tracker.log_metrics` (training loss and
learning rate per logged step, then the final measures), and :meth:`Tracker.finish`.

Each tracker is one module of :mod:`xlrun.tracking`; the library it drives is imported inside
its methods, so a run that does not report to it never imports it (the run path stays lean)
and a missing library is a spec error at submit time (:meth:`Tracker.missing`), naming the
extra to install.
"""

from __future__ import annotations

import importlib.util
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from xlrun import __version__
from xlrun.formats.mteb import mteb_key
from xlrun.registry import Registry
from xlrun.secrets import mask
from xlrun.spec.schema import RunConfig

Param = str | int | float | bool
"""A hyperparameter value as trackers store it (lists and ``None`` are written as JSON)."""

def slug(text: str) -> str:
    """``text`` as a file and folder name: letters, digits, ``.``, ``-`` and ``_`` only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


@dataclass(frozen=True)
class NoOptions:
    """A tracker without options (its ``[tracking.<name>]`` table must be empty)."""


@dataclass(frozen=True)
class TrackedRun:
    """The run a tracker mirrors.

    Attributes:
        experiment: the experiment's name.
        run_id: ``runs.id``.
        run_key: the run's key (stable across databases: trackers find a run again by it).
        arm: the arm label (``hybrid/size``, ``none``).
        seed: ``train.seed``.
        model: the model the spec names (the base model of a trained run).
        steps: ``train.steps``: the step the final measures are logged at (0: not trained).
        output_dir: ``experiment.output_dir`` (absolute): default folders live below it.
        params: the hyperparameters, flattened (``train.lr``, ``model.name``, ``xlrun.arm``…),
            secrets masked.
        model_revision: the model's hub commit when known (``None``: a local folder).
    """

    experiment: str
    run_id: int
    run_key: str
    arm: str
    seed: int
    model: str
    steps: int
    output_dir: Path
    params: Mapping[str, Param] = field(default_factory=dict)
    model_revision: str | None = None

    @property
    def name(self) -> str:
        """A short human name: ``run 3: hybrid/size seed 1``."""
        return f"run {self.run_id}: {self.arm} seed {self.seed}"

    @property
    def folder_name(self) -> str:
        """:attr:`name` as a folder name: ``run-3_hybrid_size_seed1``."""
        return slug(f"run-{self.run_id}_{self.arm}_seed{self.seed}")


@dataclass(frozen=True)
class EvalResult:
    """The measures of one evaluated dataset split (the ``run_metrics`` rows of the run).

    Attributes:
        dataset: ``[[eval]] dataset``.
        split: the split.
        rows: ``run_metrics`` rows as dicts (``setting``, ``query_lang``, ``doc_lang``,
            ``metric``, ``value``); ``query_lang = doc_lang = "all"`` is a setting's mean.
        seconds: the time the evaluation took (encode, search, measures).
        revision: the dataset's revision when known.
    """

    dataset: str
    split: str
    rows: tuple[Mapping[str, Any], ...]
    seconds: float = 0.0
    revision: str | None = None

    def setting_means(self) -> dict[tuple[str, str], float]:
        """``(setting, metric) → value`` of each setting's mean over its queries."""
        return {(r["setting"], r["metric"]): float(r["value"]) for r in self.rows
                if r["query_lang"] == "all" and r["doc_lang"] == "all"}


class Tracker:
    """Base class of a tracker; a subclass registers with ``TRACKERS.register(name)``.

    Class attributes: :attr:`name`, :attr:`Options` (the dataclass of its
    ``[tracking.<name>]`` table), :attr:`modules` (what it imports) and :attr:`extra` (the
    pip extra that installs them).
    """

    name: ClassVar[str] = ""
    Options: ClassVar[type] = NoOptions
    modules: ClassVar[tuple[str, ...]] = ()
    extra: ClassVar[str] = ""

    def __init__(self, options: Any, run: TrackedRun) -> None:
        self.options = options
        self.run = run

    @classmethod
    def validate(cls, options: Any, key_path: str) -> None:
        """Checks of its options that need no library (none by default).

        Raises:
            SpecError: naming ``key_path``'s field, the value and what is allowed.
        """

    @classmethod
    def missing(cls) -> list[str]:
        """The modules of :attr:`modules` that are not installed."""
        return [m for m in cls.modules if importlib.util.find_spec(m) is None]

    def start(self) -> None:
        """Open the run in the tool and record :attr:`run`'s hyperparameters."""

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """Record ``metrics`` (name → value) at ``step``."""

    def log_eval(self, result: EvalResult, step: int) -> None:
        """Record a dataset's measures: by default each setting's mean as a metric
        ``eval/<dataset>/<split>/<setting>/<measure>`` (:func:`metric_name`) at ``step``."""
        self.log_metrics({metric_name(result, s, m): v
                          for (s, m), v in result.setting_means().items()}, step)

    def finish(self, status: str) -> None:
        """Close the run: ``status`` is ``done``, ``failed`` or ``killed``."""


def metric_name(result: EvalResult, setting: str, measure: str) -> str:
    """``eval/<dataset>/<split>/<setting>/<measure>``, the measure spelt as MTEB does
    (``ndcg_at_10``: every tool accepts it; MLflow refuses ``@``)."""
    return f"eval/{slug(result.dataset)}/{slug(result.split)}/{setting}/{mteb_key(measure)}"


TRACKERS: Registry[type[Tracker]] = Registry("tracker")
"""``[tracking] report_to`` names → :class:`Tracker` classes (each registered by its module
here)."""


def run_params(config: RunConfig, *, experiment: str, run_id: int, run_key: str
               ) -> dict[str, Param]:
    """A run's hyperparameters, flattened as trackers store them.

    ``model.*`` and ``eval.<i>.*`` always; ``train.*``, ``sampling.*`` and ``train_data.*``
    for a run that trains (an untrained run's are defaults that mean nothing); and
    ``xlrun.experiment``, ``xlrun.run_id``, ``xlrun.run_key``, ``xlrun.arm``,
    ``xlrun.version``. Lists and ``None`` are written as JSON; passwords in URLs are masked
    (:func:`xlrun.secrets.mask`). The database URL is never among them.
    """
    d = config.to_dict()
    sections = ["model"] + (["train", "sampling", "train_data"] if config.train.steps > 0
                            else [])
    out: dict[str, Param] = {}
    for section in sections:
        for key, value in d[section].items():
            out[f"{section}.{key}"] = _param(value)
    if config.train.steps == 0:
        out["train.steps"] = 0
    for i, section in enumerate(d["eval"]):
        for key, value in section.items():
            out[f"eval.{i}.{key}"] = _param(value)
    out.update({"xlrun.experiment": experiment, "xlrun.run_id": run_id,
                "xlrun.run_key": run_key, "xlrun.arm": config.arm,
                "xlrun.version": __version__})
    return {k: mask(v) if isinstance(v, str) else v for k, v in out.items()}


def _param(value: Any) -> Param:
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
