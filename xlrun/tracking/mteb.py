"""``mteb``: MTEB result files (:mod:`xlrun.formats.mteb`) for each evaluated dataset.

``[tracking.mteb] dir`` (default ``<output_dir>/mteb``; relative: inside ``output_dir``) is a
results folder as MTEB's ``ResultCache`` reads it::

    import mteb
    results = mteb.ResultCache("xlrun-out/mteb").load_results(include_remote=False)

The model is named as the spec names it for a run that does not train (its hub commit as the
revision when known); a trained run is ``<experiment>/run-<run key's first 12 characters>``,
``adapted_from`` its base model. Nothing to install: the files are plain JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from xlrun.evaluate.types import SETTINGS
from xlrun.formats import mteb
from xlrun.tracking.base import TRACKERS, EvalResult, Tracker
from xlrun.version import __version__


@dataclass(frozen=True)
class MtebOptions:
    """``[tracking.mteb]``."""

    dir: str = ""
    """The results folder (default ``<output_dir>/mteb``)."""


@TRACKERS.register("mteb")
class MtebTracker(Tracker):
    """One MTEB task file per evaluated dataset and setting."""

    name = "mteb"
    Options = MtebOptions

    def folder(self) -> Path:
        """The results folder."""
        base = Path(self.options.dir or "mteb").expanduser()
        return base if base.is_absolute() else self.run.output_dir / base

    def model(self) -> dict[str, object]:
        """``model_meta.json`` of this run's model."""
        r = self.run
        if r.steps > 0:
            return mteb.model_meta(f"{r.experiment}/run-{r.run_key[:12]}", None, r.model)
        name = Path(r.model).name if Path(r.model).is_absolute() else r.model
        return mteb.model_meta(name, r.model_revision)

    def log_eval(self, result: EvalResult, step: int) -> None:
        """Write the dataset's task files (one per setting)."""
        r = self.run
        xlrun = {"version": __version__, "experiment": r.experiment, "run_id": r.run_id,
                 "run_key": r.run_key, "arm": r.arm, "seed": r.seed, "model": r.model}
        results = [mteb.task_result(result.rows, dataset=result.dataset, split=result.split,
                                    setting=s, dataset_revision=result.revision,
                                    evaluation_time=result.seconds, xlrun=xlrun)
                   for s in SETTINGS]
        mteb.write_results(self.folder(), self.model(), [x for x in results if x is not None])
