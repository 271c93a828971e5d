"""Grid expansion, zipped axes, seeds and stable run keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_fixtures import BASE

from xlrun.errors import SpecError
from xlrun.spec.grid import compile_spec, run_key
from xlrun.spec.load import parse_spec


def runs_for(grid: str, folder: Path, base: str = BASE) -> list:
    return compile_spec(parse_spec(base + "\n[grid]\n" + grid, base_dir=folder))


def test_cartesian_product_and_seeds(spec_dir: Path) -> None:
    runs = runs_for('"sampling.strategy" = ["hybrid", "monolingual"]\n'
                    '"train.lr" = [1e-5, 2e-5, 3e-5]\nseeds = [1, 2]', spec_dir)
    assert len(runs) == 2 * 3 * 2
    combos = {(r.config.sampling.strategy, r.config.train.lr, r.seed) for r in runs}
    assert len(combos) == 12
    assert len({r.run_key for r in runs}) == 12


def test_zip_moves_axes_together(spec_dir: Path) -> None:
    runs = runs_for('"sampling.strategy" = ["hybrid", "monolingual", "hybrid"]\n'
                    '"sampling.mono_ratio" = [0.5, 1.0, 0.2]\n'
                    '"train.lr" = [1e-5, 2e-5]\n'
                    'zip = [["sampling.strategy", "sampling.mono_ratio"]]', spec_dir)
    assert len(runs) == 3 * 2
    pairs = {(r.config.sampling.strategy, r.config.sampling.mono_ratio) for r in runs}
    # mono_ratio means nothing to the monolingual sampler: it is reset to its default
    assert pairs == {("hybrid", 0.5), ("monolingual", 0.5), ("hybrid", 0.2)}


def test_nested_table_form(spec_dir: Path) -> None:
    runs = runs_for('[grid.sampling]\nstrategy = ["hybrid", "monolingual"]', spec_dir)
    assert {r.config.sampling.strategy for r in runs} == {"hybrid", "monolingual"}


def test_eval_axes(spec_dir: Path) -> None:
    runs = runs_for('"eval.top_k" = [0, 10]', spec_dir)
    assert sorted(r.config.eval[0].top_k for r in runs) == [0, 10]


def test_run_key_stable_and_sensitive(spec_dir: Path) -> None:
    a = runs_for("seeds = [1, 2]", spec_dir)
    b = runs_for("seeds = [1, 2]", spec_dir)
    assert [r.run_key for r in a] == [r.run_key for r in b]
    c = runs_for("seeds = [1, 2]", spec_dir, BASE.replace("steps = 5", "steps = 6"))
    assert not {r.run_key for r in a} & {r.run_key for r in c}
    # editing one grid value adds exactly one new run
    d = runs_for("seeds = [1, 3]", spec_dir)
    assert len({r.run_key for r in a} & {r.run_key for r in d}) == 1
    assert run_key(a[0].config, spec_dir) == a[0].run_key


def test_untrained_runs_collapse(spec_dir: Path) -> None:
    """Zero training steps: sampler, seed and training data cannot matter, so one run."""
    runs = runs_for('"train.steps" = [0]\n"sampling.strategy" = ["hybrid", "monolingual"]\n'
                    "seeds = [1, 2, 3]", spec_dir)
    assert len(runs) == 1
    assert runs[0].config.sampler == "none"


@pytest.mark.parametrize("grid, path", [
    ('"sampling.stratgy" = ["hybrid"]', "grid.sampling.stratgy"),
    ('"train.steps" = ["many"]', "grid.train.steps[0]"),
    ('"train.steps" = []', "grid.train.steps"),
    ('"sampling.strategy" = ["hybrid"]\n"train.lr" = [1e-5, 2e-5]\n'
     'zip = [["sampling.strategy", "train.lr"]]', "grid.zip[0]"),
    ('zip = [["train.lr"]]', "grid.zip[0]"),
    ('"sampling.mono_ratio" = [0.5, 2.0]', "sampling.mono_ratio"),
])
def test_bad_grids(spec_dir: Path, grid: str, path: str) -> None:
    with pytest.raises(SpecError) as err:
        runs_for(grid, spec_dir)
    assert err.value.path == path


def test_grid_paths_resolve_against_the_spec_folder(spec_dir: Path) -> None:
    (spec_dir / "other.jsonl").write_text('{"query": "q", "passage": "p", "lang": "en"}\n')
    runs = runs_for('"train_data.path" = ["train.jsonl", "other.jsonl"]', spec_dir)
    assert sorted(r.config.train_data.path for r in runs) == [
        str(spec_dir / "other.jsonl"), str(spec_dir / "train.jsonl")]


def test_unused_sampling_fields_do_not_split_runs(spec_dir: Path) -> None:
    runs = runs_for('"sampling.language_sampling" = ["size", "clustered"]\n'
                    '"sampling.pairing" = ["within", "across"]\n'
                    '"sampling.clusters" = [[["en"], ["de"]]]', spec_dir)
    # size × {within, across} is one run; clustered × {within, across} are two
    assert sorted(r.config.clustering or "-" for r in runs) == [
        "-", "manual/across", "manual/within"]


def test_run_keys_survive_moving_the_project(tmp_path: Path) -> None:
    import shutil

    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "train.jsonl").write_text('{"query": "q", "passage": "p", "lang": "en"}\n')
        (folder / "evaldir").mkdir()
    keys = [[r.run_key for r in runs_for("seeds = [1, 2]", f)] for f in (a, b)]
    assert keys[0] == keys[1]
    shutil.rmtree(b)


MLDR_EVAL = 'dataset = "mldr"\nlanguages = ["en", "de"]'
LOCAL_EVAL = 'dataset = "local"\npath = "evaldir"\nlanguages = ["en", "de"]'


def test_run_keys_unchanged_by_fields_added_later(spec_dir: Path) -> None:
    """Keys issued before a config field existed stay the same when it is at its default
    (golden keys computed with xlrun before ``revision`` was added), so upgrading xlrun
    never turns finished runs into new ones."""
    assert [r.run_key for r in runs_for("seeds = [1, 2]", spec_dir)] == [
        "af4ca4f10cca3155", "acf740c37f0bec3d"]
    mldr = BASE.replace(LOCAL_EVAL, MLDR_EVAL)
    assert mldr != BASE
    assert [r.run_key for r in runs_for("seeds = [1]", spec_dir, mldr)] == ["2315e286dfd8e45d"]
    pinned = mldr.replace(MLDR_EVAL, MLDR_EVAL + '\nrevision = "0123abcd"')
    pinned_runs = runs_for("seeds = [1]", spec_dir, pinned)
    assert pinned_runs[0].config.eval[0].revision == "0123abcd"
    assert pinned_runs[0].run_key != "2315e286dfd8e45d"  # a pinned revision is a different run


CLUSTERED = BASE.replace('language_sampling = "size"', 'language_sampling = "clustered"\n'
                         'similarity = "script"\nn_clusters = 2\npairing = "across"')


def clustered(*lines: str) -> str:
    """The clustered spec with more ``[sampling]`` lines."""
    return CLUSTERED.replace('pairing = "across"', "\n".join(['pairing = "across"', *lines]))


def test_exposure_and_schedule_keys(spec_dir: Path) -> None:
    """Clustered runs issued before ``exposure`` existed trained what is now ``exposure =
    "free"``: those keep their keys (golden keys from xlrun before the field); matched
    clustered runs and exact schedules are new runs; unclustered runs ignore ``exposure``."""
    old = ["96f45a016ec86f82", "d59fd1acdacb74eb"]
    free = clustered('exposure = "free"')
    assert [r.run_key for r in runs_for("seeds = [1, 2]", spec_dir, free)] == old
    matched = runs_for("seeds = [1, 2]", spec_dir, CLUSTERED)
    assert matched[0].config.sampling.exposure == "matched"
    assert not {r.run_key for r in matched} & set(old)
    exact = runs_for("seeds = [1, 2]", spec_dir, clustered('exposure = "free"',
                                                          'schedule = "exact"'))
    assert not {r.run_key for r in exact} & set(old)
    for exposure in ("free", "matched"):
        plain = BASE.replace('language_sampling = "size"',
                             f'language_sampling = "size"\nexposure = "{exposure}"')
        assert [r.run_key for r in runs_for("seeds = [1, 2]", spec_dir, plain)] == [
            "af4ca4f10cca3155", "acf740c37f0bec3d"]


def test_min_cluster_size_is_part_of_the_clustering(spec_dir: Path) -> None:
    runs = runs_for('"sampling.min_cluster_size" = [0, 1, 2]', spec_dir, CLUSTERED)
    assert len(runs) == 2  # a minimum of 1 is no minimum
    labels = sorted(r.config.clustering for r in runs)
    assert labels == ["script/k=2/average/across", "script/k=2/average/min=2/across"]
    free = runs_for("", spec_dir, clustered('exposure = "free"'))
    assert free[0].config.clustering == "script/k=2/average/across/free"
    with pytest.raises(SpecError, match=r"sampling\.min_cluster_size"):
        runs_for("", spec_dir, clustered("min_cluster_size = -1"))
    with pytest.raises(SpecError, match=r"sampling\.exposure.*matched.*free"):
        runs_for("", spec_dir, clustered('exposure = "equal"'))
    with pytest.raises(SpecError, match=r"sampling\.schedule.*random.*exact"):
        runs_for("", spec_dir, clustered('schedule = "fixed"'))
    with pytest.raises(SpecError, match=r"sampling\.exposure_tolerance.*\[0, 0\.1\]"):
        runs_for("", spec_dir, clustered("exposure_tolerance = 0.5"))
    loose = runs_for("", spec_dir, clustered("exposure_tolerance = 0.01"))
    assert loose[0].run_key != runs_for("", spec_dir, CLUSTERED)[0].run_key
def test_model_settings_left_out_keep_their_old_keys(spec_dir: Path) -> None:
    """[model] pooling, prefixes and lengths are unset unless a spec sets them (the model's
    own values apply); unset is hashed as the old defaults, so specs that wrote those
    defaults, and specs that never set them, keep their keys. New fields enter the key only
    when set."""
    golden = "af4ca4f10cca3155"
    explicit = BASE.replace('name = "quickstart:tiny"', 'name = "quickstart:tiny"\n'
                            'pooling = "mean"\nquery_prefix = ""\npassage_prefix = ""\n'
                            'query_max_length = 64\npassage_max_length = 256')
    assert runs_for("seeds = [1]", spec_dir, explicit)[0].run_key == golden
    assert runs_for("seeds = [1]", spec_dir)[0].run_key == golden
    for extra in ('pooling = "cls"', 'query_prefix = "query: "', "query_max_length = 32",
                  "include_prompt = false", 'query_prompt_name = "query"'):
        text = BASE.replace('name = "quickstart:tiny"', f'name = "quickstart:tiny"\n{extra}')
        assert runs_for("seeds = [1]", spec_dir, text)[0].run_key != golden, extra
