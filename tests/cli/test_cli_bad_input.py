"""Bad specs exit with code 2, name the key path, the bad value and what is allowed, and
write nothing to the database."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main

GOOD = """
[experiment]
name = "bad-input"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
[train]
steps = 2
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
"""

CASES = {
    "unknown key": (("[train]", "[train]\nlearning_rate = 0.1"), ["train.learning_rate",
                                                               "unknown key", "batch_size"]),
    "wrong type": (("steps = 2", "steps = 2.5"), ["train.steps", "expected an integer", "2.5"]),
    "unknown sampler": (("[train_data]", '[sampling]\nstrategy = "zigzag"\n[train_data]'),
                        ["sampling.strategy", "'zigzag'", "hybrid"]),
    "unknown language": (('["en", "de"]', '["en", "dx"]'), ["eval[0].languages[1]", "'dx'",
                                                             "nearest"]),
    "missing file": (('source = "quickstart"', 'source = "jsonl"\npath = "./nope.jsonl"'),
                     ["train_data.path", "nope.jsonl", "not found"]),
    "bad grid key": (("[[eval]]", '[grid]\n"train.stepz" = [1, 2]\n[[eval]]'),
                     ["grid.train.stepz", "not a key", "train.steps"]),
    "unmatchable clusters": (
        ("[train_data]", '[sampling]\nstrategy = "cross_lingual"\nlanguage_sampling = '
         '"clustered"\nsimilarity = "manual"\nclusters = [["de", "en", "es", "fr", "pt", '
         '"ru", "uk"]]\n[train_data]'),
        ["sampling.exposure", "leave el without any language pair", "exposure = 'free'",
         "arm cross_lingual/clustered[manual/within]"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_spec_exits_2_and_writes_nothing(case: str, tmp_path: Path) -> None:
    (old, new), needles = CASES[case]
    text = GOOD.replace(old, new, 1)
    assert text != GOOD
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    db = tmp_path / "x.db"
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}"])
    assert result.exit_code == 2, result.output
    for needle in needles:
        assert needle in result.output, (needle, result.output)
    assert not db.exists()


def test_dry_run_prints_the_expected_shares_of_clustered_arms(tmp_path: Path) -> None:
    text = GOOD.replace("[train_data]", '[sampling]\nlanguage_sampling = "clustered"\n'
                        'similarity = "script"\nn_clusters = 3\n[train_data]')
    spec = tmp_path / "spec.toml"
    spec.write_text(text)
    db = tmp_path / "x.db"
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}",
                                       "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "hybrid/clustered[script/k=3/average/within]: expected share" in result.output
    assert "query random" in result.output and "passage arm" in result.output
    assert "el: a singleton cluster" in result.output
    assert not db.exists()


def test_missing_spec_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["submit", str(tmp_path / "none.toml")])
    assert result.exit_code == 2
    assert "none.toml" in result.output


def test_unknown_only_key(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD)
    db = tmp_path / "x.db"
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}",
                                       "--only", "0000000000000000"])
    assert result.exit_code == 2 and "unknown run keys" in result.output
    assert not db.exists()


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    spec = tmp_path / "spec.toml"
    spec.write_text(GOOD + '\n[grid]\nseeds = [1, 2, 3]\n')
    db = tmp_path / "x.db"
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}",
                                       "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "3 runs" in result.output
    assert not db.exists()


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["submit", "--help"], ["status", "--help"], ["show", "--help"],
                 ["evaluate", "--help"], ["db", "--help"], ["db", "upgrade", "--help"],
                 ["db", "current", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage" in result.output, args
