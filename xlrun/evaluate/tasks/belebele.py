"""``belebele``: Belebele's questions retrieving their FLORES passages, 122 language variants.

Belebele (Bandarkar et al. 2023) asks 900 questions about 488 FLORES-200 passages in 122
language variants, fully parallel. xlrun reads it as retrieval: a question in language X
searches the passages of language Y; its relevant document is the passage it was asked about.

Source: the hub repository ``facebook/belebele`` (read through
:mod:`xlrun.evaluate.tasks.hub_files`: only the files of the requested languages, at
``[[eval]] revision``, default :data:`BELEBELE_REVISION`, cached in the hub cache and read
offline from there), or ``path`` = a local folder in the same layout, one JSON-lines file per
variant (the repository's ``data/`` folder, or the repository itself)::

    data/<variant>.jsonl    e.g. data/eng_Latn.jsonl, data/zho_Hant.jsonl   one question per line:
        {"link", "question_number", "flores_passage", "question",
         "mc_answer1".."mc_answer4", "correct_answer_num", "dialect", "ds"[, "split"]}

Variants are FLORES-200 codes; xlrun codes come from :func:`xlrun.languages.normalize`
(``deu_Latn`` → ``de``, ``arb_Arab`` → ``ar``, ``ben_Latn`` → ``bn-Latn``, ``zho_Hant`` →
``zh-Hant``, ``acm_Arab`` → ``acm``). The data has one split, ``test``.

**Identity.** A passage is its ``link`` and FLORES ``split`` (the dataset's card: "the link
and split uniquely identify a passage"; a record without ``split`` uses the link alone, and
two different passages under one key in one file are told apart by their order); a question
is its passage and ``question_number``. Query ids ``<passage>/<question_number>`` and passage
ids ``p<12 hex digits of a hash of link and split>`` are the same in every language, so a
question's translations are one unit in reports; document ids are ``<lang>:<passage>``. A
question is relevant to its passage in every selected language.

**Settings.** ``mono`` (X → X), ``cross`` (X → Y for the ordered pairs ``[[eval]] pairs``
names, e.g. ``[["*", "en"], ["en", "*"]]``; every ordered pair when it names none: 14,762
with all 122 variants) and ``multi`` (X → the pool of every selected language's passages).

**Compared with MTEB's BelebeleRetrieval.** MTEB evaluates X → X, X ↔ eng_Latn and each
romanised variant ↔ its native script, one corpus per pair, ranked by nDCG@10. Its corpus ids
come from ``link`` alone (two passages of one article would be one document) and its query
ids from the question text (two questions with the same text in a language become one query
relevant to both passages). xlrun keys passages by link and split and questions by passage
and number, keeps every question, evaluates any pair and the multilingual pool, and stores
every query's result; nDCG@10 is among its stored measures.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from xlrun.errors import UnknownLanguageError, UsageError
from xlrun.evaluate.tasks import hub_files
from xlrun.evaluate.tasks.base import EvalDataset, local_folder, register
from xlrun.evaluate.tasks.common import finish, read_jsonl, select_languages
from xlrun.evaluate.types import Document, EvalData, Query
from xlrun.languages import normalize
from xlrun.spec.schema import EvalSection

BELEBELE_REPO = "facebook/belebele"
BELEBELE_REVISION = "75b399394a9803252cfec289d103de462763db7c"
"""Default hub revision: the commit MTEB's BelebeleRetrieval pins, whose dataset card maps
every variant to ``data/<variant>.jsonl``. ``[[eval]] revision`` overrides it."""
VARIANTS = (
    "acm_Arab", "afr_Latn", "als_Latn", "amh_Ethi", "apc_Arab", "arb_Arab", "arb_Latn",
    "ars_Arab", "ary_Arab", "arz_Arab", "asm_Beng", "azj_Latn", "bam_Latn", "ben_Beng",
    "ben_Latn", "bod_Tibt", "bul_Cyrl", "cat_Latn", "ceb_Latn", "ces_Latn", "ckb_Arab",
    "dan_Latn", "deu_Latn", "ell_Grek", "eng_Latn", "est_Latn", "eus_Latn", "fin_Latn",
    "fra_Latn", "fuv_Latn", "gaz_Latn", "grn_Latn", "guj_Gujr", "hat_Latn", "hau_Latn",
    "heb_Hebr", "hin_Deva", "hin_Latn", "hrv_Latn", "hun_Latn", "hye_Armn", "ibo_Latn",
    "ilo_Latn", "ind_Latn", "isl_Latn", "ita_Latn", "jav_Latn", "jpn_Jpan", "kac_Latn",
    "kan_Knda", "kat_Geor", "kaz_Cyrl", "kea_Latn", "khk_Cyrl", "khm_Khmr", "kin_Latn",
    "kir_Cyrl", "kor_Hang", "lao_Laoo", "lin_Latn", "lit_Latn", "lug_Latn", "luo_Latn",
    "lvs_Latn", "mal_Mlym", "mar_Deva", "mkd_Cyrl", "mlt_Latn", "mri_Latn", "mya_Mymr",
    "nld_Latn", "nob_Latn", "npi_Deva", "npi_Latn", "nso_Latn", "nya_Latn", "ory_Orya",
    "pan_Guru", "pbt_Arab", "pes_Arab", "plt_Latn", "pol_Latn", "por_Latn", "ron_Latn",
    "rus_Cyrl", "shn_Mymr", "sin_Latn", "sin_Sinh", "slk_Latn", "slv_Latn", "sna_Latn",
    "snd_Arab", "som_Latn", "sot_Latn", "spa_Latn", "srp_Cyrl", "ssw_Latn", "sun_Latn",
    "swe_Latn", "swh_Latn", "tam_Taml", "tel_Telu", "tgk_Cyrl", "tgl_Latn", "tha_Thai",
    "tir_Ethi", "tsn_Latn", "tso_Latn", "tur_Latn", "ukr_Cyrl", "urd_Arab", "urd_Latn",
    "uzn_Latn", "vie_Latn", "war_Latn", "wol_Latn", "xho_Latn", "yor_Latn", "zho_Hans",
    "zho_Hant", "zsm_Latn", "zul_Latn"
)
"""The 122 variants of Belebele (FLORES-200 codes, as its file names)."""
CODES: dict[str, str] = {normalize(v): v for v in VARIANTS}
"""xlrun code → Belebele variant (``bn-Latn`` → ``ben_Latn``)."""
FIELDS = ("link", "flores_passage", "question")
"""Text fields every record needs (and ``question_number``, a number or a string)."""


def records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a Belebele file, checked.

    Raises:
        UsageError: naming the file and line: invalid JSON, a missing or empty field.
    """
    for n, rec in enumerate(read_jsonl(path, FIELDS), 1):
        number = rec.get("question_number")
        if isinstance(number, bool) or not isinstance(number, (int, str)) or number == "":
            raise UsageError(f"{path}: record {n}: 'question_number' must be a number, got "
                             f"{number!r:.40}")
        yield rec


def passage_key(rec: dict[str, Any]) -> str:
    """A passage's id: ``p`` and 12 hex digits of a hash of its link and FLORES split."""
    raw = f"{rec['link']}\t{rec.get('split') or ''}"
    return "p" + hashlib.blake2b(raw.encode("utf-8"), digest_size=6).hexdigest()


def build_language(lang: str, records: Iterable[dict[str, Any]], where: str
                   ) -> tuple[list[Query], list[Document]]:
    """The questions and passages of one variant (passages once each, in file order).

    Raises:
        UsageError: a question id that repeats in the file.
    """
    queries: list[Query] = []
    docs: list[Document] = []
    texts: dict[str, list[str]] = {}
    seen: set[str] = set()
    for rec in records:
        key = passage_key(rec)
        text = str(rec["flores_passage"]).strip()
        known = texts.setdefault(key, [])
        norm = " ".join(text.split())
        if norm not in known:
            known.append(norm)
            pid = key if len(known) == 1 else f"{key}.{len(known) - 1}"
            docs.append(Document(f"{lang}:{pid}", lang, text))
        k = known.index(norm)
        pid = key if k == 0 else f"{key}.{k}"
        qid = f"{pid}/{rec['question_number']}"
        if qid in seen:
            raise UsageError(f"{where}: question {rec['question_number']!r} of passage "
                             f"{rec['link']!r} appears twice")
        seen.add(qid)
        queries.append(Query(qid, lang, str(rec["question"]).strip()))
    return queries, docs


def build(name: str, split: str, languages: dict[str, tuple[list[Query], list[Document]]],
          max_queries_per_language: int = 0, meta: dict[str, object] | None = None) -> EvalData:
    """EvalData from parsed variants: each question is relevant to its passage in every
    selected language where that passage exists."""
    queries = {lang: qs for lang, (qs, _) in languages.items()}
    corpus = {lang: docs for lang, (_, docs) in languages.items()}
    by_passage: dict[str, set[str]] = {}
    for docs in corpus.values():
        for d in docs:
            by_passage.setdefault(d.id.split(":", 1)[1], set()).add(d.id)
    qrels = {(lang, q.id): frozenset(by_passage.get(q.id.rsplit("/", 1)[0], ()))
             for lang, qs in queries.items() for q in qs}
    data = EvalData(name, split, queries, corpus, qrels, parallel=True, meta=dict(meta or {}))
    return finish(data, max_queries_per_language)


def _variant_files(folder: Path) -> dict[str, Path]:
    """xlrun code → file of a local folder (its ``data/`` subfolder when it has one)."""
    root = folder / "data" if (folder / "data").is_dir() else folder
    out: dict[str, Path] = {}
    for f in sorted(root.glob("*.jsonl")):
        try:
            code = normalize(f.stem)
        except UnknownLanguageError as e:
            raise UsageError(f"{f}: xlrun does not know the language variant {f.stem!r}") from e
        if code in out:
            raise UsageError(f"{f} and {out[code]} are both language {code!r}; keep one")
        out[code] = f
    return out


class BelebeleDataset(EvalDataset):
    """Belebele from the hub (no ``path``) or a local folder."""

    splits = ("test",)
    hub_splits = ("test",)
    languages = tuple(sorted(CODES))
    read_at_submit = True

    def known_languages(self, cfg: EvalSection) -> list[str] | None:
        """A local folder's variants, else all 122."""
        folder = local_folder(cfg.path)
        return sorted(_variant_files(folder)) if folder else list(self.languages or ())

    def load(self, cfg: EvalSection) -> EvalData:
        """The section's languages (every variant when empty)."""
        meta: dict[str, object]
        if cfg.path:
            folder = Path(cfg.path)
            if not folder.is_dir():
                raise UsageError(f"dataset folder not found: {folder}")
            files = _variant_files(folder)
            if not files:
                raise UsageError(f"{folder} has no Belebele file (data/<variant>.jsonl, e.g. "
                                 "data/eng_Latn.jsonl)")
            langs = select_languages(list(files), cfg.languages, self.name)
            meta = {"source": str(folder)}
        else:
            langs = select_languages(list(CODES), cfg.languages, self.name)
            revision = cfg.revision or BELEBELE_REVISION
            root = hub_files.fetch(BELEBELE_REPO, [f"data/{CODES[lang]}.jsonl" for lang in langs],
                                   revision)
            files = {}
            for lang in langs:
                f = root / "data" / f"{CODES[lang]}.jsonl"
                if not f.is_file():
                    raise UsageError(f"{BELEBELE_REPO} at revision {revision!r} has no file "
                                     f"data/{CODES[lang]}.jsonl")
                files[lang] = f
            meta = {"source": "hub", "revisions": {
                BELEBELE_REPO: hub_files.resolved_revision(root) or revision}}
        parsed = {lang: build_language(lang, records(files[lang]), str(files[lang]))
                  for lang in langs}
        return build(self.name, cfg.split, parsed, cfg.max_queries_per_language, meta)


BELEBELE = register(BelebeleDataset("belebele"))
