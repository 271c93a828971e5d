"""MLDR and MIRACL: monolingual collections (``parallel=False``).

Online (``path`` empty) xlrun reads the files the Hugging Face hub repositories hold, never
their loading scripts (``datasets`` ≥ 4 does not run them), through
:mod:`xlrun.evaluate.tasks.hub_files` (downloads cached in the hub cache, at
``[[eval]] revision``, default ``main``; for MIRACL one value for both repositories or
``"<miracl/miracl revision>,<miracl/miracl-corpus revision>"``):

- ``mldr``: ``Shitao/MLDR`` (public), one folder per language::

      mldr-v1.0-<lang>/{train,dev,test}.jsonl.gz   {"query_id", "query",
                                                    "positive_passages": [{"docid", "text"}],
                                                    "negative_passages": [...]}
      mldr-v1.0-<lang>/corpus.jsonl.gz             {"docid", "text"}

- ``miracl``: topics and judgements in ``miracl/miracl`` (gated: accept its terms and log
  in), passages in ``miracl/miracl-corpus``::

      miracl-v1.0-<lang>/topics/topics.miracl-v1.0-<lang>-<split>.tsv   qid <TAB> query
      miracl-v1.0-<lang>/qrels/qrels.miracl-v1.0-<lang>-<split>.tsv     qid Q0 docid relevance
      miracl-corpus-v1.0-<lang>/docs-<n>.jsonl.gz                       {"docid", "title", "text"}

  ``<split>`` is ``train`` or ``dev`` (``testA``/``testB`` are ``test-a``/``test-b`` and
  have topics only: MIRACL publishes no judgements for them, so they cannot be evaluated
  from the hub). Every language has ``dev``; ``de`` and ``yo`` have no ``train``.
  Judgements are kept as MIRACL grades them: relevance > 0 is relevant (a grade above 1 is
  kept in ``EvalData.grades``, the gain of graded measures); documents judged 0 (MIRACL's
  explicit negatives) and unjudged documents are not.

Local (``path`` = a folder), either the same files in the hub layout above (for MIRACL both
repositories' language folders side by side, e.g. what ``hf download … --local-dir DIR``
writes for each), or Tevatron-style JSON lines, one folder per language::

    <path>/<lang>/queries-<split>.jsonl[.gz]   # {"query_id", "query", "positive_passages": [{"docid"}, ...]}
    <path>/<lang>/corpus.jsonl[.gz]            # {"docid", "text"[, "title"]}

(``<split>.jsonl`` is accepted for the queries too.) A document's text is ``title + " " +
text`` when a title is present. Document ids become ``"<lang>:<docid>"``; queries are
relevant to their positive passages only (binary relevance). Judgements whose document is
not in the corpus are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from xlrun.errors import UsageError
from xlrun.evaluate.tasks import hub_files
from xlrun.evaluate.tasks.base import EvalDataset, register
from xlrun.evaluate.tasks.common import find_file, finish, read_jsonl, select_languages
from xlrun.evaluate.types import Document, EvalData, Query
from xlrun.spec.schema import EvalSection

MLDR_LANGUAGES = ("ar", "de", "en", "es", "fr", "hi", "it", "ja", "ko", "pt", "ru", "th", "zh")
MLDR_SPLITS = ("dev", "test")
MLDR_REPO = "Shitao/MLDR"
MLDR_REVISION = "main"
"""Default hub revision of ``Shitao/MLDR``. A spec pins the data with ``[[eval]] revision``
(a commit hash); the revision is part of the run key, so pinned runs say what they read."""
MIRACL_LANGUAGES = ("ar", "bn", "de", "en", "es", "fa", "fi", "fr", "hi", "id", "ja", "ko",
                    "ru", "sw", "te", "th", "yo", "zh")
MIRACL_SPLITS = ("train", "dev", "testA", "testB")
"""Splits a local MIRACL folder may hold."""
MIRACL_HUB_SPLITS = ("train", "dev")
"""Splits with published judgements: the ones that can be evaluated from the hub."""
MIRACL_REPO = "miracl/miracl"
MIRACL_CORPUS_REPO = "miracl/miracl-corpus"
MIRACL_REVISION = "main"
"""Default hub revision of the MIRACL repositories. ``[[eval]] revision`` overrides it: one
value (a branch or tag) applies to both repositories; ``"<commit of miracl/miracl>,<commit
of miracl/miracl-corpus>"`` pins each to a commit."""
_MIRACL_FILE_SPLIT = {"train": "train", "dev": "dev", "testA": "test-a", "testB": "test-b"}


def doc_text(rec: dict[str, Any]) -> str:
    """``title + " " + text`` (or the text alone)."""
    title = str(rec.get("title") or "").strip()
    text = str(rec.get("text") or "")
    return f"{title} {text}" if title else text


Qrels = dict[tuple[str, str], frozenset[str]]
Grades = dict[tuple[str, str], dict[str, int]]
Language = tuple[list[Query], list[Document], Qrels, Grades]
"""A language's queries, documents, qrels and the grades other than 1 (see ``EvalData``)."""


def build_language(lang: str, query_records: Iterable[dict[str, Any]],
                   corpus_records: Iterable[dict[str, Any]]) -> Language:
    """Queries, documents and qrels of one language from Tevatron-style records."""
    queries: list[Query] = []
    qrels: Qrels = {}
    for rec in query_records:
        qid = str(rec["query_id"])
        queries.append(Query(qid, lang, str(rec["query"])))
        pos = frozenset(f"{lang}:{p['docid']}" for p in rec.get("positive_passages") or [])
        if pos:
            qrels[(lang, qid)] = pos
    docs = [Document(f"{lang}:{r['docid']}", lang, doc_text(r)) for r in corpus_records]
    return queries, docs, qrels, {}


# ----------------------------------------------------------------------------- file readers
def read_topics(path: Path) -> Iterator[tuple[str, str]]:
    """``(query_id, query)`` from a MIRACL topics TSV (``qid <TAB> query``)."""
    with open(path, encoding="utf-8", newline="") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip("\r\n")
            if not line.strip():
                continue
            qid, sep, text = line.partition("\t")
            if not sep:
                raise UsageError(f"{path}:{n}: expected 'query_id<TAB>query'")
            yield qid.strip(), text.strip()


def read_trec_qrels(path: Path) -> Iterator[tuple[str, str, int]]:
    """``(query_id, doc_id, relevance)`` from a TREC qrels file (``qid Q0 docid relevance``,
    tab- or space-separated)."""
    with open(path, encoding="utf-8", newline="") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 4:
                raise UsageError(f"{path}:{n}: expected 'query_id Q0 doc_id relevance', "
                                 f"got {len(parts)} fields")
            try:
                rel = int(float(parts[3]))
            except (ValueError, OverflowError) as exc:  # text, nan, inf
                raise UsageError(f"{path}:{n}: relevance {parts[3]!r} is not a number") from exc
            yield parts[0], parts[2], rel


def build_language_trec(lang: str, topics: Iterable[tuple[str, str]],
                        judgements: Iterable[tuple[str, str, int]],
                        corpus_records: Iterable[dict[str, Any]]) -> Language:
    """Queries, documents and qrels of one language from topics, TREC judgements and
    corpus records. Relevance > 0 is relevant (its grade kept when it is not 1); 0 (judged
    not relevant) is not."""
    queries = [Query(qid, lang, text) for qid, text in topics]
    rel: dict[tuple[str, str], set[str]] = {}
    grades: Grades = {}
    for qid, docid, grade in judgements:
        if grade > 0:
            rel.setdefault((lang, qid), set()).add(f"{lang}:{docid}")
            if grade != 1:
                grades.setdefault((lang, qid), {})[f"{lang}:{docid}"] = grade
    docs = [Document(f"{lang}:{r['docid']}", lang, doc_text(r)) for r in corpus_records]
    return queries, docs, {k: frozenset(v) for k, v in rel.items()}, grades


def _chain_jsonl(paths: Iterable[Path]) -> Iterator[dict[str, Any]]:
    for p in paths:
        yield from read_jsonl(p)


# ----------------------------------------------------------------------------- hub layout
def mldr_files(lang: str, split: str) -> tuple[str, str]:
    """Repository paths of an MLDR language's queries of ``split`` and its corpus."""
    return f"mldr-v1.0-{lang}/{split}.jsonl.gz", f"mldr-v1.0-{lang}/corpus.jsonl.gz"


def miracl_files(lang: str, split: str) -> tuple[str, str, str]:
    """Repository paths of a MIRACL language's topics and qrels of ``split`` (in
    ``miracl/miracl``) and the pattern of its corpus shards (in ``miracl/miracl-corpus``)."""
    s = _MIRACL_FILE_SPLIT.get(split, split)
    return (f"miracl-v1.0-{lang}/topics/topics.miracl-v1.0-{lang}-{s}.tsv",
            f"miracl-v1.0-{lang}/qrels/qrels.miracl-v1.0-{lang}-{s}.tsv",
            f"miracl-corpus-v1.0-{lang}/docs-*.jsonl.gz")


def _one(root: Path, pattern: str, where: str, hint: str) -> list[Path]:
    found = hub_files.files_matching(root, pattern)
    if not found:
        raise UsageError(f"{where} has no file {pattern}{hint}")
    return found


def _mldr_language(qroot: Path, croot: Path, lang: str, split: str, where: str) -> Language:
    qpat, cpat = mldr_files(lang, split)
    hint = f" (is {lang!r} one of its languages, {split!r} one of its splits?)"
    queries = _one(qroot, qpat, where, hint)
    corpus = _one(croot, cpat, where, hint)
    return build_language(lang, _chain_jsonl(queries), _chain_jsonl(corpus))


def _miracl_language(qroot: Path, croot: Path, lang: str, split: str, where: tuple[str, str]
                     ) -> Language:
    tpat, rpat, cpat = miracl_files(lang, split)
    hint = (f" (language {lang!r} may not have split {split!r}: every MIRACL language has "
            "dev, de and yo have no train, and testA/testB have no judgements)")
    topics = _one(qroot, tpat, where[0], hint)[0]
    qrels = _one(qroot, rpat, where[0], hint)[0]
    shards = _one(croot, cpat, where[1], f" (is {lang!r} one of its languages?)")
    return build_language_trec(lang, read_topics(topics), read_trec_qrels(qrels),
                               _chain_jsonl(shards))


# ----------------------------------------------------------------------------- sources
Reader = Callable[[str], Language]
HubReader = Callable[[list[str], str, str], tuple[Reader, dict[str, str]]]


def _mldr_hub(langs: list[str], split: str, revision: str) -> tuple[Reader, dict[str, str]]:
    (revision,) = _revisions("mldr", revision, (MLDR_REPO,))
    patterns = [p for lang in langs for p in mldr_files(lang, split)]
    root = hub_files.fetch(MLDR_REPO, patterns, revision)
    where = f"{MLDR_REPO} at revision {revision!r}"
    return ((lambda lang: _mldr_language(root, root, lang, split, where)),
            {MLDR_REPO: hub_files.resolved_revision(root) or revision})


def _revisions(name: str, revision: str, repos: tuple[str, ...]) -> tuple[str, ...]:
    """One revision per repository from ``[[eval]] revision`` (one value for all, or one
    comma-separated value per repository, in the order of ``repos``)."""
    parts = [p.strip() for p in revision.split(",")]
    if len(parts) == 1:
        parts = parts * len(repos)
    if len(parts) != len(repos) or not all(parts):
        form = ("one revision" if len(repos) == 1 else
                "one revision for both repositories, or two separated by a comma: "
                + ",".join(f"<revision of {r}>" for r in repos))
        raise UsageError(f"eval.revision {revision!r} does not fit {name}: give {form}")
    return tuple(parts)


def _miracl_hub(langs: list[str], split: str, revision: str) -> tuple[Reader, dict[str, str]]:
    qrev, crev = _revisions("miracl", revision, (MIRACL_REPO, MIRACL_CORPUS_REPO))
    if split not in MIRACL_HUB_SPLITS:
        raise UsageError(f"MIRACL publishes no relevance judgements for {split!r} (topics "
                         f"only); evaluate on one of {', '.join(MIRACL_HUB_SPLITS)} "
                         "(usually dev)")
    files = [miracl_files(lang, split) for lang in langs]
    qroot = hub_files.fetch(MIRACL_REPO, [p for f in files for p in f[:2]], qrev)
    croot = hub_files.fetch(MIRACL_CORPUS_REPO, [f[2] for f in files], crev)
    where = (f"{MIRACL_REPO} at revision {qrev!r}", f"{MIRACL_CORPUS_REPO} at revision {crev!r}")
    return ((lambda lang: _miracl_language(qroot, croot, lang, split, where)),
            {MIRACL_REPO: hub_files.resolved_revision(qroot) or qrev,
             MIRACL_CORPUS_REPO: hub_files.resolved_revision(croot) or crev})


def _hub_layout_languages(folder: Path, prefix: str) -> list[str]:
    pat = re.compile(re.escape(prefix) + r"([a-z]{2,3})")
    return sorted(m.group(1) for p in folder.iterdir()
                  if p.is_dir() and (m := pat.fullmatch(p.name)))


def _local_language(folder: Path, lang: str, split: str) -> Language:
    d = folder / lang
    qfile = find_file(d, [f"queries-{split}", split])
    cfile = find_file(d, ["corpus"])
    if qfile is None or cfile is None:
        missing = "queries-{split}.jsonl" if qfile is None else "corpus.jsonl"
        raise UsageError(f"{d}: missing {missing.format(split=split)} (see the local layout "
                         "in xlrun.evaluate.tasks.hf_style)")
    return build_language(lang, read_jsonl(qfile), read_jsonl(cfile))


def _local(name: str, folder: Path, split: str) -> tuple[list[str], Reader]:
    """Languages in a local folder and a reader for one of them (hub or Tevatron layout)."""
    if not folder.is_dir():
        raise UsageError(f"dataset folder not found: {folder}")
    prefix = "mldr-v1.0-" if name == "mldr" else "miracl-v1.0-"
    hub_langs = _hub_layout_languages(folder, prefix)
    if not hub_langs:
        return (sorted(p.name for p in folder.iterdir() if p.is_dir()),
                lambda lang: _local_language(folder, lang, split))
    where = str(folder)
    if name == "mldr":
        return hub_langs, lambda lang: _mldr_language(folder, folder, lang, split, where)
    return hub_langs, lambda lang: _miracl_language(folder, folder, lang, split, (where, where))


class HubCollection(EvalDataset):
    """A monolingual collection read from the hub files (no ``path``) or a local folder."""

    def __init__(self, name: str, languages: tuple[str, ...], splits: tuple[str, ...],
                 hub_splits: tuple[str, ...], hub: HubReader, default_revision: str,
                 default_split: str = "test") -> None:
        super().__init__(name)
        self.languages, self.splits, self.hub_splits = languages, splits, hub_splits
        self.default_split = default_split
        self._hub, self._default_revision = hub, default_revision

    def load(self, cfg: EvalSection) -> EvalData:
        """Load ``cfg``'s languages and split from its folder, else from the hub."""
        folder = Path(cfg.path) if cfg.path else None
        meta: dict[str, object]
        if folder:
            avail, read = _local(self.name, folder, cfg.split)
            langs = select_languages(avail, cfg.languages, self.name)
            meta = {"source": str(folder)}
        else:
            langs = select_languages(self.languages or (), cfg.languages, self.name)
            read, revisions = self._hub(langs, cfg.split, cfg.revision or self._default_revision)
            meta = {"source": "hub", "revisions": revisions}
        queries, corpus, qrels, grades = {}, {}, {}, {}
        for lang in langs:
            queries[lang], corpus[lang], q, g = read(lang)
            qrels.update(q)
            grades.update(g)
        data = EvalData(self.name, cfg.split, queries, corpus, qrels, parallel=False, meta=meta,
                        grades=grades)
        return finish(data, cfg.max_queries_per_language)


MLDR = register(HubCollection("mldr", MLDR_LANGUAGES, MLDR_SPLITS, MLDR_SPLITS, _mldr_hub,
                              MLDR_REVISION))
"""MLDR (13 languages, long documents; settings mono and multi)."""
MIRACL = register(HubCollection("miracl", MIRACL_LANGUAGES, MIRACL_SPLITS, MIRACL_HUB_SPLITS,
                                _miracl_hub, MIRACL_REVISION, default_split="dev"))
"""MIRACL (18 languages, Wikipedia passages; settings mono and multi). ``xlrun evaluate``
uses ``dev`` by default (the last split with published judgements)."""
