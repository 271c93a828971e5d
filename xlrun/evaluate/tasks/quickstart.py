"""``quickstart``: the generated offline parallel evaluation set (see :mod:`xlrun.quickstart`)."""

from __future__ import annotations

from xlrun.evaluate.tasks import DATASETS
from xlrun.quickstart.dataset import load_quickstart

DATASETS.add("quickstart", load_quickstart)
