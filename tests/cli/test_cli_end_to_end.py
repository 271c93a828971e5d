"""The user's path: submit a spec, resubmit it, status, show, SQL, report, evaluate."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main

SPEC = """
[experiment]
name = "e2e"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 32
passage_max_length = 48
[train_data]
source = "quickstart"
languages = ["en", "de", "ru"]
[sampling]
strategy = "hybrid"
similarity = "script"
n_clusters = 2
[train]
steps = 30
batch_size = 16
lr = 2e-3
log_every = 5
[[eval]]
dataset = "quickstart"
languages = ["en", "de", "ru"]
max_queries_per_language = 30
top_k = 5
[grid]
"sampling.language_sampling" = ["size", "clustered"]
"train.steps" = [30, 0]
"""


@pytest.fixture(scope="module")
def done_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A database holding a small finished experiment (3 runs: 2 trained, 1 reference)."""
    tmp = tmp_path_factory.mktemp("e2e")
    spec = tmp / "spec.toml"
    spec.write_text(SPEC.format(out=tmp / "out"))
    db = f"sqlite:///{tmp / 'e2e.db'}"
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", db, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "3 runs — 3 new" in result.output
    return db, spec


def invoke(*args: str) -> str:
    """Run a command; its stdout (notes and progress bars go to stderr)."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_resubmission_adds_and_reruns_nothing(done_db: tuple[str, Path]) -> None:
    db, spec = done_db
    out = invoke("submit", str(spec), "--db", db, "--device", "cpu")
    assert "0 new, 0 requeued, 3 already done" in out
    assert "executed 0 runs" in out


def test_status_shows_every_run_with_metrics(done_db: tuple[str, Path]) -> None:
    db, _ = done_db
    out = invoke("status", "--db", db, "--experiment", "e2e")
    assert out.count(" done ") == 3
    for column in ("map mono", "map cross", "map multi"):
        assert column in out


def test_per_query_rows_for_every_run_language_and_setting(done_db: tuple[str, Path]) -> None:
    db, _ = done_db
    out = invoke("sql", "--db", db, "--format", "csv",
                 "SELECT run_id, setting, COUNT(*) AS n, COUNT(DISTINCT query_lang) AS langs "
                 "FROM query_results GROUP BY run_id, setting ORDER BY run_id, setting")
    rows = [line.split(",") for line in out.strip().splitlines()[1:]]
    got = {(r[0], r[1]): (int(r[2]), int(r[3])) for r in rows}
    # 30 queries × 3 languages; cross: 6 ordered pairs; multi: 3 languages → the pool
    for run in ("1", "2", "3"):
        assert got[(run, "mono")] == (90, 3)
        assert got[(run, "cross")] == (180, 3)
        assert got[(run, "multi")] == (90, 3)


def test_training_is_recorded(done_db: tuple[str, Path]) -> None:
    db, _ = done_db
    out = invoke("sql", "--db", db, "--format", "csv",
                 "SELECT r.language_sampling, COUNT(DISTINCT b.step) AS batches, "
                 "SUM(CASE WHEN b.batch_kind = 'mono' THEN b.pairs ELSE 0 END) AS mono_pairs "
                 "FROM batch_languages b JOIN runs r ON r.id = b.run_id GROUP BY 1 ORDER BY 1")
    lines = out.strip().splitlines()[1:]
    assert [line.split(",")[:2] for line in lines] == [["clustered", "30"], ["size", "30"]]
    clusters = invoke("sql", "--db", db, "--format", "csv",
                      "SELECT lang, cluster FROM language_clusters ORDER BY lang")
    # script clusters: de and en share Latin, ru is Cyrillic
    rows = dict(line.split(",") for line in clusters.strip().splitlines()[1:])
    assert rows["de"] == rows["en"] != rows["ru"]
    show = invoke("show", "3", "--db", db)  # grid order: size×30, size×0 (reference), clustered×30
    assert "training: 6 logged rows (steps 5–30)" in show and "language clusters" in show
    assert "time: " in show and "train " in show and "encode " in show
    stored = invoke("sql", "--db", db, "--format", "csv",
                    "SELECT timings_json FROM runs WHERE id = 3")
    timings = json.loads(stored.strip().splitlines()[1].strip('"').replace('""', '"'))
    assert set(timings) == {"load", "data", "clustering", "train", "encode", "search",
                            "metrics", "write", "other", "total", "cpu"}
    assert timings["train"] > 0 and timings["clustering"] > 0
    assert sum(v for k, v in timings.items() if k not in ("total", "cpu")) == pytest.approx(
        timings["total"], abs=0.01)
    assert timings["cpu"]["train"] > 0 and timings["cpu"]["total"] > 0


def test_trained_runs_beat_the_reference(done_db: tuple[str, Path]) -> None:
    db, _ = done_db
    out = invoke("report", "--db", db, "--by", "setting", "--experiment", "e2e",
                 "--compare", "arm", "--baseline", "none", "--format", "json")
    rows = json.loads(out)["rows"]
    cross = {r["arm"]: r["mean"] for r in rows if r["setting"] == "cross"}
    assert cross["hybrid/size"] > cross["none"] + 0.05


def test_evaluate_stores_a_baseline_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XLRUN_OUTPUT", str(tmp_path / "out"))
    db = f"sqlite:///{tmp_path / 'ev.db'}"
    args = ["evaluate", "quickstart:tiny", "--dataset", "quickstart", "--langs", "en,el",
            "--settings", "mono,multi", "--db", db, "--device", "cpu", "--top-k", "3"]
    assert "measures per setting and query language" in invoke(*args)
    assert "already evaluated" in invoke(*args)
    out = invoke("sql", "--db", db, "--format", "csv",
                 "SELECT sampler, setting, COUNT(*) FROM query_results q JOIN runs r "
                 "ON r.id = q.run_id GROUP BY 1, 2 ORDER BY 2")
    assert out.strip().splitlines()[1:] == ["none,mono,240", "none,multi,240"]
    assert not os.path.exists(tmp_path / "xlrun.db")
