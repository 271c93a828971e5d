"""Distance sources, combinations and the DistanceMatrix value type."""

from __future__ import annotations

import numpy as np
import pytest

from xlrun.errors import SpecError, UnknownLanguageError, UsageError
from xlrun.langsim import DistanceMatrix, distance_matrix, parse_combination, validate_source
from xlrun.langsim.uriel import URIEL_SETS, cosine_distances, resolve_code

BENCHMARKS = {
    "MLDR": "ar de en es fr hi it ja ko pt ru th zh",
    "XQuAD-R": "ar de el en es hi ru th tr vi zh",
    "MLQA-R": "ar de en es hi vi zh",
    "MIRACL": "ar bn en es fa fi fr hi id ja ko ru sw te th zh de yo",
}
BENCH_LANGS = sorted({code for codes in BENCHMARKS.values() for code in codes.split(" ")})


@pytest.mark.parametrize("source", [f"uriel:{s}" for s in URIEL_SETS] + ["script", "family"])
def test_symmetric_zero_diagonal_on_benchmark_languages(source: str) -> None:
    dm = distance_matrix(source, BENCH_LANGS)
    assert dm.langs == tuple(BENCH_LANGS)
    assert dm.values.dtype == np.float64
    assert np.allclose(dm.values, dm.values.T)
    assert np.all(np.diag(dm.values) == 0)
    assert np.all(dm.values >= 0)
    off = dm.values[~np.eye(len(BENCH_LANGS), dtype=bool)]
    assert off.max() > 0  # not a degenerate all-zero matrix


@pytest.mark.parametrize("source", ["uriel:syntax_knn", "uriel:fam"])
def test_spanish_closer_to_portuguese_than_chinese(source: str) -> None:
    dm = distance_matrix(source, ["es", "pt", "zh"])
    assert dm.get("es", "pt") < dm.get("es", "zh")


def test_fam_is_related_languages_close_and_isolate_far() -> None:
    dm = distance_matrix("uriel:fam", ["de", "nl", "eu", "ja"])
    assert dm.get("de", "nl") < 0.5
    assert dm.get("eu", "de") == pytest.approx(1.0)  # Basque: no family → nothing shared
    assert dm.get("eu", "ja") == pytest.approx(1.0)


def test_uriel_codes_resolve_to_populated_entries() -> None:
    assert resolve_code("ar", "syntax_knn") == "arb"
    assert resolve_code("zh", "fam") == "cmn"
    # nob has an empty family vector in URIEL: the macro-language code is used instead
    assert resolve_code("no", "fam") == "nor"
    assert resolve_code("lv", "fam") == "lav"


def test_script_source() -> None:
    dm = distance_matrix("script", ["en", "de", "ru", "el", "hi", "mr", "ar", "fa", "ja", "zh", "ko"])
    assert dm.get("en", "de") == 0.0
    assert dm.get("hi", "mr") == 0.0  # both Devanagari
    assert dm.get("ar", "fa") == 0.0  # both Arabic script
    assert dm.get("en", "ru") == 1.0
    assert dm.get("ru", "el") == 1.0
    assert dm.get("ja", "zh") == 1.0  # documented: Jpan and Hans count as different
    assert dm.get("ko", "zh") == 1.0


def test_family_source() -> None:
    dm = distance_matrix("family", ["en", "hi", "ar", "he", "eu"])
    assert dm.get("en", "hi") == 0.0
    assert dm.get("ar", "he") == 0.0
    assert dm.get("en", "ar") == 1.0
    assert dm.get("eu", "en") == 1.0


def test_combination_is_weighted_sum() -> None:
    langs = ["ar", "de", "en", "ru", "zh"]
    a = distance_matrix("uriel:syntax_knn", langs)
    b = distance_matrix("script", langs)
    c = distance_matrix("0.3*uriel:syntax_knn + 0.7*script", langs)
    assert np.allclose(c.values, 0.3 * a.values + 0.7 * b.values)
    d = distance_matrix("uriel:syntax_knn+script", langs)  # weight 1 when omitted
    assert np.allclose(d.values, a.values + b.values)
    assert c.source == "0.3*uriel:syntax_knn + 0.7*script"


def test_parse_combination_and_errors() -> None:
    assert parse_combination("0.5*uriel:syntax_knn+0.5*script") == [
        (0.5, "uriel:syntax_knn"), (0.5, "script")]
    with pytest.raises(SpecError, match="uriel:syntax_knn"):
        validate_source("uriel:nope")
    with pytest.raises(SpecError, match="unknown language-similarity source"):
        validate_source("0.5*typo+0.5*script")
    with pytest.raises(SpecError, match="not a number"):
        validate_source("x*script")
    with pytest.raises(SpecError, match="needs an argument"):
        validate_source("uriel")
    with pytest.raises(SpecError, match="manual"):
        validate_source("manual+script")
    with pytest.raises(UsageError, match="sampling.clusters"):
        distance_matrix("manual", ["en", "de"])


def test_iso639_3_codes_and_repeats() -> None:
    a = distance_matrix("uriel:syntax_knn", ["deu", "spa", "cmn", "arb", "de"])
    b = distance_matrix("uriel:syntax_knn", ["de", "es", "zh", "ar"])
    assert a.langs == ("de", "es", "zh", "ar")
    assert np.allclose(a.values, b.values)


def test_unknown_code_lists_nearest() -> None:
    with pytest.raises(UnknownLanguageError) as e:
        distance_matrix("script", ["en", "deu", "engl"])
    assert e.value.exit_code == 2
    assert "en" in e.value.suggestions


def test_distance_matrix_value_type() -> None:
    vals = np.array([[0.0, 0.2, 0.9], [0.2, 0.0, 0.5], [0.9, 0.5, 0.0]])
    dm = DistanceMatrix("test", ("de", "en", "zh"), vals)
    assert dm.get("deu", "zho") == pytest.approx(0.9)
    with pytest.raises(ValueError):
        dm.values[0, 1] = 3.0  # read-only
    rows = dm.rows()
    assert len(rows) == 6  # all ordered pairs a != b
    assert {"lang_a": "en", "lang_b": "de", "distance": 0.2} in rows
    assert len(dm.rows(ordered=False)) == 3
    assert all(r["source"] == "test" for r in dm.to_rows())
    frame = dm.to_frame()
    assert frame.columns == ["lang_a", "lang_b", "distance"] and frame.height == 6
    assert np.allclose(dm.condensed(), [0.2, 0.9, 0.5])
    sub = dm.subset(["zh", "de"])
    assert sub.langs == ("zh", "de") and sub.get("zh", "de") == pytest.approx(0.9)
    again = DistanceMatrix.from_dict(dm.to_dict())
    assert np.array_equal(again.values, dm.values) and again.langs == dm.langs
    assert dm.nearest("de", 1) == [("en", pytest.approx(0.2))]
    with pytest.raises(UsageError, match="not in this distance matrix"):
        dm.get("de", "fr")
    with pytest.raises(ValueError):
        DistanceMatrix("bad", ("de", "en"), np.zeros((3, 3)))


def test_cosine_distances_ignore_missing_features() -> None:
    x = np.array([[1.0, 0.0, np.nan], [1.0, np.nan, 5.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    d = cosine_distances(x)
    assert d[0, 1] == pytest.approx(0.0)  # only feature 0 known for both: identical
    assert d[0, 2] == pytest.approx(1.0)
    assert d[3, 0] == pytest.approx(1.0)  # all-zero row: nothing in common
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
