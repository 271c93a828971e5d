"""``tatoeba``: Tatoeba bitext retrieval (LASER's ``data/tatoeba/v1``), 112 languages ↔ English.

Layout (``path`` = the folder; LASER keeps it at ``data/tatoeba/v1`` of its repository)::

    tatoeba.<xxx>-eng.<xxx>   one sentence per line in language <xxx> (ISO 639-3, as LASER)
    tatoeba.<xxx>-eng.eng     the English translations, line by line (same number of lines)

Up to 1,000 sentence pairs per language. Language codes become xlrun's (``deu`` → ``de``,
``cmn`` → ``zh``, ``kur`` → ``ku``, ``ast`` stays ``ast``; :mod:`xlrun.languages`). The data
has no splits: ``split`` is ``test``.

**Settings.** Only ``cross`` is defined, in both directions of every pair: the sentences of
language X are queries searching *that pair's* English sentences (``X → en``), and that
pair's English sentences search the X sentences (``en → X``) — the setting of LASER, LaBSE
and MTEB's bitext mining, where a pair's candidates are its own ≤ 1,000 sentences. A
sentence's relevant document is its translation on the same line (by position: a repeated
English sentence is two candidates). ``mono`` is not defined (a sentence would retrieve
itself) and neither is ``multi`` (each pair has its own English side, so there is no one
parallel pool, and a pool would hold the query's own sentence): both are skipped.
``[[eval]] pairs`` keeps one direction: ``[["*", "en"]]`` evaluates X → en only.

Ids: a sentence pair's query id is ``<lang>:<line>`` (1-based) on both sides, so in a report
the two directions of one sentence pair are one question; document ids are
``<side>:<lang>:<line>`` (``en:de:17`` is the English sentence of German line 17).

**Scoring.** Bitext mining is usually scored by accuracy: the share of sentences whose
translation is ranked first (P@1 = Success@1 here, every query having one relevant document;
LASER reports its complement, the error rate). ``[[eval]] measures = ["P@1"]`` stores it per
query (``query_measures``; ``xlrun report --metric P@1``); without it, it is
``first_relevant_rank = 1`` in ``query_results``::

    SELECT query_lang, doc_lang, AVG(CASE WHEN first_relevant_rank = 1 THEN 1.0 ELSE 0 END)
    FROM query_results WHERE dataset = 'tatoeba' GROUP BY 1, 2

MRR@10 (``mrr_at_10``) and AP (``ap``, here the reciprocal rank) are always stored.

``max_queries_per_language`` keeps that many sentence pairs per language pair (the same
lines in both directions). A line that is blank on either side is skipped (counted in the
data's ``meta``).
"""

from __future__ import annotations

import re
from pathlib import Path

from xlrun.errors import SpecError, UnknownLanguageError, UsageError
from xlrun.evaluate.tasks.base import EvalDataset, local_folder, register
from xlrun.evaluate.tasks.common import finish, select_languages, subsample
from xlrun.evaluate.types import Document, EvalData, PairScope, Query
from xlrun.languages import normalize
from xlrun.spec.schema import EvalSection

PIVOT = "en"
"""Every Tatoeba pair is <language> ↔ English."""
FILE_PATTERN = re.compile(r"tatoeba\.([a-z]{3})-eng\.\1")
LASER_LANGUAGES = (
    "afr", "amh", "ang", "ara", "arq", "arz", "ast", "awa", "aze", "bel", "ben", "ber", "bos",
    "bre", "bul", "cat", "cbk", "ceb", "ces", "cha", "cmn", "cor", "csb", "cym", "dan", "deu",
    "dsb", "dtp", "ell", "epo", "est", "eus", "fao", "fin", "fra", "fry", "gla", "gle", "glg",
    "gsw", "heb", "hin", "hrv", "hsb", "hun", "hye", "ido", "ile", "ina", "ind", "isl", "ita",
    "jav", "jpn", "kab", "kat", "kaz", "khm", "kor", "kur", "kzj", "lat", "lfn", "lit", "lvs",
    "mal", "mar", "max", "mhr", "mkd", "mon", "nds", "nld", "nno", "nob", "nov", "oci", "orv",
    "pam", "pes", "pms", "pol", "por", "ron", "rus", "slk", "slv", "spa", "sqi", "srp", "swe",
    "swg", "swh", "tam", "tat", "tel", "tgl", "tha", "tuk", "tur", "tzl", "uig", "ukr", "urd",
    "uzb", "vie", "war", "wuu", "xho", "yid", "yue", "zsm"
)
"""The 112 language codes of LASER's ``data/tatoeba/v1`` (as in its file names)."""


def pair_files(folder: Path) -> dict[str, tuple[str, Path, Path]]:
    """xlrun code → (Tatoeba code, its file, the English file) for every pair in ``folder``.

    Raises:
        UsageError: a pair without its English file, an unknown code, or two files that
            are the same xlrun language.
    """
    out: dict[str, tuple[str, Path, Path]] = {}
    for f in sorted(folder.iterdir()):
        m = FILE_PATTERN.fullmatch(f.name)
        if not m or not f.is_file():
            continue
        xxx = m.group(1)
        eng = folder / f"tatoeba.{xxx}-eng.eng"
        if not eng.is_file():
            raise UsageError(f"{f}: its English side {eng.name} is missing (each pair is two "
                             "line-aligned files; see xlrun.evaluate.tasks.tatoeba)")
        try:
            code = normalize(xxx)
        except UnknownLanguageError as e:
            raise UsageError(f"{f}: xlrun does not know the language code {xxx!r}") from e
        if code == PIVOT:
            continue
        if code in out:
            raise UsageError(f"{f} and {out[code][1]} are both language {code!r}; keep one")
        out[code] = (xxx, f, eng)
    return out


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from e
    return [line.rstrip("\r") for line in text.split("\n")[:-1 if text.endswith("\n") else None]]


def read_pair(code: str, xx_file: Path, en_file: Path) -> tuple[list[tuple[int, str, str]], int]:
    """The line-aligned sentence pairs ``(line, x, english)`` of one language (1-based line
    numbers) and how many lines were skipped because a side is blank.

    Raises:
        UsageError: the two files have different numbers of lines.
    """
    xs, ens = _lines(xx_file), _lines(en_file)
    if len(xs) != len(ens):
        raise UsageError(f"{xx_file} has {len(xs)} lines but {en_file} has {len(ens)}: the "
                         "two sides of a Tatoeba pair are aligned line by line")
    pairs = [(n, x.strip(), e.strip()) for n, (x, e) in enumerate(zip(xs, ens, strict=True), 1)]
    kept = [p for p in pairs if p[1] and p[2]]
    return kept, len(pairs) - len(kept)


def build(name: str, split: str, pairs: dict[str, list[tuple[int, str, str]]],
          max_queries_per_language: int = 0, meta: dict[str, object] | None = None) -> EvalData:
    """EvalData from the sentence pairs of each language (the part that needs no files)."""
    queries: dict[str, list[Query]] = {PIVOT: []}
    corpus: dict[str, list[Document]] = {PIVOT: []}
    qrels: dict[tuple[str, str], frozenset[str]] = {}
    cross: dict[tuple[str, str], PairScope] = {}
    for lang, rows in sorted(pairs.items()):
        xq = [Query(f"{lang}:{n}", lang, x) for n, x, _ in rows]
        keep = {q.id for q in subsample(xq, max_queries_per_language)}
        queries[lang], corpus[lang] = [], []
        en_ids: set[str] = set()
        for n, x, e in rows:
            qid = f"{lang}:{n}"
            if qid not in keep:
                continue
            x_doc, en_doc = f"{lang}:{qid}", f"{PIVOT}:{qid}"
            queries[lang].append(Query(qid, lang, x))
            queries[PIVOT].append(Query(qid, PIVOT, e))
            corpus[lang].append(Document(x_doc, lang, x))
            corpus[PIVOT].append(Document(en_doc, PIVOT, e))
            qrels[(lang, qid)] = frozenset({en_doc})
            qrels[(PIVOT, qid)] = frozenset({x_doc})
            en_ids.add(qid)
        cross[(lang, PIVOT)] = PairScope(doc_ids=frozenset(f"{PIVOT}:{q}" for q in en_ids))
        cross[(PIVOT, lang)] = PairScope(query_ids=frozenset(en_ids))
    data = EvalData(name, split, queries, corpus, qrels, parallel=True, meta=dict(meta or {}),
                    settings=("cross",), cross=cross)
    return finish(data, 0)


class TatoebaDataset(EvalDataset):
    """A folder of LASER's Tatoeba files (``path``)."""

    splits = ("test",)
    languages = tuple(sorted({PIVOT, *(normalize(c) for c in LASER_LANGUAGES)}))
    read_at_submit = True

    def known_languages(self, cfg: EvalSection) -> list[str] | None:
        """English and the languages with a pair in the folder."""
        folder = local_folder(cfg.path)
        return sorted({PIVOT, *pair_files(folder)}) if folder else None

    def validate(self, cfg: EvalSection, key_path: str) -> None:
        """A local folder, and the ``cross`` setting (the only one Tatoeba defines)."""
        if local_folder(cfg.path) is None:
            raise SpecError(f"{key_path}.path", "dataset 'tatoeba' reads a local folder of "
                            "LASER's Tatoeba files", value=cfg.path,
                            allowed="a folder with tatoeba.<xxx>-eng.<xxx> and "
                                    "tatoeba.<xxx>-eng.eng files (LASER's data/tatoeba/v1)")
        if "cross" not in cfg.settings:
            raise SpecError(f"{key_path}.settings", "Tatoeba defines only the cross setting "
                            "(X → en and en → X within each pair)", value=cfg.settings,
                            allowed=["cross"])
        super().validate(cfg, key_path)

    def load(self, cfg: EvalSection) -> EvalData:
        """The pairs of ``cfg.languages`` (every pair when empty; ``en`` adds nothing)."""
        folder = Path(cfg.path)
        if not folder.is_dir():
            raise UsageError(f"dataset folder not found: {folder}")
        files = pair_files(folder)
        if not files:
            raise UsageError(f"{folder} has no Tatoeba pair (tatoeba.<xxx>-eng.<xxx> with "
                             "tatoeba.<xxx>-eng.eng)")
        wanted = [lang for lang in cfg.languages if lang != PIVOT]
        langs = select_languages(list(files), wanted, self.name)
        pairs: dict[str, list[tuple[int, str, str]]] = {}
        skipped = 0
        for lang in langs:
            rows, blank = read_pair(lang, files[lang][1], files[lang][2])
            pairs[lang] = rows
            skipped += blank
        meta: dict[str, object] = {"source": str(folder)}
        if skipped:
            meta["skipped_blank_lines"] = skipped
        return build(self.name, cfg.split, pairs, cfg.max_queries_per_language, meta)


TATOEBA = register(TatoebaDataset("tatoeba"))
