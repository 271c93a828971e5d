"""Executors (registry ``EXECUTORS``): where a submission's runs execute, one module each.

``local`` (:mod:`.local`) runs them one after another in this process; ``slurm``
(:mod:`.slurm`) submits one job per run, each an ``xlrun worker --run ID``.
"""

from xlrun.execute.executors.base import EXECUTORS, Dispatch, Executor
from xlrun.registry import import_submodules

__all__ = ["EXECUTORS", "Dispatch", "Executor"]

import_submodules(__name__, __path__)
