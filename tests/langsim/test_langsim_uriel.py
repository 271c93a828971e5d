"""URIEL reading: parity with lang2vec.get_features, missing-vector errors, caching."""

from __future__ import annotations

import numpy as np
import pytest

from xlrun.errors import UsageError
from xlrun.langsim import uriel
from xlrun.langsim.uriel import UrielSet, load_set, resolve_code, uriel_features

CODES = ["arb", "deu", "eng", "spa", "cmn", "hin", "jpn", "swh", "eus"]
LANGS = ["ar", "de", "en", "es", "zh", "hi", "ja", "sw", "eu"]


@pytest.mark.slow
@pytest.mark.parametrize("feature_set", ["syntax_knn", "geo", "fam"])
def test_fast_reader_matches_lang2vec_get_features(feature_set: str) -> None:
    # importing lang2vec takes ~5 s and get_features(..., 'fam') ~7 s more: hence slow
    ref = uriel.lang2vec_features(CODES, feature_set)
    ours = uriel_features(LANGS, feature_set)
    assert ref.shape == ours.shape
    assert np.array_equal(np.isnan(ref), np.isnan(ours))
    assert np.allclose(np.nan_to_num(ref), np.nan_to_num(ours))


def test_feature_sets_are_cached() -> None:
    assert load_set("syntax_knn") is load_set("syntax_knn")
    data = load_set("syntax_knn")
    assert all(f.startswith("S_") for f in data.features)
    assert data.values.dtype == np.float64


def test_unknown_set_lists_allowed() -> None:
    with pytest.raises(UsageError, match="uriel:syntax_knn"):
        uriel_features(["en"], "syntax_wals")


def test_language_without_usable_vector_names_language_and_set(monkeypatch) -> None:
    fake = UrielSet(name="syntax_knn", codes={"eng": 0, "deu": 1},
                    values=np.array([[1.0, 0.0], [np.nan, np.nan]]), features=("S_A", "S_B"))
    monkeypatch.setattr(uriel, "load_set", lambda _name: fake)
    assert resolve_code("en", "syntax_knn") == "eng"
    with pytest.raises(UsageError, match=r"'de'.*'syntax_knn'"):
        resolve_code("de", "syntax_knn")
    with pytest.raises(UsageError, match="'fr'"):  # not in URIEL at all
        resolve_code("fr", "syntax_knn")
