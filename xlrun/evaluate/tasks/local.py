"""``local``: your own evaluation data in a folder.

Layout (``path`` = the folder)::

    queries.jsonl   {"id": "q1", "lang": "de", "text": "..."}      one query per line
    corpus.jsonl    {"id": "d1", "lang": "en", "text": "..."}      one document per line
    qrels.tsv       tab-separated, with a header row:
                        query_id  doc_id  relevance               (query_lang optional)
    meta.json       optional: {"parallel": true}

``queries-<split>.jsonl`` / ``qrels-<split>.tsv`` take precedence over the plain names when
they exist; ``.jsonl.gz`` works too. Language codes are normalised (``deu`` → ``de``).
Query ids need only be unique within a language; document ids must be unique over the
whole corpus. A qrels row with relevance > 0 marks ``doc_id`` relevant (an integer
relevance is its grade, the gain of graded measures such as nDCG; other positive values
count as grade 1); without a
``query_lang`` column (or with an empty value) it applies to ``query_id`` in every language,
which is how parallel data is written: one row per (question, answer in some language).
The dataset is *parallel* (the ``cross`` setting is defined) when ``meta.json`` says so or,
without that key, when some query has relevant documents in two or more languages.

A folder in the BEIR layout (``corpus.jsonl`` with ``_id``/``title``/``text``,
``queries.jsonl``, ``qrels/<split>.tsv``), or a folder of such folders named by language, is
recognised by its ``qrels/`` folder and read as :mod:`xlrun.evaluate.tasks.beir` says (BEIR
has no language field: a single folder's language is the one ``languages`` names).
"""

from __future__ import annotations

import csv
import json
import math
from collections import defaultdict
from pathlib import Path

from xlrun.errors import UsageError
from xlrun.evaluate.tasks.base import EvalDataset, register
from xlrun.evaluate.tasks.beir import (
    beir_languages,
    beir_layout,
    beir_splits,
    check_beir_section,
    load_beir,
)
from xlrun.evaluate.tasks.common import find_file, finish, read_jsonl, select_languages
from xlrun.evaluate.types import Document, EvalData, Query
from xlrun.languages import normalize
from xlrun.spec.schema import EvalSection


def _read_qrels(path: Path) -> list[tuple[str | None, str, str, int]]:
    try:
        return _qrels_rows(path)
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e})") from e


def _qrels_rows(path: Path) -> list[tuple[str | None, str, str, int]]:
    """Relevant ``(query_lang or None, query_id, doc_id, grade)`` rows of a qrels file; a relevance
    that is not a number, a repeated header or a row without ids is an error naming the
    line."""
    rows: list[tuple[str | None, str, str, int]] = []
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t")
        cols = set(reader.fieldnames or [])
        if not {"query_id", "doc_id"} <= cols:
            raise UsageError(f"{path}: header must name query_id and doc_id "
                             f"(optional: query_lang, relevance); got {sorted(cols)}")
        header = reader.fieldnames or []
        for row in reader:
            n = reader.line_num
            if [row.get(c) for c in header] == header:
                raise UsageError(f"{path}:{n}: the header row again (two files joined?); "
                                 "remove it")
            text = (row.get("relevance") or "").strip()
            try:
                rel = float(text) if text else 1.0
            except ValueError:
                rel = math.nan
            if not math.isfinite(rel):
                raise UsageError(f"{path}:{n}: relevance {text!r} is not a number (0 = not "
                                 "relevant, 1 or more = relevant)")
            if rel <= 0:
                continue
            lang = (row.get("query_lang") or "").strip()
            qid, doc_id = ((row.get(c) or "").strip() for c in ("query_id", "doc_id"))
            if not qid or not doc_id:
                raise UsageError(f"{path}:{n}: needs a query_id and a doc_id")
            rows.append((normalize(lang, str(path)) if lang else None, qid, doc_id,
                         int(rel) if rel.is_integer() else 1))
    return rows


class LocalDataset(EvalDataset):
    """``local``: a folder in the layout above."""

    read_at_submit = True

    def known_splits(self, cfg: EvalSection) -> tuple[str, ...] | None:
        """Any split (a label), except in the BEIR layout: a ``qrels/<split>.tsv``."""
        return beir_splits(cfg.path)

    def known_languages(self, cfg: EvalSection) -> list[str] | None:
        """Unknown before loading, except for a folder of BEIR folders (their names)."""
        return beir_languages(cfg.path)

    def validate(self, cfg: EvalSection, key_path: str) -> None:
        """The common checks, and a BEIR folder's one language."""
        super().validate(cfg, key_path)
        check_beir_section(cfg, key_path)

    def load(self, cfg: EvalSection) -> EvalData:
        """Load a folder in the layout above (or in the BEIR layout)."""
        if beir_layout(cfg.path) is not None:
            return load_beir(cfg, self.name)
        return load_local(cfg)


def load_local(cfg: EvalSection) -> EvalData:
    """Load a folder in the layout above."""
    if not cfg.path:
        raise UsageError("eval dataset 'local' needs path = the data folder")
    folder = Path(cfg.path)
    qfile = find_file(folder, [f"queries-{cfg.split}", "queries"])
    cfile = find_file(folder, ["corpus"])
    rfile = find_file(folder, [f"qrels-{cfg.split}", "qrels"], exts=(".tsv",))
    for f, what in ((qfile, "queries.jsonl"), (cfile, "corpus.jsonl"), (rfile, "qrels.tsv")):
        if f is None:
            raise UsageError(f"{folder}: missing {what} (see xlrun.evaluate.tasks.local)")
    queries: dict[str, list[Query]] = defaultdict(list)
    for r in read_jsonl(qfile, ("id", "lang", "text")):
        lang = normalize(str(r["lang"]), str(qfile))
        queries[lang].append(Query(str(r["id"]), lang, str(r["text"])))
    corpus: dict[str, list[Document]] = defaultdict(list)
    seen: set[str] = set()
    for r in read_jsonl(cfile, ("id", "lang", "text")):
        doc_id = str(r["id"])
        if doc_id in seen:
            raise UsageError(f"{cfile}: document id {doc_id!r} appears twice (ids must be unique)")
        seen.add(doc_id)
        lang = normalize(str(r["lang"]), str(cfile))
        corpus[lang].append(Document(doc_id, lang, str(r["text"])))
    langs = select_languages(set(queries) | set(corpus), cfg.languages, "local")
    queries = {lang: queries.get(lang, []) for lang in langs}
    corpus = {lang: corpus.get(lang, []) for lang in langs}

    by_id: dict[str, list[str]] = defaultdict(list)
    for lang, qs in queries.items():
        for q in qs:
            by_id[q.id].append(lang)
    rel: dict[tuple[str, str], set[str]] = defaultdict(set)
    grades: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    for qlang, qid, doc_id, grade in _read_qrels(rfile):
        for lang in [qlang] if qlang else by_id.get(qid, []):
            rel[(lang, qid)].add(doc_id)
            if grade != 1:
                grades[(lang, qid)][doc_id] = grade
    qrels = {k: frozenset(v) for k, v in rel.items()}

    meta_file = folder / "meta.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    if "parallel" in meta:
        parallel = bool(meta["parallel"])
    else:
        doc_lang = {d.id: d.lang for docs in corpus.values() for d in docs}
        parallel = any(len({doc_lang[d] for d in v if d in doc_lang}) > 1 for v in qrels.values())
    data = EvalData("local", cfg.split, queries, corpus, qrels, parallel=parallel,
                    meta={"source": str(folder), **meta}, grades=dict(grades))
    return finish(data, cfg.max_queries_per_language)


LOCAL = register(LocalDataset("local"))
