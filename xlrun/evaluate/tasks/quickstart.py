"""``quickstart``: the generated offline parallel evaluation set (see :mod:`xlrun.quickstart`)."""

from __future__ import annotations

from xlrun.evaluate.tasks.base import EvalDataset, register
from xlrun.evaluate.types import EvalData
from xlrun.quickstart.corpus import LANGUAGES, SPLITS
from xlrun.quickstart.dataset import load_quickstart
from xlrun.spec.schema import EvalSection


class QuickstartDataset(EvalDataset):
    """The generated corpus: no files, every language and split known up front."""

    splits = SPLITS
    languages = LANGUAGES

    def load(self, cfg: EvalSection) -> EvalData:
        """:func:`~xlrun.quickstart.dataset.load_quickstart`."""
        return load_quickstart(cfg)


QUICKSTART = register(QuickstartDataset("quickstart"))
