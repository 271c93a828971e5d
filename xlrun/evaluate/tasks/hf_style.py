"""MLDR and MIRACL: monolingual collections in Tevatron-style records (``parallel=False``).

Online (``path`` empty): Hugging Face ``datasets.load_dataset``:

- ``mldr``: ``Shitao/MLDR`` config ``<lang>`` (split ``dev``/``test``; records ``query_id``,
  ``query``, ``positive_passages`` [{docid, text}], ``negative_passages``) and config
  ``corpus-<lang>`` (split ``corpus``; ``docid``, ``text``), at ``revision`` (default :data:`MLDR_REVISION`).
- ``miracl``: ``miracl/miracl`` config ``<lang>`` (splits ``train``/``dev``/``testB``...) and
  ``miracl/miracl-corpus`` config ``<lang>`` (split ``train``; ``docid``, ``title``, ``text``).

Local (``path`` = a folder), the same records as JSON lines, one folder per language::

    <path>/<lang>/queries-<split>.jsonl[.gz]   # {"query_id", "query", "positive_passages": [{"docid"}, ...]}
    <path>/<lang>/corpus.jsonl[.gz]            # {"docid", "text"[, "title"]}

(``<split>.jsonl`` is accepted for the queries too.) A document's text is ``title + " " +
text`` when a title is present. Document ids become ``"<lang>:<docid>"``; queries are
relevant to their positive passages only (binary relevance). Queries with no positive
passage in the corpus are dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xlrun.errors import UsageError
from xlrun.evaluate.tasks import DATASETS
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
MIRACL_REPO = "miracl/miracl"
MIRACL_CORPUS_REPO = "miracl/miracl-corpus"
MIRACL_REVISION = "main"
"""Default hub revision of the MIRACL repositories (``[[eval]] revision`` overrides it)."""


def doc_text(rec: dict[str, Any]) -> str:
    """``title + " " + text`` (or the text alone)."""
    title = str(rec.get("title") or "").strip()
    text = str(rec.get("text") or "")
    return f"{title} {text}" if title else text


def build_language(lang: str, query_records: Iterable[dict[str, Any]],
                   corpus_records: Iterable[dict[str, Any]]
                   ) -> tuple[list[Query], list[Document], dict[tuple[str, str], frozenset[str]]]:
    """Queries, documents and qrels of one language from Tevatron-style records."""
    queries: list[Query] = []
    qrels: dict[tuple[str, str], frozenset[str]] = {}
    for rec in query_records:
        qid = str(rec["query_id"])
        queries.append(Query(qid, lang, str(rec["query"])))
        pos = frozenset(f"{lang}:{p['docid']}" for p in rec.get("positive_passages") or [])
        if pos:
            qrels[(lang, qid)] = pos
    docs = [Document(f"{lang}:{r['docid']}", lang, doc_text(r)) for r in corpus_records]
    return queries, docs, qrels


def _local_language(folder: Path, lang: str, split: str) -> tuple[list, list]:
    d = folder / lang
    qfile = find_file(d, [f"queries-{split}", split])
    cfile = find_file(d, ["corpus"])
    if qfile is None or cfile is None:
        missing = "queries-{split}.jsonl" if qfile is None else "corpus.jsonl"
        raise UsageError(f"{d}: missing {missing.format(split=split)} (see the local layout "
                         "in xlrun.evaluate.tasks.hf_style)")
    return list(read_jsonl(qfile)), list(read_jsonl(cfile))


def _local_languages(folder: Path) -> list[str]:
    if not folder.is_dir():
        raise UsageError(f"dataset folder not found: {folder}")
    return sorted(p.name for p in folder.iterdir() if p.is_dir())


def _hub(repo: str, config: str, split: str, revision: str):  # noqa: ANN202 - datasets types
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a dependency
        raise UsageError("loading from the Hugging Face hub needs `pip install datasets`") from exc
    return datasets.load_dataset(repo, config, split=split, revision=revision)


def _load(name: str, cfg: EvalSection, langs_known: tuple[str, ...], splits: tuple[str, ...],
          hub: Any, default_revision: str) -> EvalData:
    if cfg.split not in splits:
        from xlrun.errors import SpecError

        raise SpecError("eval.split", f"unknown split of {name}", value=cfg.split, allowed=splits)
    folder = Path(cfg.path) if cfg.path else None
    avail = _local_languages(folder) if folder else list(langs_known)
    langs = select_languages(avail, cfg.languages, name)
    queries, corpus, qrels = {}, {}, {}
    for lang in langs:
        if folder:
            qrecs, crecs = _local_language(folder, lang, cfg.split)
        else:
            qrecs, crecs = hub(lang, cfg.split, cfg.revision or default_revision)
        queries[lang], corpus[lang], q = build_language(lang, qrecs, crecs)
        qrels.update(q)
    data = EvalData(name, cfg.split, queries, corpus, qrels, parallel=False,
                    meta={"source": str(folder) if folder else "hub"})
    return finish(data, cfg.max_queries_per_language)


def _mldr_hub(lang: str, split: str, revision: str) -> tuple[Iterable, Iterable]:
    return (_hub(MLDR_REPO, lang, split, revision),
            _hub(MLDR_REPO, f"corpus-{lang}", "corpus", revision))


def _miracl_hub(lang: str, split: str, revision: str) -> tuple[Iterable, Iterable]:
    return (_hub(MIRACL_REPO, lang, split, revision),
            _hub(MIRACL_CORPUS_REPO, lang, "train", revision))


@DATASETS.register("mldr")
def load_mldr(cfg: EvalSection) -> EvalData:
    """MLDR (13 languages, long documents; settings mono and multi)."""
    return _load("mldr", cfg, MLDR_LANGUAGES, MLDR_SPLITS, _mldr_hub, MLDR_REVISION)


@DATASETS.register("miracl")
def load_miracl(cfg: EvalSection) -> EvalData:
    """MIRACL (18 languages, Wikipedia passages; settings mono and multi)."""
    return _load("miracl", cfg, MIRACL_LANGUAGES, MIRACL_SPLITS, _miracl_hub, MIRACL_REVISION)
