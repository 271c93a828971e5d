"""Language codes: xlrun works with ISO 639-1 codes inside and converts at the edges.

:func:`normalize` accepts ISO 639-1 (``de``), ISO 639-3 (``deu``), ISO 639-2/B (``ger``)
and region-tagged forms (``pt-BR``, ``zh_Hans``) and returns the ISO 639-1 code. An unknown
code raises :class:`~xlrun.errors.UnknownLanguageError` listing the nearest known codes.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from xlrun.errors import UnknownLanguageError


@dataclass(frozen=True)
class Language:
    """One language: codes, English name, main writing system and family."""

    iso1: str
    iso3: str
    name: str
    script: str
    family: str
    iso2b: str | None = None


# iso1, iso3, name, script (ISO 15924), family (top level), iso639-2/B where it differs
_TABLE: list[tuple[str, str, str, str, str, str | None]] = [
    ("af", "afr", "Afrikaans", "Latn", "Indo-European", None),
    ("am", "amh", "Amharic", "Ethi", "Afro-Asiatic", None),
    ("ar", "arb", "Arabic", "Arab", "Afro-Asiatic", None),
    ("az", "aze", "Azerbaijani", "Latn", "Turkic", None),
    ("be", "bel", "Belarusian", "Cyrl", "Indo-European", None),
    ("bg", "bul", "Bulgarian", "Cyrl", "Indo-European", None),
    ("bn", "ben", "Bengali", "Beng", "Indo-European", None),
    ("ca", "cat", "Catalan", "Latn", "Indo-European", None),
    ("cs", "ces", "Czech", "Latn", "Indo-European", "cze"),
    ("cy", "cym", "Welsh", "Latn", "Indo-European", "wel"),
    ("da", "dan", "Danish", "Latn", "Indo-European", None),
    ("de", "deu", "German", "Latn", "Indo-European", "ger"),
    ("el", "ell", "Greek", "Grek", "Indo-European", "gre"),
    ("en", "eng", "English", "Latn", "Indo-European", None),
    ("es", "spa", "Spanish", "Latn", "Indo-European", None),
    ("et", "est", "Estonian", "Latn", "Uralic", None),
    ("eu", "eus", "Basque", "Latn", "Basque", "baq"),
    ("fa", "pes", "Persian", "Arab", "Indo-European", "per"),
    ("fi", "fin", "Finnish", "Latn", "Uralic", None),
    ("fr", "fra", "French", "Latn", "Indo-European", "fre"),
    ("ga", "gle", "Irish", "Latn", "Indo-European", None),
    ("gl", "glg", "Galician", "Latn", "Indo-European", None),
    ("gu", "guj", "Gujarati", "Gujr", "Indo-European", None),
    ("ha", "hau", "Hausa", "Latn", "Afro-Asiatic", None),
    ("he", "heb", "Hebrew", "Hebr", "Afro-Asiatic", None),
    ("hi", "hin", "Hindi", "Deva", "Indo-European", None),
    ("hr", "hrv", "Croatian", "Latn", "Indo-European", None),
    ("hu", "hun", "Hungarian", "Latn", "Uralic", None),
    ("hy", "hye", "Armenian", "Armn", "Indo-European", "arm"),
    ("id", "ind", "Indonesian", "Latn", "Austronesian", None),
    ("is", "isl", "Icelandic", "Latn", "Indo-European", "ice"),
    ("it", "ita", "Italian", "Latn", "Indo-European", None),
    ("ja", "jpn", "Japanese", "Jpan", "Japonic", None),
    ("jv", "jav", "Javanese", "Latn", "Austronesian", None),
    ("ka", "kat", "Georgian", "Geor", "Kartvelian", "geo"),
    ("kk", "kaz", "Kazakh", "Cyrl", "Turkic", None),
    ("km", "khm", "Khmer", "Khmr", "Austroasiatic", None),
    ("kn", "kan", "Kannada", "Knda", "Dravidian", None),
    ("ko", "kor", "Korean", "Kore", "Koreanic", None),
    ("lt", "lit", "Lithuanian", "Latn", "Indo-European", None),
    ("lv", "lvs", "Latvian", "Latn", "Indo-European", None),
    ("mk", "mkd", "Macedonian", "Cyrl", "Indo-European", "mac"),
    ("ml", "mal", "Malayalam", "Mlym", "Dravidian", None),
    ("mn", "khk", "Mongolian", "Cyrl", "Mongolic", None),
    ("mr", "mar", "Marathi", "Deva", "Indo-European", None),
    ("ms", "zsm", "Malay", "Latn", "Austronesian", "may"),
    ("my", "mya", "Burmese", "Mymr", "Sino-Tibetan", "bur"),
    ("ne", "npi", "Nepali", "Deva", "Indo-European", None),
    ("nl", "nld", "Dutch", "Latn", "Indo-European", "dut"),
    ("no", "nob", "Norwegian", "Latn", "Indo-European", None),
    ("pa", "pan", "Punjabi", "Guru", "Indo-European", None),
    ("pl", "pol", "Polish", "Latn", "Indo-European", None),
    ("pt", "por", "Portuguese", "Latn", "Indo-European", None),
    ("ro", "ron", "Romanian", "Latn", "Indo-European", "rum"),
    ("ru", "rus", "Russian", "Cyrl", "Indo-European", None),
    ("si", "sin", "Sinhala", "Sinh", "Indo-European", None),
    ("sk", "slk", "Slovak", "Latn", "Indo-European", "slo"),
    ("sl", "slv", "Slovenian", "Latn", "Indo-European", None),
    ("so", "som", "Somali", "Latn", "Afro-Asiatic", None),
    ("sq", "sqi", "Albanian", "Latn", "Indo-European", "alb"),
    ("sr", "srp", "Serbian", "Cyrl", "Indo-European", None),
    ("sv", "swe", "Swedish", "Latn", "Indo-European", None),
    ("sw", "swh", "Swahili", "Latn", "Niger-Congo", None),
    ("ta", "tam", "Tamil", "Taml", "Dravidian", None),
    ("te", "tel", "Telugu", "Telu", "Dravidian", None),
    ("th", "tha", "Thai", "Thai", "Tai-Kadai", None),
    ("tl", "tgl", "Tagalog", "Latn", "Austronesian", None),
    ("tr", "tur", "Turkish", "Latn", "Turkic", None),
    ("uk", "ukr", "Ukrainian", "Cyrl", "Indo-European", None),
    ("ur", "urd", "Urdu", "Arab", "Indo-European", None),
    ("uz", "uzn", "Uzbek", "Latn", "Turkic", None),
    ("vi", "vie", "Vietnamese", "Latn", "Austroasiatic", None),
    ("xh", "xho", "Xhosa", "Latn", "Niger-Congo", None),
    ("yo", "yor", "Yoruba", "Latn", "Niger-Congo", None),
    ("zh", "cmn", "Chinese", "Hans", "Sino-Tibetan", "chi"),
    ("zu", "zul", "Zulu", "Latn", "Niger-Congo", None),
]

LANGUAGES: dict[str, Language] = {
    row[0]: Language(iso1=row[0], iso3=row[1], name=row[2], script=row[3], family=row[4],
                     iso2b=row[5])
    for row in _TABLE
}

# Macro-language and alternative ISO 639-3 codes that also map to a 639-1 code.
_EXTRA_ALIASES = {
    "ara": "ar", "zho": "zh", "fas": "fa", "msa": "ms", "swa": "sw", "nor": "no",
    "lav": "lv", "mon": "mn", "nep": "ne", "uzb": "uz", "kor": "ko", "ell": "el",
    "yue": "zh", "hbs": "sr", "nno": "no", "tgl": "tl", "fil": "tl",
}

_ALIASES: dict[str, str] = {}
for _lang in LANGUAGES.values():
    _ALIASES[_lang.iso1] = _lang.iso1
    _ALIASES[_lang.iso3] = _lang.iso1
    if _lang.iso2b:
        _ALIASES[_lang.iso2b] = _lang.iso1
_ALIASES.update(_EXTRA_ALIASES)


def known_codes() -> list[str]:
    """All ISO 639-1 codes xlrun knows, sorted."""
    return sorted(LANGUAGES)


def suggest(code: str, n: int = 5) -> list[str]:
    """The known ISO 639-1 codes nearest to ``code`` (by spelling and by name)."""
    c = code.strip().lower()
    by_name = [lang.iso1 for lang in LANGUAGES.values() if lang.name.lower().startswith(c)] if c else []
    close = difflib.get_close_matches(c, list(_ALIASES), n=n * 2, cutoff=0.5)
    out: list[str] = []
    for item in by_name + [_ALIASES[m] for m in close]:
        if item not in out:
            out.append(item)
    if len(out) < n and c:
        out += [k for k in known_codes() if k[0] == c[0] and k not in out]
    return out[:n]


def normalize(code: str, where: str | None = None) -> str:
    """Return the ISO 639-1 code for ``code`` (639-1, 639-3, 639-2/B, or region-tagged).

    Raises:
        UnknownLanguageError: ``code`` is not known; the message lists the nearest codes.
    """
    if not isinstance(code, str):
        raise UnknownLanguageError(repr(code), [], where)
    c = code.strip().lower().replace("_", "-").split("-")[0]
    if c in _ALIASES:
        return _ALIASES[c]
    raise UnknownLanguageError(code, suggest(c), where)


def normalize_all(codes: list[str] | tuple[str, ...], where: str | None = None) -> list[str]:
    """Normalise a list of codes, keeping order and dropping repeats."""
    out: list[str] = []
    for i, code in enumerate(codes):
        iso = normalize(code, f"{where}[{i}]" if where else None)
        if iso not in out:
            out.append(iso)
    return out


def to_iso3(code: str) -> str:
    """ISO 639-3 code (as URIEL/lang2vec use it) for a 639-1 or 639-3 code."""
    return LANGUAGES[normalize(code)].iso3


def script_of(code: str) -> str:
    """ISO 15924 code of the language's main writing system."""
    return LANGUAGES[normalize(code)].script
