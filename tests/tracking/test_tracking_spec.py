"""``[tracking]`` in a spec: validated by the spec loader with key-path errors, a missing
library refused at submit time with the extra to install, and no effect on run keys."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main
from xlrun.errors import SpecError
from xlrun.secrets import mask
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec, stored_tracking
from xlrun.tracking import TRACKERS
from xlrun.tracking.base import run_params
from xlrun.tracking.mlflow import MlflowOptions
from xlrun.tracking.wandb import WandbOptions

BASE = """
[experiment]
name = "t"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
languages = ["en", "de"]
[train]
steps = 4
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
"""


def test_the_registry_holds_the_four_trackers() -> None:
    assert TRACKERS.names() == ["mlflow", "mteb", "tensorboard", "wandb"]


def test_a_full_section_parses_into_each_trackers_options() -> None:
    spec = parse_spec(BASE + """
[tracking]
report_to = ["tensorboard", "mlflow", "wandb", "mteb"]
close_timeout_s = 5
[tracking.mlflow]
tracking_uri = "sqlite:///m.db"
experiment_name = "xp"
[tracking.wandb]
mode = "offline"
project = "p"
tags = ["a", "b"]
""")
    t = spec.tracking
    assert t.report_to == ["tensorboard", "mlflow", "wandb", "mteb"] and t.close_timeout_s == 5.0
    assert t.options["mlflow"] == MlflowOptions("sqlite:///m.db", "xp")
    assert t.options["wandb"] == WandbOptions(mode="offline", project="p", tags=["a", "b"])
    assert parse_spec(BASE).tracking.report_to == []


@pytest.mark.parametrize(("section", "path", "words"), [
    ('report_to = ["tensorboard", "comet"]', "tracking.report_to[1]", "unknown tracker"),
    ('report_to = "mlflow"', "tracking.report_to", "expected a list"),
    ('report_to = ["mlflow", "mlflow"]', "tracking.report_to[1]", "named twice"),
    ('report_to = []\nlogdir = "x"', "tracking.logdir", "unknown key"),
    ('report_to = ["wandb"]\n[tracking.wandb]\nmode = "sometimes"', "tracking.wandb.mode",
     "not allowed"),
    ('report_to = ["wandb"]\n[tracking.wandb]\nprojekt = "p"', "tracking.wandb.projekt",
     "unknown key"),
    ('report_to = ["tensorboard"]\n[tracking.mlflow]\ntracking_uri = "sqlite:///x"',
     "tracking.mlflow", "does not name"),
    ('report_to = ["mlflow"]\n[tracking.mlflow]\ntracking_uri = "sqlite:/x.db"',
     "tracking.mlflow.tracking_uri", "not a tracking URI"),
    ('report_to = ["mteb"]\nclose_timeout_s = 0', "tracking.close_timeout_s", "more than 0"),
])
def test_bad_sections_name_their_key_path(section: str, path: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(BASE + "[tracking]\n" + section + "\n")
    assert err.value.path == path and words in str(err.value)


def test_a_bad_uri_is_reported_without_its_password() -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(BASE + '[tracking]\nreport_to = ["mlflow"]\n[tracking.mlflow]\n'
                   'tracking_uri = " postgresql://u:s3cret@h/db"\n')
    assert "s3cret" not in str(err.value) and "u:***@h" in str(err.value)


@pytest.mark.parametrize(("tracker", "module", "extra"), [
    ("mlflow", "mlflow", "tracking-mlflow"), ("wandb", "wandb", "tracking-wandb"),
    ("tensorboard", "tensorboard", "tracking-tensorboard")])
def test_a_missing_library_is_one_line_at_submit_naming_the_extra(
        tracker: str, module: str, extra: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # importlib finds no such module
    spec = tmp_path / "spec.toml"
    spec.write_text(BASE + f'[tracking]\nreport_to = ["mteb", "{tracker}"]\n')
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{tmp_path}/x.db",
                                       "--dry-run"])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "tracking.report_to[1]" in lines[0], result.output
    assert f"pip install 'xlrun[{extra}]'" in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "x.db").exists()
    # a worker reading the stored spec keeps the tracker (it warns when the run starts)
    assert stored_tracking(spec.read_text()).report_to == ["mteb", tracker]


def test_tracking_changes_no_run_key(tmp_path: Path) -> None:
    plain = compile_spec(parse_spec(BASE, base_dir=tmp_path))
    tracked = compile_spec(parse_spec(
        BASE + '[tracking]\nreport_to = ["tensorboard", "mteb"]\n', base_dir=tmp_path))
    assert [r.run_key for r in plain] == [r.run_key for r in tracked]


def test_the_stored_spec_expands_variables_where_the_run_executes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE + ('[tracking]\nreport_to = ["mlflow"]\n[tracking.mlflow]\n'
                   'tracking_uri = "${XLRUN_TEST_MLFLOW}"\n')
    monkeypatch.setenv("XLRUN_TEST_MLFLOW", "sqlite:///a.db")
    assert stored_tracking(text).options["mlflow"].tracking_uri == "sqlite:///a.db"
    monkeypatch.delenv("XLRUN_TEST_MLFLOW")
    with pytest.raises(SpecError, match="XLRUN_TEST_MLFLOW is not set"):
        stored_tracking(text)


def test_params_are_flat_and_hold_no_secret(tmp_path: Path) -> None:
    (run,) = compile_spec(parse_spec(BASE, base_dir=tmp_path))
    params = run_params(run.config, experiment="t", run_id=3, run_key=run.run_key)
    assert params["train.lr"] == 2e-5 and params["model.name"] == "quickstart:tiny"
    assert params["eval.0.languages"] == '["en", "de"]' and params["xlrun.run_id"] == 3
    assert params["xlrun.arm"] == "hybrid/size" and params["sampling.strategy"] == "hybrid"
    assert all(isinstance(v, str | int | float | bool) for v in params.values())
    assert mask("postgresql+psycopg2://xl:pa:ss@db:5432/x and http://u:p@h") == (
        "postgresql+psycopg2://xl:***@db:5432/x and http://u:***@h")
    # an untrained run's sampling and training settings are defaults that mean nothing
    (ref,) = compile_spec(parse_spec(BASE.replace("steps = 4", "steps = 0"), base_dir=tmp_path))
    ref_params = run_params(ref.config, experiment="t", run_id=4, run_key=ref.run_key)
    assert ref_params["train.steps"] == 0 and not any(k.startswith("sampling.") for k in ref_params)
