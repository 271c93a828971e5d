"""Experiment trackers (registry ``TRACKERS``): one module each.

``[tracking] report_to`` names them: ``tensorboard`` (event files; :mod:`.tensorboard`),
``mlflow`` (a tracking store: a local SQLite file by default; :mod:`.mlflow`), ``wandb``
(Weights & Biases, offline by default; :mod:`.wandb`) and ``mteb`` (MTEB result files;
:mod:`.mteb`). A run's trackers are fed by :class:`~xlrun.tracking.session.TrackingSession`
from a background thread: a tracker's error is a warning, never a failed or stalled run. A
new tracker is one new module here (``docs/extending.md``).
"""

from xlrun.registry import import_submodules
from xlrun.tracking.base import TRACKERS, EvalResult, TrackedRun, Tracker
from xlrun.tracking.session import TrackingSession

__all__ = ["TRACKERS", "EvalResult", "TrackedRun", "Tracker", "TrackingSession"]

import_submodules(__name__, __path__)
