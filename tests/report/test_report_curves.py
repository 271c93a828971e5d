"""``xlrun report --curves``: training loss per arm over steps from ``train_log``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from html_study import Study, build
from report_db import new_engine
from sqlalchemy import select

from xlrun.cli.report import report_command
from xlrun.db.models import Run, TrainLog


@pytest.fixture(scope="module")
def study_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('curves') / 'study.db'}"
    engine = new_engine(url)
    build(engine, Study(steps=30, log_every=10))
    engine.dispose()
    return url


def _invoke(args: list[str]):
    return CliRunner().invoke(report_command, args, catch_exceptions=False)


def test_curves_are_mean_and_spread_of_each_arms_runs(study_url: str) -> None:
    res = _invoke(["--db", study_url, "--curves", "--compare", "arm", "--baseline",
                   "hybrid/size", "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    rows = doc["rows"]
    engine = new_engine(study_url)
    with engine.connect() as conn:
        logs = conn.execute(select(Run.sampler, Run.language_sampling, TrainLog.step,
                                   TrainLog.loss).join(TrainLog, TrainLog.run_id == Run.id)
                            .where(Run.status == "done")).all()
    engine.dispose()
    by: dict[tuple[str, int], list[float]] = {}
    for sampler, sampling, step, loss in logs:
        arm = f"{sampler}/{sampling}" + ("[script/k=3/average/within]"
                                         if sampling == "clustered" else "")
        by.setdefault((arm, step), []).append(loss)
    assert len(rows) == len(by) == 3 * 3  # 3 trained arms × steps 10, 20, 30
    import statistics

    for r in rows:
        losses = by[(r["arm"], r["step"])]
        assert r["runs"] == len(losses)
        assert r["loss_mean"] == pytest.approx(statistics.fmean(losses), abs=1e-6)
        assert r["loss_min"] == pytest.approx(min(losses), abs=1e-6)
        assert r["loss_max"] == pytest.approx(max(losses), abs=1e-6)
        if len(losses) > 1:
            assert r["loss_sd"] == pytest.approx(statistics.stdev(losses), abs=1e-6)
    assert rows[0]["arm"] == "hybrid/size"  # the baseline first
    assert {r["runs"] for r in rows if r["arm"] == "hybrid/size"} == {2}  # one run failed
    assert any("none logged no training steps" in n for n in doc["meta"]["notes"])
    assert "note: arm(s) none logged no training steps" in res.stderr


def test_curves_plot_writes_a_png(study_url: str, tmp_path: Path) -> None:
    out = tmp_path / "loss.png"
    res = _invoke(["--db", study_url, "--curves", "--plot", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_no_training_logged_is_an_error(study_url: str) -> None:
    res = _invoke(["--db", study_url, "--curves", "--where", "sampler=none"])
    assert res.exit_code == 2 and "no training logged" in res.output
