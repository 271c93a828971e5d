"""``xlrun status`` tells runs apart by model and dataset; ``status`` and ``show`` print a
missing value the same way (``-``)."""

from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import insert

from xlrun.cli import main
from xlrun.db.engine import get_engine
from xlrun.db.models import Experiment, Run, RunMetric

E5 = "/scratch/someone/models/intfloat--multilingual-e5-small-4bit"


def _db(url: str) -> None:
    engine = get_engine(url)
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="mixed", spec_toml="")
                           .returning(Experiment.id)).scalar_one()
        for run_id, model, dataset in ((1, "quickstart:tiny", "quickstart"),
                                       (2, E5, "xquad-r")):
            conn.execute(insert(Run).values(
                id=run_id, experiment_id=exp, run_key=f"k{run_id}", status="done",
                config_json=json.dumps({}), model=model, sampler="none",
                language_sampling=None, clustering=None, seed=0))
            conn.execute(insert(RunMetric), [
                {"run_id": run_id, "dataset": dataset, "split": "test", "setting": s,
                 "query_lang": "all", "doc_lang": "all", "metric": "map", "value": 0.5}
                for s in ("mono", "cross")])
        conn.execute(insert(RunMetric).values(
            run_id=2, dataset="mlqa-r", split="test", setting="mono", query_lang="all",
            doc_lang="all", metric="map", value=0.4))
    engine.dispose()


def test_status_has_model_and_dataset_columns(sqlite_url: str) -> None:
    _db(sqlite_url)
    res = CliRunner().invoke(main, ["status", "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    header = next(line for line in res.stdout.splitlines() if "sampler" in line)
    assert "model" in header and "dataset" in header
    row1 = next(line for line in res.stdout.splitlines() if "quickstart:tiny" in line)
    row2 = next(line for line in res.stdout.splitlines() if "multilingual-e5-small" in line)
    assert "quickstart" in row1.replace("quickstart:tiny", "")
    assert "(+1)" in row2  # e5 was evaluated on two datasets; the columns show the first
    assert "…" in row2 and E5 not in row2  # a long local path keeps its end


def test_show_prints_a_dash_where_status_does(sqlite_url: str) -> None:
    _db(sqlite_url)
    res = CliRunner().invoke(main, ["show", "1", "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    assert "None" not in res.stdout
    fields = dict(line.split(None, 1) for line in res.stdout.splitlines()[1:12])
    assert fields["language_sampling"] == fields["clustering"] == fields["device"] == "-"
    status = CliRunner().invoke(main, ["status", "--db", sqlite_url])
    row = next(line for line in status.stdout.splitlines() if "quickstart:tiny" in line)
    assert " - " in row.replace("│", " ")


def test_status_shows_a_measure_named_as_the_main_metric(sqlite_url: str,
                                                          tmp_path) -> None:
    """``experiment.main_metric`` may name a measure of ``[[eval]] measures`` (any ir_measures
    spelling); ``xlrun status`` then shows that measure's stored mean."""
    spec = tmp_path / "s.toml"
    spec.write_text('[experiment]\nname = "pm"\nmain_metric = "P_1"\n'
                    '[model]\nname = "quickstart:tiny"\n[train]\nsteps = 0\n'
                    '[[eval]]\ndataset = "quickstart"\nlanguages = ["en", "de"]\n'
                    'settings = ["mono"]\nmeasures = ["P@1"]\n')
    res = CliRunner().invoke(main, ["submit", str(spec), "--db", sqlite_url])
    assert res.exit_code == 0, res.output
    engine = get_engine(sqlite_url)
    with engine.connect() as conn:
        stored = conn.exec_driver_sql(
            "SELECT value FROM run_metrics WHERE metric = 'P@1' AND setting = 'mono' "
            "AND query_lang = 'all' AND doc_lang = 'all'").scalar_one()
    engine.dispose()
    status = CliRunner().invoke(main, ["status", "--db", sqlite_url])
    assert status.exit_code == 0, status.output
    assert "P@1" in status.stdout and f"{stored:.4f}" in status.stdout, status.stdout
    spec.write_text(spec.read_text().replace('"P_1"', '"R@1000"'))
    bad = CliRunner().invoke(main, ["submit", str(spec), "--db", sqlite_url])
    assert bad.exit_code == 2 and "experiment.main_metric" in bad.output
    assert "'R@1000'" in bad.output and "P@1" in bad.output
