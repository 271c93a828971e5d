"""Parsing and validating specs: types, defaults, key paths in errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_fixtures import BASE, write_spec

from xlrun.errors import SpecError
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import load_spec, parse_spec
from xlrun.spec.schema import RunConfig


def compile_text(text: str, folder: Path) -> list:
    return compile_spec(parse_spec(text, base_dir=folder))


def test_base_spec_parses_with_defaults(spec_dir: Path) -> None:
    spec = load_spec(write_spec(spec_dir, BASE))
    assert spec.experiment.name == "t"
    assert isinstance(spec.base, RunConfig)
    assert spec.base.sampling.mono_ratio == 0.5
    assert spec.base.eval[0].settings == ["mono", "cross", "multi"]
    assert spec.base.train_data.path == str(spec_dir / "train.jsonl")  # resolved to the spec folder
    assert spec.base.model.name == "quickstart:tiny"  # not a path: left alone


def test_int_is_accepted_for_float(spec_dir: Path) -> None:
    spec = parse_spec(BASE.replace("steps = 5", "steps = 5\nlr = 1"), base_dir=spec_dir)
    assert spec.base.train.lr == 1.0 and isinstance(spec.base.train.lr, float)


@pytest.mark.parametrize("edit, path, needle", [
    (("batch_size = 4", "batch_size = 4\nbatchsize = 3"), "train.batchsize", "unknown key"),
    (("steps = 5", 'steps = "five"'), "train.steps", "expected an integer"),
    (('strategy = "hybrid"', 'strategy = "zigzag"'), "sampling.strategy", "unknown sampler"),
    (('languages = ["en", "de"]', 'languages = ["en", "xx"]'), "eval[0].languages[1]",
     "unknown language code"),
    (('path = "train.jsonl"', 'path = "missing.jsonl"'), "train_data.path", "not found"),
    (('dataset = "local"', 'dataset = "nope"'), "eval[0].dataset", "unknown evaluation dataset"),
    (("[train]", "[trian]"), "trian", "unknown section"),
    (('language_sampling = "size"', 'language_sampling = "size"\nmono_ratio = 1.5'),
     "sampling.mono_ratio", "within [0, 1]"),
    (('path = "evaldir"', 'path = "evaldir"\nrevision = "abc123"'), "eval[0].revision",
     "means nothing"),
    (('path = "train.jsonl"', 'path = "train.jsonl"\nrevision = "abc123"'),
     "train_data.revision", "only to source 'hf'"),
    (('name = "quickstart:tiny"', 'name = "quickstart:tiny"\npooling = "first"'),
     "model.pooling", "lasttoken, weightedmean"),
    (('name = "quickstart:tiny"', 'name = "quickstart:tiny"\nquery_max_length = 0'),
     "model.query_max_length", "must be 1 or more"),
    (('name = "quickstart:tiny"', 'name = "quickstart:tiny"\nquery_prefix = 3'),
     "model.query_prefix", "expected a string"),
    (('name = "quickstart:tiny"',
      'name = "quickstart:tiny"\npassage_prefix = "p: "\npassage_prompt_name = "document"'),
     "model.passage_prompt_name", "not both"),
])
def test_bad_values_name_key_path_and_allowed(spec_dir: Path, edit: tuple[str, str], path: str,
                                              needle: str) -> None:
    text = BASE.replace(*edit)
    assert text != BASE
    with pytest.raises(SpecError) as err:
        compile_text(text, spec_dir)
    assert err.value.path == path
    assert needle in str(err.value)
    assert err.value.exit_code == 2


def test_unknown_sampler_lists_known(spec_dir: Path) -> None:
    with pytest.raises(SpecError) as err:
        compile_text(BASE.replace('strategy = "hybrid"', 'strategy = "zigzag"'), spec_dir)
    for name in ("monolingual", "cross_lingual", "hybrid", "multilingual"):
        assert name in str(err.value)


def test_unknown_language_suggests_nearest(spec_dir: Path) -> None:
    # 639-3 'deu', 639-2/B 'gre' and region tags are accepted and normalised to 639-1
    runs = compile_text(BASE.replace('["en", "de"]', '["en", "deu", "gre", "pt-BR"]'), spec_dir)
    assert runs[0].config.eval[0].languages == ["en", "de", "el", "pt"]
    with pytest.raises(SpecError) as err:
        compile_text(BASE.replace('["en", "de"]', '["en", "ess"]'), spec_dir)
    assert "es" in str(err.value)


def test_env_interpolation(spec_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLRUN_TEST_DATA", str(spec_dir / "train.jsonl"))
    spec = parse_spec(BASE.replace('path = "train.jsonl"', 'path = "${XLRUN_TEST_DATA}"'),
                      base_dir=spec_dir)
    assert spec.base.train_data.path == str(spec_dir / "train.jsonl")
    monkeypatch.delenv("XLRUN_TEST_DATA")
    with pytest.raises(SpecError) as err:
        parse_spec(BASE.replace('path = "train.jsonl"', 'path = "${XLRUN_TEST_DATA}"'),
                   base_dir=spec_dir)
    assert err.value.path == "train_data.path" and "XLRUN_TEST_DATA" in str(err.value)
    spec = parse_spec(BASE.replace('path = "train.jsonl"',
                                   'path = "${XLRUN_TEST_DATA:-train.jsonl}"'), base_dir=spec_dir)
    assert spec.base.train_data.path == str(spec_dir / "train.jsonl")


def test_missing_required(spec_dir: Path) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(BASE.replace('name = "quickstart:tiny"', ""), base_dir=spec_dir)
    assert err.value.path == "model.name"


def test_invalid_toml(spec_dir: Path) -> None:
    with pytest.raises(SpecError, match="not valid TOML"):
        parse_spec("[experiment\nname=", base_dir=spec_dir)


def test_manual_clusters_validated(spec_dir: Path) -> None:
    text = BASE.replace('language_sampling = "size"',
                        'language_sampling = "clustered"\nclusters = [["en", "de"], ["de"]]')
    with pytest.raises(SpecError) as err:
        compile_text(text, spec_dir)
    assert err.value.path == "sampling.clusters[1]" and "already in cluster 0" in str(err.value)
    text = BASE.replace('language_sampling = "size"', 'language_sampling = "clustered"')
    with pytest.raises(SpecError) as err:
        compile_text(text, spec_dir)
    assert err.value.path == "sampling.clusters"


QS = """
[experiment]
name = "v"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
languages = ["en", "de", "ru"]
[train]
steps = 3
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
"""


@pytest.mark.parametrize("edit, path, needle", [
    (('languages = ["en", "de"]', 'languages = ["en", "ja"]'), "eval[0].languages[1]",
     "has no language 'ja'"),
    (('dataset = "quickstart"', 'dataset = "quickstart"\nbatch_size = 0'), "eval[0].batch_size",
     "1 or more"),
    (('dataset = "quickstart"', 'dataset = "quickstart"\nsplit = "bogus"'), "eval[0].split",
     "no such split"),
    (('dataset = "quickstart"', 'dataset = "quickstart"\nsettings = ["mono", "mono"]'),
     "eval[0].settings", "named twice"),
    (("batch_size = 4", "batch_size = 4\nlog_every = 0"), "train.log_every", "1 or more"),
    (("batch_size = 4", "batch_size = 4\nhard_negatives = -2"), "train.hard_negatives",
     "0 or more"),
    (("[train]", '[sampling]\nlanguage_sampling = "clustered"\nsimilarity = "script"\n'
                 "n_clusters = 5\n[train]"), "sampling.n_clusters", "more clusters"),
    (("[train]", "[executor]\nheartbeat_s = 30\nstale_after_s = 40\n[train]"),
     "executor.stale_after_s", "twice"),
])
def test_values_that_would_fail_after_training_fail_at_submit(
        tmp_path: Path, edit: tuple[str, str], path: str, needle: str) -> None:
    text = QS.replace(*edit)
    assert text != QS
    with pytest.raises(SpecError) as err:
        compile_text(text, tmp_path)
    assert err.value.path == path and needle in str(err.value), str(err.value)


def test_model_fields_left_out_are_unset(spec_dir: Path) -> None:
    """Unset [model] values mean "what the model declares, else xlrun's default"."""
    model = parse_spec(BASE, base_dir=spec_dir).base.model
    assert (model.pooling, model.query_prefix, model.query_max_length, model.include_prompt) == (
        None, None, None, None)
    text = BASE.replace('name = "quickstart:tiny"', 'name = "quickstart:tiny"\n'
                        'pooling = "lasttoken"\nquery_prefix = ""\ninclude_prompt = false')
    model = parse_spec(text, base_dir=spec_dir).base.model
    assert (model.pooling, model.query_prefix, model.include_prompt) == ("lasttoken", "", False)
