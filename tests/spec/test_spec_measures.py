"""``[[eval]] measures``: ir_measures names, validated with key paths, canonical in the run
key, neutral when absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_fixtures import BASE

from xlrun.errors import SpecError
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec


def runs(folder: Path, extra: str = "", grid: str = "seeds = [1]") -> list:
    text = BASE.replace('languages = ["en", "de"]', f'languages = ["en", "de"]\n{extra}')
    return compile_spec(parse_spec(text + "\n[grid]\n" + grid, base_dir=folder))


def test_names_become_canonical_and_enter_the_key_only_when_set(spec_dir: Path) -> None:
    plain = runs(spec_dir)[0]
    assert plain.config.eval[0].measures == []
    assert runs(spec_dir, "measures = []")[0].run_key == plain.run_key
    a = runs(spec_dir, 'measures = ["nDCG@10", "R@1000", "P.1,5"]')[0]
    b = runs(spec_dir, 'measures = ["ndcg_cut.10", "R@1000", "P@1", "P@5", "nDCG@10"]')[0]
    assert a.config.eval[0].measures == ["nDCG@10", "R@1000", "P@1", "P@5"]
    assert a.run_key == b.run_key != plain.run_key


def test_measures_can_be_a_grid_axis(spec_dir: Path) -> None:
    out = runs(spec_dir, grid='"eval.measures" = [["AP"], ["map", "NDCG@10"]]\nseeds = [1]')
    assert [r.config.eval[0].measures for r in out] == [["AP"], ["AP", "nDCG@10"]]


@pytest.mark.parametrize("value, path, needle", [
    ('["AP", "ndcg@10"]', "eval[0].measures[1]", "unknown measure"),
    ('["Judged@10"]', "eval[0].measures[0]", "judged non-relevant"),
    ('["P"]', "eval[0].measures[0]", "needs a cutoff"),
    ('["ERR@20"]', "eval[0].measures[0]", "does not compute"),
    ('"AP"', "eval[0].measures", "expected a list"),
    ("[10]", "eval[0].measures[0]", "expected a string"),
])
def test_bad_measures_name_the_key_path_and_what_is_supported(spec_dir: Path, value: str,
                                                              path: str, needle: str) -> None:
    with pytest.raises(SpecError) as e:
        runs(spec_dir, f"measures = {value}")
    text = str(e.value)
    assert path in text and needle in text, text
