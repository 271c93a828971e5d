"""``xlrun show``'s training line: the true number of logged rows and a sparkline."""

from __future__ import annotations

import math

from click.testing import CliRunner
from sqlalchemy import insert

from xlrun.cli.main import main
from xlrun.cli.sparkline import BLOCKS, sparkline
from xlrun.db.engine import get_engine
from xlrun.db.models import Experiment, Run, TrainLog


def test_sparkline_scales_from_lowest_to_highest() -> None:
    assert sparkline([3.0, 2.0, 1.0]) in ("█▄▁", "█▅▁")
    assert sparkline([1.0, 1.0]) == "▄▄"
    assert sparkline([]) == ""
    assert sparkline([1.0, math.nan, 2.0]) == "▁ █"
    long = sparkline([float(i) for i in range(200)], width=20)
    assert len(long) == 20 and long[0] == BLOCKS[0] and long[-1] == BLOCKS[-1]
    assert list(long) == sorted(long, key=BLOCKS.index)  # rising stays rising


def test_show_counts_logged_rows_not_steps(sqlite_url: str) -> None:
    engine = get_engine(sqlite_url)
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="e", spec_toml="")
                           .returning(Experiment.id)).scalar_one()
        run = conn.execute(insert(Run).values(
            experiment_id=exp, run_key="k", status="done", config_json="{}", model="m",
            sampler="hybrid", language_sampling="size", seed=1).returning(Run.id)).scalar_one()
        conn.execute(insert(TrainLog), [
            {"run_id": run, "step": s, "loss": 4.0 / (1 + s / 50), "lr": 1e-3,
             "examples_per_s": 10.0} for s in range(10, 201, 10)])
    engine.dispose()
    res = CliRunner().invoke(main, ["show", str(run), "--db", sqlite_url],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("training:"))
    assert "20 logged rows (steps 10–200)" in line and "200 logged" not in line
    spark = sparkline([4.0 / (1 + s / 50) for s in range(10, 201, 10)])
    assert spark in line and spark[0] == "█" and spark[-1] == "▁"
