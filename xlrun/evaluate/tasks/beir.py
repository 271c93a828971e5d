"""``beir``: a dataset in the BEIR layout (as BEIR and MTEB distribute them); ``local`` reads
a folder in this layout the same way.

Layout (``path`` = the folder)::

    corpus.jsonl        {"_id": "d1", "title": "...", "text": "..."}   one document per line
    queries.jsonl       {"_id": "q1", "text": "..."}                    one query per line
    qrels/<split>.tsv   tab-separated with a header row: query-id  corpus-id  score

(``.jsonl.gz`` works too.) A document's text is its title and text joined by a space, as BEIR
and MTEB embed it. A qrels row with score > 0 marks a relevant document; only the queries of
the split's qrels are evaluated. The split is the name of a file in ``qrels/``.

**Languages.** BEIR files have no language field, so the spec says it: a BEIR folder holds one
language, which ``languages = ["en"]`` names (``xlrun evaluate --langs en``). Several
languages are a folder of BEIR folders named by language code (``<path>/de/corpus.jsonl``,
``<path>/fr/…``): each language's queries search its own corpus (``mono``) or the pool of all
(``multi``); document ids become ``<lang>:<_id>`` (ids may repeat across languages). Such a
dataset is parallel (``cross`` is defined) only when ``<path>/meta.json`` says
``{"parallel": true}``: then the same query id is the same question in every language, and a
query's relevant documents in language Y are those Y's qrels give that id.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from xlrun.errors import SpecError, UnknownLanguageError, UsageError
from xlrun.evaluate.tasks.base import EvalDataset, local_folder, register
from xlrun.evaluate.tasks.common import find_file, finish, read_jsonl, select_languages
from xlrun.evaluate.types import Document, EvalData, Query
from xlrun.languages import normalize
from xlrun.spec.schema import EvalSection

QRELS_HEADER = ("query-id", "corpus-id", "score")


def is_beir_folder(folder: Path) -> bool:
    """Whether ``folder`` holds one dataset in the BEIR layout (a ``qrels/`` folder and a
    corpus)."""
    return (folder / "qrels").is_dir() and find_file(folder, ["corpus"]) is not None


def language_folders(folder: Path) -> dict[str, Path]:
    """The BEIR folders inside ``folder`` whose names are language codes (code → folder)."""
    out: dict[str, Path] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if not is_beir_folder(sub):
            continue
        try:
            out[normalize(sub.name)] = sub
        except UnknownLanguageError:
            continue
    return out


def beir_layout(path: str) -> str | None:
    """``"single"`` (one BEIR folder), ``"per_language"`` (a folder of BEIR folders named by
    language) or ``None`` (not the BEIR layout, or not a local folder)."""
    folder = local_folder(path)
    if folder is None:
        return None
    if is_beir_folder(folder):
        return "single"
    return "per_language" if language_folders(folder) else None


def beir_splits(path: str) -> tuple[str, ...] | None:
    """The splits of a BEIR-layout ``path`` (the ``qrels/*.tsv`` names; of every language
    folder), ``None`` when ``path`` is not in that layout."""
    layout = beir_layout(path)
    if layout is None:
        return None
    folders = [Path(path)] if layout == "single" else list(language_folders(Path(path)).values())
    names = [{p.name[:-4] for p in (f / "qrels").glob("*.tsv")} for f in folders]
    return tuple(sorted(set.intersection(*names))) if names else ()


def beir_languages(path: str) -> list[str] | None:
    """The languages of a folder of BEIR folders (``None``: a single folder, whose language
    only the spec knows, or not the BEIR layout)."""
    if beir_layout(path) != "per_language":
        return None
    return sorted(language_folders(Path(path)))


def check_beir_section(cfg: EvalSection, key_path: str) -> None:
    """A single BEIR folder needs its one language named.

    Raises:
        SpecError: at ``<key_path>.languages`` when it names none or several.
    """
    if beir_layout(cfg.path) == "single" and len(cfg.languages) != 1:
        raise SpecError(f"{key_path}.languages", "a BEIR folder holds one language and its "
                        "files do not say which: name it", value=cfg.languages,
                        allowed='one language code, e.g. ["en"] (xlrun evaluate: --langs en)')


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Relevant documents of a BEIR qrels file: query id → document id → grade (a score > 0;
    a whole score is the grade, a fractional one counts as 1)."""
    rel: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        header = tuple(c.strip() for c in next(reader, []))
        if header[:3] != QRELS_HEADER:
            raise UsageError(f"{path}: the header row must be {' '.join(QRELS_HEADER)} "
                             f"(tab-separated), got {' '.join(header) or 'nothing'}")
        for n, row in enumerate(reader, start=2):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise UsageError(f"{path}:{n}: expected query-id, corpus-id and score")
            try:
                score = float(row[2])
            except ValueError as e:
                raise UsageError(f"{path}:{n}: score {row[2]!r} is not a number") from e
            if score > 0:
                grade = int(score) if score.is_integer() else 1
                rel.setdefault(row[0].strip(), {})[row[1].strip()] = grade
    return rel


def _read_folder(folder: Path, split: str, lang: str, prefix: str
                 ) -> tuple[list[Query], list[Document], dict[str, dict[str, int]]]:
    """One BEIR folder: the split's queries (those with qrels), the corpus and the qrels
    (query id → document id, with ``prefix`` → grade)."""
    qrels_file = folder / "qrels" / f"{split}.tsv"
    qfile, cfile = find_file(folder, ["queries"]), find_file(folder, ["corpus"])
    for f, what in ((qrels_file if qrels_file.is_file() else None, f"qrels/{split}.tsv"),
                    (qfile, "queries.jsonl"), (cfile, "corpus.jsonl")):
        if f is None:
            raise UsageError(f"{folder}: missing {what} (BEIR layout; see "
                             "xlrun.evaluate.tasks.beir)")
    rel = {q: {prefix + d: g for d, g in docs.items()}
           for q, docs in _read_qrels(qrels_file).items()}
    queries = [Query(str(r["_id"]), lang, str(r["text"]))
               for r in read_jsonl(qfile, ("_id", "text")) if str(r["_id"]) in rel]
    docs: list[Document] = []
    seen: set[str] = set()
    for r in read_jsonl(cfile, ("_id",)):
        doc_id = prefix + str(r["_id"])
        if doc_id in seen:
            raise UsageError(f"{cfile}: document id {r['_id']!r} appears twice")
        seen.add(doc_id)
        text = " ".join(str(r.get(k) or "").strip() for k in ("title", "text")).strip()
        docs.append(Document(doc_id, lang, text))
    return queries, docs, rel


def load_beir(cfg: EvalSection, name: str) -> EvalData:
    """Load ``cfg.path`` in the BEIR layout as dataset ``name`` (see the module docstring).

    Raises:
        UsageError: not the BEIR layout, a missing file, a bad qrels header or row.
        SpecError: a single folder without exactly one language named.
    """
    layout = beir_layout(cfg.path)
    if layout is None:
        raise UsageError(f"{cfg.path}: not in the BEIR layout (corpus.jsonl, queries.jsonl, "
                         "qrels/<split>.tsv), nor a folder of such folders named by language")
    folder = Path(cfg.path)
    if layout == "single":
        check_beir_section(cfg, "eval")
        lang = normalize(cfg.languages[0], "eval.languages")
        folders, prefixed, parallel = {lang: folder}, False, False
    else:
        folders = language_folders(folder)
        langs = select_languages(list(folders), cfg.languages, name)
        folders = {lang: folders[lang] for lang in langs}
        meta_file = folder / "meta.json"
        meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
        prefixed, parallel = True, bool(meta.get("parallel", False))
    queries: dict[str, list[Query]] = {}
    corpus: dict[str, list[Document]] = {}
    rel: dict[str, dict[str, dict[str, int]]] = {}
    for lang, sub in folders.items():
        queries[lang], corpus[lang], rel[lang] = _read_folder(
            sub, cfg.split, lang, f"{lang}:" if prefixed else "")
    qrels: dict[tuple[str, str], frozenset[str]] = {}
    grades: dict[tuple[str, str], dict[str, int]] = {}
    for lang, qs in queries.items():
        for q in qs:
            docs = dict(rel[lang].get(q.id, {}))
            if parallel:
                for other in rel.values():
                    docs.update(other.get(q.id, {}))
            qrels[(lang, q.id)] = frozenset(docs)
            graded = {d: g for d, g in docs.items() if g != 1}
            if graded:
                grades[(lang, q.id)] = graded
    data = EvalData(name, cfg.split, queries, corpus, qrels, parallel=parallel,
                    meta={"source": str(folder), "layout": f"beir/{layout}"}, grades=grades)
    return finish(data, cfg.max_queries_per_language)


class BeirDataset(EvalDataset):
    """A folder in the BEIR layout (or a folder of them, one per language)."""

    read_at_submit = True

    def known_splits(self, cfg: EvalSection) -> tuple[str, ...] | None:
        """The ``qrels/*.tsv`` names."""
        return beir_splits(cfg.path)

    def known_languages(self, cfg: EvalSection) -> list[str] | None:
        """The language folders (a single folder's language is the spec's)."""
        return beir_languages(cfg.path)

    def validate(self, cfg: EvalSection, key_path: str) -> None:
        """A path in the BEIR layout, a split it has, and a single folder's language."""
        if local_folder(cfg.path) is None or beir_layout(cfg.path) is None:
            raise SpecError(f"{key_path}.path", "dataset 'beir' reads a local folder in the "
                            "BEIR layout", value=cfg.path,
                            allowed="a folder with corpus.jsonl, queries.jsonl and "
                                    "qrels/<split>.tsv, or a folder of such folders named "
                                    "by language")
        super().validate(cfg, key_path)
        check_beir_section(cfg, key_path)

    def load(self, cfg: EvalSection) -> EvalData:
        """Load the folder."""
        return load_beir(cfg, self.name)


BEIR = register(BeirDataset("beir"))
