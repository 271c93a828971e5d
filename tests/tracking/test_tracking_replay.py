"""``xlrun track``: a run made without trackers is reported afterwards from the database,
with the same logged steps and measures."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from xlrun.cli import main
from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.run_results import metric_rows, train_log_rows
from xlrun.execute.executors.local import LocalExecutor
from xlrun.formats.mteb import mteb_key
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

SPEC = """
[experiment]
name = "later"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 24
passage_max_length = 32
[train_data]
source = "quickstart"
languages = ["en", "de"]
[train]
steps = 4
batch_size = 8
log_every = 2
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
max_queries_per_language = 8
settings = ["mono"]
top_k = 0
"""


def test_a_finished_run_is_reported_afterwards(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    text = SPEC.format(out=tmp_path / "out")
    db = f"sqlite:///{tmp_path / 'x.db'}"
    engine = get_engine(db)
    ids = store.submit_runs(engine, "later", text,
                            compile_spec(parse_spec(text, base_dir=tmp_path))).run_ids
    (outcome,) = LocalExecutor(device="cpu").run(engine, ids)
    assert outcome.status == "done" and not (tmp_path / "out" / "mlflow.db").exists()

    result = CliRunner().invoke(main, ["track", str(ids[0]), "--report-to", "mlflow,mteb",
                                       "--db", db])
    assert result.exit_code == 0, result.output
    assert f"run {ids[0]}: reported to mlflow, mteb (done)" in result.stdout
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("later").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["train.steps"] == "4"
    log = train_log_rows(engine, ids[0])
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")
            ] == [(r["step"], r["loss"]) for r in log] and len(log) == 2
    for r in metric_rows(engine, ids[0]):
        if r["query_lang"] == "all":
            key = f"eval/quickstart/test/{r['setting']}/{mteb_key(r['metric'])}"
            assert run.data.metrics[key] == r["value"]
    assert list((tmp_path / "out" / "mteb").rglob("xlrun-quickstart-mono.json"))

    bad = CliRunner().invoke(main, ["track", str(ids[0]), "--report-to", "comet", "--db", db])
    assert bad.exit_code == 2 and "unknown tracker" in bad.output
    other = text.replace("steps = 4", "steps = 2")
    (queued,) = store.submit_runs(engine, "later", other,
                                  compile_spec(parse_spec(other, base_dir=tmp_path))).run_ids
    bad = CliRunner().invoke(main, ["track", str(queued), "--report-to", "mteb", "--db", db])
    assert bad.exit_code == 2 and f"run {queued} is queued" in bad.output
