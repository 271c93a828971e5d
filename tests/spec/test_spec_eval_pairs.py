"""``[[eval]] pairs``: the cross setting's language pairs, checked and normalised at submit."""

from __future__ import annotations

from pathlib import Path

import pytest
from spec_fixtures import BASE

from xlrun.errors import SpecError
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec


def _compile(extra: str, folder: Path, settings: str = "") -> list:
    text = BASE.replace('languages = ["en", "de"]\n',
                        f'languages = ["en", "de", "bn_Latn"]\n{settings}{extra}\n')
    return compile_spec(parse_spec(text, base_dir=folder))


def test_pairs_are_normalised_and_leave_run_keys_alone(spec_dir: Path) -> None:
    runs = _compile('pairs = [["deu", "*"], ["ben_Latn", "en"], ["de", "*"]]', spec_dir)
    e = runs[0].config.eval[0]
    assert e.languages == ["en", "de", "bn-Latn"]
    assert e.pairs == [["de", "*"], ["bn-Latn", "en"]]
    assert _compile("pairs = []", spec_dir)[0].run_key == _compile("", spec_dir)[0].run_key
    assert runs[0].run_key != _compile("", spec_dir)[0].run_key


@pytest.mark.parametrize("extra, settings, needle", [
    ('pairs = [["de"]]', "", "a pair is [query language, document language]"),
    ('pairs = [["de", "de"]]', "", "the mono setting"),
    ('pairs = [["de", "fr"]]', "", "not in eval[0].languages"),
    ('pairs = [["de", "xx"]]', "", "unknown language code"),
    ('pairs = [["de", "en"]]', 'settings = ["mono"]\n', "leaves out 'cross'"),
])
def test_bad_pairs_name_the_key_path(spec_dir: Path, extra: str, settings: str,
                                     needle: str) -> None:
    with pytest.raises(SpecError) as err:
        _compile(extra, spec_dir, settings)
    assert "eval[0].pairs" in str(err.value) and needle in str(err.value)
