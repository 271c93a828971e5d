"""Language codes: the scheme (ISO 639-1, else 639-3, with a script subtag for a variant in
another script), the forms :func:`normalize` accepts, and the table's facts against URIEL."""

from __future__ import annotations

import numpy as np
import pytest

from xlrun.errors import UnknownLanguageError
from xlrun.languages import LANGUAGES, VARIANTS, known_codes, normalize, script_of, to_iso3

XLRUN_0_1 = (
    "af", "am", "ar", "az", "be", "bg", "bn", "ca", "cs", "cy", "da", "de", "el", "en", "es",
    "et", "eu", "fa", "fi", "fr", "ga", "gl", "gu", "ha", "he", "hi", "hr", "hu", "hy", "id",
    "is", "it", "ja", "jv", "ka", "kk", "km", "kn", "ko", "lt", "lv", "mk", "ml", "mn", "mr",
    "ms", "my", "ne", "nl", "no", "pa", "pl", "pt", "ro", "ru", "si", "sk", "sl", "so", "sq",
    "sr", "sv", "sw", "ta", "te", "th", "tl", "tr", "uk", "ur", "uz", "vi", "xh", "yo", "zh",
    "zu"
)


def test_the_codes_of_xlrun_0_1_are_unchanged() -> None:
    for code in XLRUN_0_1:
        assert normalize(code) == code and normalize(LANGUAGES[code].iso3) == code


@pytest.mark.parametrize("given, code", [
    ("deu_Latn", "de"), ("DEU", "de"), ("ger", "de"), ("pt-BR", "pt"),
    ("arb_Arab", "ar"), ("arb_Latn", "ar-Latn"), ("acm_Arab", "acm"), ("arz", "arz"),
    ("ben_Beng", "bn"), ("ben_Latn", "bn-Latn"), ("bn-latn", "bn-Latn"), ("bn-Latn", "bn-Latn"),
    ("zho_Hans", "zh"), ("cmn", "zh"), ("zho_Hant", "zh-Hant"), ("zh-Hant-TW", "zh-Hant"),
    ("yue", "yue"), ("wuu", "wuu"), ("nob", "no"), ("nb", "no"), ("nno", "nn"),
    ("kor_Hang", "ko"), ("sr-Latn", "sr"), ("ast", "ast"), ("ber", "ber"), ("kur", "ku"),
    ("npi_Latn", "ne-Latn"), ("khk_Cyrl", "mn"), ("gaz_Latn", "om"), ("yid", "yi"),
])
def test_normalize_maps_every_form_to_one_code(given: str, code: str) -> None:
    assert normalize(given) == code


def test_codes_fit_the_database_and_variants_keep_their_language() -> None:
    assert all(len(c) <= 8 for c in known_codes())
    for variant, base in VARIANTS.items():
        lang, script = variant.split("-")
        assert lang == base and script_of(variant) == script != script_of(base)
        assert to_iso3(variant) == to_iso3(base)
        assert LANGUAGES[variant].family == LANGUAGES[base].family


def test_unknown_codes_suggest_near_ones() -> None:
    with pytest.raises(UnknownLanguageError, match="nearest known codes"):
        normalize("xqz_Latn")


def test_families_agree_with_urielS_family_tree() -> None:
    """Each family in the table is one of the language's URIEL ``fam`` clades (Glottolog
    names: Atlantic-Congo for Niger-Congo, Artificial Language for constructed ones)."""
    from xlrun.langsim.uriel import candidate_codes, load_set

    fam = load_set("fam")
    alias = {"Niger-Congo": "Atlantic-Congo", "Constructed": "Artificial Language"}
    checked = 0
    for code, lang in LANGUAGES.items():
        for c in candidate_codes(code):
            vec = fam.values[fam.codes[c]] if c in fam.codes else np.zeros(0)
            clades = {fam.features[i][2:] for i in np.flatnonzero(vec > 0)}
            if clades:
                assert alias.get(lang.family, lang.family) in clades, (code, lang.family)
                checked += 1
                break
    assert checked >= len(LANGUAGES) - 8
