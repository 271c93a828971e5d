"""``mlflow``: an MLflow run per xlrun run, through MLflow's own client.

``[tracking.mlflow]``: ``tracking_uri`` (default ``$MLFLOW_TRACKING_URI``, else a SQLite store
``sqlite:///<output_dir>/mlflow.db``; a server ``http://…`` or a database URL work as MLflow
accepts them) and ``experiment_name`` (default the xlrun experiment's
name). Each run is tagged ``xlrun.run_key`` and found again by that tag, so a resumed or
requeued run continues its MLflow run instead of starting a second one. Logged: the
hyperparameters as params (only those not logged yet: MLflow refuses to change one), the
training metrics per logged step, the final measures, and the run's end (``FINISHED``,
``FAILED``, ``KILLED``). See them with ``mlflow ui --backend-store-uri <tracking_uri>``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from xlrun.errors import SpecError
from xlrun.secrets import mask
from xlrun.tracking.base import TRACKERS, Tracker

STATUS = {"done": "FINISHED", "failed": "FAILED", "killed": "KILLED"}
BATCH = 100
"""Params per ``log_batch`` call (MLflow accepts at most 100)."""
MAX_VALUE = 6000
"""MLflow's longest param value (longer values are cut, with ``…`` at the end)."""


@dataclass(frozen=True)
class MlflowOptions:
    """``[tracking.mlflow]``."""

    tracking_uri: str = ""
    """The tracking store (default ``$MLFLOW_TRACKING_URI``, else
    ``sqlite:///<output_dir>/mlflow.db``)."""
    experiment_name: str = ""
    """The MLflow experiment (default: the xlrun experiment's name)."""


@TRACKERS.register("mlflow")
class MlflowTracker(Tracker):
    """Params, metrics and status in an MLflow tracking store."""

    name = "mlflow"
    Options = MlflowOptions
    modules = ("mlflow",)
    extra = "tracking-mlflow"

    client: Any = None
    run_uuid: str = ""

    @classmethod
    def validate(cls, options: MlflowOptions, key_path: str) -> None:
        """A tracking URI, when given, has a scheme MLflow knows or is a path."""
        uri = options.tracking_uri
        if uri.strip() != uri or (uri and "://" not in uri and not uri.startswith(
                ("file:", "databricks", "/", "./", "../", "~"))):
            raise SpecError(f"{key_path}.tracking_uri", "not a tracking URI",
                            value=mask(uri),
                            allowed="sqlite:///path/mlflow.db, http(s)://host:port or a "
                                    "database URL (postgresql://…)")

    def tracking_uri(self) -> str:
        """The store this run logs to."""
        uri = self.options.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        if uri:
            return uri
        self.run.output_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.run.output_dir / 'mlflow.db'}"

    def start(self) -> None:
        """Find this run's MLflow run by its key (or create it) and log the params it does
        not have yet."""
        # deferred on purpose: MLflow is imported only by runs that report to it
        from mlflow.entities import Param
        from mlflow.entities.lifecycle_stage import LifecycleStage
        from mlflow.tracking import MlflowClient

        # MLflow announces creating its tables at INFO on stderr, through the run's progress bars
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        r = self.run
        client = MlflowClient(tracking_uri=self.tracking_uri())
        name = self.options.experiment_name or r.experiment
        experiment = client.get_experiment_by_name(name)
        if experiment is not None and experiment.lifecycle_stage == LifecycleStage.DELETED:
            client.restore_experiment(experiment.experiment_id)
        exp_id = (experiment.experiment_id if experiment is not None
                  else client.create_experiment(name))
        found = client.search_runs([exp_id], filter_string=f"tags.`xlrun.run_key` = '{r.run_key}'",
                                   max_results=1)
        if found:
            self.run_uuid = found[0].info.run_id
            client.update_run(self.run_uuid, status="RUNNING")
            have = dict(found[0].data.params)
        else:
            tags = {"xlrun.run_key": r.run_key, "xlrun.experiment": r.experiment,
                    "xlrun.run_id": str(r.run_id), "xlrun.arm": r.arm}
            self.run_uuid = client.create_run(exp_id, run_name=r.name, tags=tags).info.run_id
            have = {}
        params = [Param(k, _value(v)) for k, v in r.params.items() if k not in have]
        for i in range(0, len(params), BATCH):
            client.log_batch(self.run_uuid, params=params[i:i + BATCH])
        self.client = client

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        """The metrics at ``step``, in one call."""
        from mlflow.entities import Metric  # deferred on purpose (see start)

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_uuid, metrics=[Metric(k, float(v), now, step)
                                                      for k, v in metrics.items()])

    def finish(self, status: str) -> None:
        """Mark the MLflow run finished, failed or killed."""
        self.client.set_terminated(self.run_uuid, status=STATUS.get(status, "FAILED"))


def _value(v: Any) -> str:
    text = str(v)
    return text if len(text) <= MAX_VALUE else text[:MAX_VALUE - 1] + "…"
