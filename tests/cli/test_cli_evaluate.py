"""``xlrun evaluate`` prints its measures per setting and language (the numbers stored), says
"done" once, and writes MTEB result files or reports to trackers when asked."""

from __future__ import annotations

import re
from pathlib import Path

import mteb
import pytest
from click.testing import CliRunner

from xlrun.cli import main
from xlrun.db.engine import get_engine
from xlrun.db.run_results import metric_rows


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    tmp_path = tmp_path_factory.mktemp("evaluate")
    db = f"sqlite:///{tmp_path / 'ev.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)  # the default output_dir, xlrun-out, is relative
        result = CliRunner().invoke(main, [
            "evaluate", "quickstart:tiny", "--dataset", "quickstart", "--langs", "en,de,ru",
            "--db", db, "--device", "cpu", "--top-k", "3", "--mteb-results",
            str(tmp_path / "mteb-out")])
    assert result.exit_code == 0, result.output
    return tmp_path, db, result


def _table(stdout: str) -> dict[tuple[str, str], list[str]]:
    """(setting, language) → the printed measure cells."""
    rows = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃]", line)[1:-1]]
        if len(cells) == 8 and cells[0] == "quickstart":
            rows[(cells[2], cells[3])] = cells[4:]
    return rows


def test_evaluate_prints_the_stored_measures_once_done(evaluated) -> None:
    _, db, result = evaluated
    assert result.output.count("done in") == 1, result.output  # was twice
    assert "progress.py" not in result.stdout
    header = next(line for line in result.stdout.splitlines() if "ndcg@10" in line)
    assert [c.strip() for c in re.split(r"[│┃]", header)[1:-1]] == [
        "dataset", "split", "setting", "language", "map", "mrr@10", "ndcg@10", "recall@100"]
    printed = _table(result.stdout)
    stored = metric_rows(get_engine(db), 1)
    measures = ["map", "mrr@10", "ndcg@10", "recall@100"]
    for setting in ("mono", "multi"):
        for lang in ("de", "en", "ru", "all"):
            doc = {"mono": lang, "multi": "all"}[setting] if lang != "all" else "all"
            want = {r["metric"]: r["value"] for r in stored if r["setting"] == setting
                    and r["query_lang"] == lang and r["doc_lang"] == doc}
            assert printed[(setting, lang)] == [f"{want[m]:.4f}" for m in measures]
    cross_de = [r for r in stored if r["setting"] == "cross" and r["query_lang"] == "de"
                and r["metric"] == "ndcg@10"]
    assert len(cross_de) == 2
    assert printed[("cross", "de→*")][2] == f"{sum(r['value'] for r in cross_de) / 2:.4f}"
    assert "note: cross: per query language" in result.stdout


def test_evaluate_writes_mteb_results_and_prints_again_when_done_before(
        evaluated, monkeypatch: pytest.MonkeyPatch) -> None:
    tmp, db, first = evaluated
    monkeypatch.chdir(tmp)
    loaded = mteb.ResultCache(tmp / "mteb-out").load_results(include_remote=False)
    (model,) = loaded.model_results
    assert model.model_name == "quickstart:tiny"
    assert sorted(t.task_name for t in model.task_results) == [
        "xlrun-quickstart-cross", "xlrun-quickstart-mono", "xlrun-quickstart-multi"]
    again = CliRunner().invoke(main, ["evaluate", "quickstart:tiny", "--dataset", "quickstart",
                                      "--langs", "en,de,ru", "--db", db, "--device", "cpu",
                                      "--top-k", "3"])
    assert again.exit_code == 0 and "already evaluated: run 1" in again.stdout
    assert _table(again.stdout) == _table(first.stdout)


def test_an_unknown_tracker_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["evaluate", "quickstart:tiny", "--dataset", "quickstart",
                                       "--db", f"sqlite:///{tmp_path / 'x.db'}",
                                       "--report-to", "tensorboard,comet"])
    assert result.exit_code == 2 and "unknown tracker 'comet'" in result.output
    assert "mlflow, mteb, tensorboard, wandb" in result.output
    assert not (tmp_path / "x.db").exists()
