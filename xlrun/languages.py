"""Language codes: xlrun works with one code per language inside and converts at the edges.

**The code scheme.** A language's xlrun code is its ISO 639-1 code where it has one (``de``),
else its ISO 639-3 code (``ast``, ``ceb``, ``arz``; Tatoeba's Berber is the ISO 639-5 group
``ber``). An individual language that is the standard form of a macro-language takes the
macro-language's 639-1 code (``arb`` → ``ar``, ``cmn`` → ``zh``, ``pes`` → ``fa``, ``zsm`` →
``ms``, ``npi`` → ``ne``, ``swh`` → ``sw``); its sister varieties keep their own 639-3 codes
(``acm``, ``apc``, ``ary``, ``arz`` are not ``ar``; ``yue`` and ``wuu`` are not ``zh``). A
written variant in a script other than the language's main one carries a BCP 47 script
subtag: ``bn-Latn`` (Belebele's ``ben_Latn``), ``zh-Hant`` (``zho_Hant``), ``hi-Latn``,
``ar-Latn``. Codes are at most 8 characters (``acm-Arab`` would be the longest), the width
of the database's language columns. The codes of the first 76 languages are those of xlrun
0.1, unchanged.

:func:`normalize` accepts ISO 639-1 (``de``), ISO 639-3 (``deu``), ISO 639-2/B (``ger``),
FLORES-200 codes (``deu_Latn``, ``zho_Hant``) and tags with a script or region (``pt-BR``,
``zh-Hant-TW``) and returns the xlrun code: a region is dropped; a script subtag is kept
when it is not the language's main script and xlrun knows that variant (:data:`VARIANTS`),
else dropped (``sr-Latn`` → ``sr``, as before). An unknown code raises
:class:`~xlrun.errors.UnknownLanguageError` listing the nearest known codes.

A variant has the typology of its language (``bn-Latn`` uses Bengali's URIEL vectors, its
family is Bengali's) and its own script (``script`` distance 1 from ``bn``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from xlrun.errors import UnknownLanguageError


@dataclass(frozen=True)
class Language:
    """One language: codes, English name, main writing system and family."""

    iso1: str
    """The xlrun code (ISO 639-1 where there is one; see the module docstring)."""
    iso3: str
    """ISO 639-3 code: the first code tried in URIEL (:mod:`xlrun.langsim.uriel`)."""
    name: str
    script: str
    family: str
    iso2b: str | None = None

    @property
    def code(self) -> str:
        """The xlrun code (the same as :attr:`iso1`, which keeps its historical name)."""
        return self.iso1


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
    # languages of Tatoeba (LASER) and Belebele beyond those above: ISO 639-1 where it exists,
    # else the ISO 639-3 code (``ber``: the ISO 639-5 group code Tatoeba uses); families as
    # Glottolog (and so URIEL's ``fam`` set) give them, creoles under their lexifier's family
    ("acm", "acm", "Mesopotamian Arabic", "Arab", "Afro-Asiatic", None),
    ("ang", "ang", "Old English", "Latn", "Indo-European", None),
    ("apc", "apc", "Levantine Arabic", "Arab", "Afro-Asiatic", None),
    ("arq", "arq", "Algerian Arabic", "Arab", "Afro-Asiatic", None),
    ("ars", "ars", "Najdi Arabic", "Arab", "Afro-Asiatic", None),
    ("ary", "ary", "Moroccan Arabic", "Arab", "Afro-Asiatic", None),
    ("arz", "arz", "Egyptian Arabic", "Arab", "Afro-Asiatic", None),
    ("as", "asm", "Assamese", "Beng", "Indo-European", None),
    ("ast", "ast", "Asturian", "Latn", "Indo-European", None),
    ("awa", "awa", "Awadhi", "Deva", "Indo-European", None),
    ("ber", "ber", "Berber", "Latn", "Afro-Asiatic", None),
    ("bm", "bam", "Bambara", "Latn", "Mande", None),
    ("bo", "bod", "Tibetan", "Tibt", "Sino-Tibetan", "tib"),
    ("br", "bre", "Breton", "Latn", "Indo-European", None),
    ("bs", "bos", "Bosnian", "Latn", "Indo-European", None),
    ("cbk", "cbk", "Chavacano", "Latn", "Indo-European", None),
    ("ceb", "ceb", "Cebuano", "Latn", "Austronesian", None),
    ("ch", "cha", "Chamorro", "Latn", "Austronesian", None),
    ("ckb", "ckb", "Central Kurdish", "Arab", "Indo-European", None),
    ("csb", "csb", "Kashubian", "Latn", "Indo-European", None),
    ("dsb", "dsb", "Lower Sorbian", "Latn", "Indo-European", None),
    ("dtp", "dtp", "Kadazan Dusun", "Latn", "Austronesian", None),
    ("eo", "epo", "Esperanto", "Latn", "Constructed", None),
    ("ff", "fuv", "Fula (Nigerian Fulfulde)", "Latn", "Niger-Congo", None),
    ("fo", "fao", "Faroese", "Latn", "Indo-European", None),
    ("fy", "fry", "Western Frisian", "Latn", "Indo-European", None),
    ("gd", "gla", "Scottish Gaelic", "Latn", "Indo-European", None),
    ("gn", "grn", "Guarani", "Latn", "Tupian", None),
    ("gsw", "gsw", "Swiss German", "Latn", "Indo-European", None),
    ("hsb", "hsb", "Upper Sorbian", "Latn", "Indo-European", None),
    ("ht", "hat", "Haitian Creole", "Latn", "Indo-European", None),
    ("ia", "ina", "Interlingua", "Latn", "Constructed", None),
    ("ie", "ile", "Interlingue", "Latn", "Constructed", None),
    ("ig", "ibo", "Igbo", "Latn", "Niger-Congo", None),
    ("ilo", "ilo", "Ilocano", "Latn", "Austronesian", None),
    ("io", "ido", "Ido", "Latn", "Constructed", None),
    ("kab", "kab", "Kabyle", "Latn", "Afro-Asiatic", None),
    ("kac", "kac", "Jingpho", "Latn", "Sino-Tibetan", None),
    ("kea", "kea", "Kabuverdianu", "Latn", "Indo-European", None),
    ("ku", "kmr", "Kurdish (Kurmanji)", "Latn", "Indo-European", None),
    ("kw", "cor", "Cornish", "Latn", "Indo-European", None),
    ("ky", "kir", "Kyrgyz", "Cyrl", "Turkic", None),
    ("kzj", "kzj", "Coastal Kadazan", "Latn", "Austronesian", None),
    ("la", "lat", "Latin", "Latn", "Indo-European", None),
    ("lfn", "lfn", "Lingua Franca Nova", "Latn", "Constructed", None),
    ("lg", "lug", "Ganda", "Latn", "Niger-Congo", None),
    ("ln", "lin", "Lingala", "Latn", "Niger-Congo", None),
    ("lo", "lao", "Lao", "Laoo", "Tai-Kadai", None),
    ("luo", "luo", "Dholuo", "Latn", "Nilotic", None),
    ("max", "max", "North Moluccan Malay", "Latn", "Austronesian", None),
    ("mg", "plt", "Malagasy", "Latn", "Austronesian", None),
    ("mhr", "mhr", "Eastern Mari", "Cyrl", "Uralic", None),
    ("mi", "mri", "Maori", "Latn", "Austronesian", "mao"),
    ("mt", "mlt", "Maltese", "Latn", "Afro-Asiatic", None),
    ("nds", "nds", "Low German", "Latn", "Indo-European", None),
    ("nn", "nno", "Norwegian Nynorsk", "Latn", "Indo-European", None),
    ("nov", "nov", "Novial", "Latn", "Constructed", None),
    ("nso", "nso", "Northern Sotho", "Latn", "Niger-Congo", None),
    ("ny", "nya", "Chichewa", "Latn", "Niger-Congo", None),
    ("oc", "oci", "Occitan", "Latn", "Indo-European", None),
    ("om", "gaz", "Oromo", "Latn", "Afro-Asiatic", None),
    ("or", "ory", "Odia", "Orya", "Indo-European", None),
    ("orv", "orv", "Old Russian", "Cyrl", "Indo-European", None),
    ("pam", "pam", "Kapampangan", "Latn", "Austronesian", None),
    ("pms", "pms", "Piedmontese", "Latn", "Indo-European", None),
    ("ps", "pbt", "Pashto", "Arab", "Indo-European", None),
    ("rw", "kin", "Kinyarwanda", "Latn", "Niger-Congo", None),
    ("sd", "snd", "Sindhi", "Arab", "Indo-European", None),
    ("shn", "shn", "Shan", "Mymr", "Tai-Kadai", None),
    ("sn", "sna", "Shona", "Latn", "Niger-Congo", None),
    ("ss", "ssw", "Swati", "Latn", "Niger-Congo", None),
    ("st", "sot", "Southern Sotho", "Latn", "Niger-Congo", None),
    ("su", "sun", "Sundanese", "Latn", "Austronesian", None),
    ("swg", "swg", "Swabian", "Latn", "Indo-European", None),
    ("tg", "tgk", "Tajik", "Cyrl", "Indo-European", None),
    ("ti", "tir", "Tigrinya", "Ethi", "Afro-Asiatic", None),
    ("tk", "tuk", "Turkmen", "Latn", "Turkic", None),
    ("tn", "tsn", "Tswana", "Latn", "Niger-Congo", None),
    ("ts", "tso", "Tsonga", "Latn", "Niger-Congo", None),
    ("tt", "tat", "Tatar", "Cyrl", "Turkic", None),
    ("tzl", "tzl", "Talossan", "Latn", "Constructed", None),
    ("ug", "uig", "Uyghur", "Arab", "Turkic", None),
    ("war", "war", "Waray", "Latn", "Austronesian", None),
    ("wo", "wol", "Wolof", "Latn", "Niger-Congo", None),
    ("wuu", "wuu", "Wu Chinese", "Hans", "Sino-Tibetan", None),
    ("yi", "ydd", "Yiddish", "Hebr", "Indo-European", None),
    ("yue", "yue", "Cantonese", "Hant", "Sino-Tibetan", None),
]

# code, base language, script, name: written variants in a script other than the main one
# (Belebele's romanised Arabic, Bengali, Hindi, Nepali, Sinhala and Urdu; traditional Chinese)
_VARIANTS: list[tuple[str, str, str, str]] = [
    ("ar-Latn", "ar", "Latn", "Arabic (Latin script)"),
    ("bn-Latn", "bn", "Latn", "Bengali (Latin script)"),
    ("hi-Latn", "hi", "Latn", "Hindi (Latin script)"),
    ("ne-Latn", "ne", "Latn", "Nepali (Latin script)"),
    ("si-Latn", "si", "Latn", "Sinhala (Latin script)"),
    ("ur-Latn", "ur", "Latn", "Urdu (Latin script)"),
    ("zh-Hant", "zh", "Hant", "Chinese (traditional)"),
]

LANGUAGES: dict[str, Language] = {
    row[0]: Language(iso1=row[0], iso3=row[1], name=row[2], script=row[3], family=row[4],
                     iso2b=row[5])
    for row in _TABLE
}
for _code, _base, _script, _name in _VARIANTS:
    _b = LANGUAGES[_base]
    LANGUAGES[_code] = Language(iso1=_code, iso3=_b.iso3, name=_name, script=_script,
                                family=_b.family)

VARIANTS: dict[str, str] = {code: base for code, base, _, _ in _VARIANTS}
"""Script variants xlrun knows (variant code → its language's code)."""

# Macro-language and alternative ISO 639-3 codes that also map to an xlrun code.
_EXTRA_ALIASES = {
    "ara": "ar", "zho": "zh", "fas": "fa", "msa": "ms", "swa": "sw", "nor": "no",
    "lav": "lv", "mon": "mn", "nep": "ne", "uzb": "uz", "kor": "ko", "ell": "el",
    "hbs": "sr", "tgl": "tl", "fil": "tl", "nb": "no",
    "ekk": "et", "als": "sq", "azj": "az", "aze": "az", "kur": "ku", "ydd": "yi", "yid": "yi",
    "ful": "ff", "orm": "om", "mlg": "mg", "pus": "ps", "ori": "or", "gug": "gn",
    "grn": "gn", "sqi": "sq", "est": "et",
}

_ALIASES: dict[str, str] = {}
for _lang in LANGUAGES.values():
    if _lang.iso1 in VARIANTS:
        continue
    _ALIASES[_lang.iso1] = _lang.iso1
    _ALIASES[_lang.iso3] = _lang.iso1
    if _lang.iso2b:
        _ALIASES[_lang.iso2b] = _lang.iso1
_ALIASES.update(_EXTRA_ALIASES)


def known_codes() -> list[str]:
    """All xlrun codes (languages and script variants), sorted."""
    return sorted(LANGUAGES)


def suggest(code: str, n: int = 5) -> list[str]:
    """The known xlrun codes nearest to ``code`` (by spelling and by name)."""
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


def _script_subtag(parts: list[str]) -> str | None:
    """The first 4-letter alphabetic subtag (an ISO 15924 script), title-cased."""
    for p in parts:
        if len(p) == 4 and p.isalpha():
            return p.title()
    return None


def normalize(code: str, where: str | None = None) -> str:
    """Return the xlrun code for ``code`` (639-1, 639-3, 639-2/B, FLORES-200, or a tag with a
    script or region; see the module docstring).

    Raises:
        UnknownLanguageError: ``code`` is not known; the message lists the nearest codes.
    """
    if not isinstance(code, str):
        raise UnknownLanguageError(repr(code), [], where)
    parts = code.strip().replace("_", "-").split("-")
    c = parts[0].lower()
    if c not in _ALIASES:
        raise UnknownLanguageError(code, suggest(c), where)
    base = _ALIASES[c]
    script = _script_subtag(parts[1:])
    if script and script != LANGUAGES[base].script:
        variant = f"{base}-{script}"
        if variant in VARIANTS:
            return variant
    return base


def normalize_all(codes: list[str] | tuple[str, ...], where: str | None = None) -> list[str]:
    """Normalise a list of codes, keeping order and dropping repeats."""
    out: list[str] = []
    for i, code in enumerate(codes):
        iso = normalize(code, f"{where}[{i}]" if where else None)
        if iso not in out:
            out.append(iso)
    return out


def to_iso3(code: str) -> str:
    """ISO 639-3 code (as URIEL/lang2vec use it) for any accepted code (a script variant
    gives its language's)."""
    return LANGUAGES[normalize(code)].iso3


def script_of(code: str) -> str:
    """ISO 15924 code of the language's main writing system (a variant's own script)."""
    return LANGUAGES[normalize(code)].script
