"""One submitted run reports to TensorBoard, MLflow, W&B (offline) and MTEB result files;
each output is read back by its own library and holds the numbers the database holds.

Readers: TensorBoard's ``EventAccumulator``, MLflow's ``MlflowClient`` on the run's SQLite
store, W&B's own protobuf records of the offline ``.wandb`` file (:mod:`wandb_log`), and
``mteb.ResultCache``. No network: W&B runs offline, MLflow writes a local file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mteb
import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2
from wandb_log import read_run

from xlrun.cli import main
from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.run_results import metric_rows, train_log_rows
from xlrun.execute.executors.local import LocalExecutor
from xlrun.execute.progress import NullProgress
from xlrun.formats.mteb import mteb_key
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

SPEC = """
[experiment]
name = "tracked"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 24
passage_max_length = 32
[train_data]
source = "quickstart"
languages = ["en", "de"]
[train]
steps = 6
batch_size = 8
log_every = 2
seed = 3
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
max_queries_per_language = 10
top_k = 2
[tracking]
report_to = ["tensorboard", "mlflow", "wandb", "mteb"]
[tracking.wandb]
tags = ["e2e"]
"""


@dataclass(frozen=True)
class Tracked:
    out: Path
    run_id: int
    run_key: str
    log: list[dict]
    metrics: list[dict]

    def pooled(self) -> dict[str, float]:
        """``eval/<dataset>/<split>/<setting>/<key>`` → the stored setting mean."""
        return {f"eval/{r['dataset']}/{r['split']}/{r['setting']}/{mteb_key(r['metric'])}":
                r["value"] for r in self.metrics if r["query_lang"] == "all"}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracked]:
    tmp = tmp_path_factory.mktemp("tracked")
    spec = tmp / "spec.toml"
    spec.write_text(SPEC.format(out=tmp / "out"))
    db = f"sqlite:///{tmp / 'x.db'}"
    with pytest.MonkeyPatch.context() as mp:
        for var in ("WANDB_MODE", "WANDB_PROJECT", "MLFLOW_TRACKING_URI"):
            mp.delenv(var, raising=False)
        mp.setenv("WANDB_SILENT", "true")
        result = CliRunner().invoke(main, ["submit", str(spec), "--db", db, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "tracking:" not in result.output  # no tracker warned
    engine = get_engine(db)
    run = store.get_run(engine, 1)  # the one run of a new database
    yield Tracked(tmp / "out", run["id"], run["run_key"], train_log_rows(engine, run["id"]),
                  metric_rows(engine, run["id"]))


def test_tensorboard_event_files_hold_the_logged_steps_and_measures(tracked: Tracked) -> None:
    (folder,) = (tracked.out / "tensorboard" / "tracked").iterdir()
    assert folder.name == f"run-{tracked.run_id}_hybrid_size_seed3"
    ea = EventAccumulator(str(folder))
    ea.Reload()
    loss = ea.Scalars("train/loss")
    assert [e.step for e in loss] == [r["step"] for r in tracked.log] == [2, 4, 6]
    for e, r in zip(loss, tracked.log, strict=True):  # TensorBoard stores float32
        assert e.value == pytest.approx(r["loss"], rel=1e-6)
    assert [e.value for e in ea.Scalars("train/learning_rate")] == pytest.approx(
        [r["lr"] for r in tracked.log], rel=1e-6)
    pooled = tracked.pooled()
    assert len(pooled) >= 12
    for tag, value in pooled.items():
        (event,) = ea.Scalars(tag)
        assert event.step == 6 and event.value == pytest.approx(value, rel=1e-6)
    content = ea.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
    hp = start.session_start_info.hparams
    assert hp["train.lr"].number_value == pytest.approx(2e-5)
    assert hp["model.name"].string_value == "quickstart:tiny"
    assert hp["xlrun.run_key"].string_value == tracked.run_key
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"])
    assert {m.name.tag for m in experiment.experiment.metric_infos} == set(pooled)


def test_mlflow_run_holds_params_metrics_and_status(tracked: Tracked) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{tracked.out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == f"run {tracked.run_id}: hybrid/size seed 3"
    params = run.data.params
    assert params["train.lr"] == "2e-05" and params["train.seed"] == "3"
    assert params["xlrun.run_key"] == tracked.run_key and params["xlrun.arm"] == "hybrid/size"
    assert run.data.tags["xlrun.run_key"] == tracked.run_key
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(r["step"], r["loss"]) for r in tracked.log]
    lr = client.get_metric_history(run.info.run_id, "train/learning_rate")
    assert [m.value for m in lr] == [r["lr"] for r in tracked.log]
    for key, value in tracked.pooled().items():
        assert run.data.metrics[key] == value  # full precision
    assert not any("sqlite" in v or "x.db" in v for v in params.values())


def test_wandb_offline_run_holds_config_history_and_summary(tracked: Tracked) -> None:
    (folder,) = (tracked.out / "wandb").glob("offline-run-*")
    run = read_run(folder)
    assert run["run"]["project"] == "tracked" and run["run"]["group"] == "hybrid/size"
    assert run["run"]["name"] == f"run {tracked.run_id}: hybrid/size seed 3"
    assert run["config"]["train.lr"] == 2e-5 and run["config"]["xlrun.run_key"] == tracked.run_key
    rows = [h for h in run["history"] if "train/loss" in h]
    assert [(h["_step"], h["train/loss"], h["train/learning_rate"]) for h in rows] == [
        (r["step"], r["loss"], r["lr"]) for r in tracked.log]
    for key, value in tracked.pooled().items():
        assert run["summary"][key] == value
    assert run["exit_code"] == 0


def test_mteb_loads_the_runs_result_files(tracked: Tracked) -> None:
    loaded = mteb.ResultCache(tracked.out / "mteb").load_results(include_remote=False)
    (model,) = loaded.model_results
    assert model.model_name == f"tracked/run-{tracked.run_key[:12]}"
    assert model.model_revision == "no_revision_available"
    by_task = {t.task_name: t for t in model.task_results}
    assert sorted(by_task) == ["xlrun-quickstart-cross", "xlrun-quickstart-mono",
                               "xlrun-quickstart-multi"]
    stored = {(r["setting"], r["query_lang"], r["doc_lang"], mteb_key(r["metric"])): r["value"]
              for r in tracked.metrics if r["query_lang"] != "all"}
    n = 0
    for name, task in by_task.items():
        setting = name.rsplit("-", 1)[1]
        for entry in task.scores["test"]:
            q, _, d = entry["hf_subset"].partition("-")
            d = {"mono": q, "multi": "all"}.get(setting, d)
            for key in ("map", "ndcg_at_10", "mrr_at_10", "recall_at_100"):
                assert entry[key] == stored[(setting, q, d, key)]
                n += 1
    assert n == 4 * (2 + 2 + 2)
    meta = json.loads(next((tracked.out / "mteb").rglob("model_meta.json")).read_text())
    assert meta["adapted_from"] == "quickstart:tiny"


class Captured:
    """A progress that keeps the lines a run says (no bars)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._null = NullProgress()

    def task(self, description, total):
        return self._null.task(description, total)

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_an_unreachable_tracker_warns_without_its_password_and_the_run_is_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    text = (SPEC.format(out=tmp_path / "out").replace("steps = 6", "steps = 0")
            .replace('["tensorboard", "mlflow", "wandb", "mteb"]', '["mlflow", "mteb"]')
            .replace('[tracking.wandb]\ntags = ["e2e"]',
                     '[tracking.mlflow]\ntracking_uri = "http://xl:s3cret@127.0.0.1:9"'))
    engine = get_engine(f"sqlite:///{tmp_path / 'x.db'}")
    result = store.submit_runs(engine, "tracked", text,
                               compile_spec(parse_spec(text, base_dir=tmp_path)))
    progress = Captured()
    (outcome,) = LocalExecutor(device="cpu").run(engine, result.run_ids, progress)
    assert outcome.status == "done"
    warnings = [line for line in progress.lines if line.startswith("tracking:")]
    assert len(warnings) == 1 and "mlflow failed" in warnings[0], progress.lines
    assert "s3cret" not in "\n".join(progress.lines) and "xl:***@127.0.0.1" in warnings[0]
    assert list((tmp_path / "out" / "mteb").rglob("xlrun-quickstart-mono.json"))  # the others go on
