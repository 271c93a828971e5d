"""XQuAD-R and MLQA-R (LAReQA): sentence retrieval, parallel across languages.

Candidates are each language's paragraph sentences. With ``dedupe = "text"`` (default) a
sentence text repeated within a language is one candidate, relevant to every question whose
answer is any copy of it; with ``dedupe = "position"`` every (paragraph, sentence) position
is its own candidate, as in LAReQA's reference code. A question's relevant candidates are
its answer sentence in every selected language where the question id exists, so the same
qrels serve the mono, cross and multi settings. Document ids are ``"<lang>:<n>"``.

``path`` is a folder of ``<lang>.json[.xz]`` files or a URL base; empty means the LAReQA
GitHub release (downloaded once to the cache). The data has no splits: ``split`` is only
a label.
"""

from __future__ import annotations

from xlrun.data.lareqa import (
    MLQA_R_LANGUAGES,
    MLQA_R_URL,
    XQUAD_R_LANGUAGES,
    XQUAD_R_URL,
    LareqaLanguage,
    available_languages,
    read_language,
)
from xlrun.evaluate.tasks.base import EvalDataset, local_folder, register
from xlrun.evaluate.tasks.common import finish, select_languages
from xlrun.evaluate.types import Document, EvalData, Query
from xlrun.spec.schema import EvalSection


def candidates(data: LareqaLanguage, dedupe: str = "text"
               ) -> tuple[list[Document], dict[tuple[int, int], str]]:
    """Candidate documents of one language and the doc id of every sentence position."""
    docs: list[Document] = []
    by_position: dict[tuple[int, int], str] = {}
    by_text: dict[str, str] = {}
    for p, par in enumerate(data.paragraphs):
        for s, text in enumerate(par.sentences):
            if dedupe == "text" and text in by_text:
                by_position[(p, s)] = by_text[text]
                continue
            doc_id = f"{data.lang}:{len(docs)}"
            docs.append(Document(doc_id, data.lang, text))
            by_text.setdefault(text, doc_id)
            by_position[(p, s)] = doc_id
    return docs, by_position


def build(name: str, parsed: dict[str, LareqaLanguage], split: str, dedupe: str,
          max_queries_per_language: int = 0, meta: dict[str, object] | None = None) -> EvalData:
    """EvalData from parsed languages (the part of the loader that needs no files)."""
    queries: dict[str, list[Query]] = {}
    corpus: dict[str, list[Document]] = {}
    answers: dict[str, set[str]] = {}
    for lang, data in sorted(parsed.items()):
        docs, by_position = candidates(data, dedupe)
        corpus[lang] = docs
        queries[lang] = [Query(q.id, lang, q.text) for q in data.questions]
        for q in data.questions:
            answers.setdefault(q.id, set()).add(by_position[(q.paragraph, q.sentence)])
    qrels = {(lang, q.id): frozenset(answers[q.id]) for lang, qs in queries.items() for q in qs}
    out = EvalData(name, split, queries, corpus, qrels, parallel=True,
                   meta={"dedupe": dedupe, **(meta or {})})
    return finish(out, max_queries_per_language)


class LareqaDataset(EvalDataset):
    """A LAReQA dataset: ``path`` (a folder or URL base) or its release ``url``."""

    read_at_submit = True

    def __init__(self, name: str, url: str, languages: tuple[str, ...]) -> None:
        super().__init__(name)
        self.url = url
        self.release_languages = languages

    def known_languages(self, cfg: EvalSection) -> list[str] | None:
        """The languages of a local folder (``None`` for a URL or the release)."""
        folder = local_folder(cfg.path)
        return available_languages(str(folder)) if folder else None

    def load(self, cfg: EvalSection) -> EvalData:
        """Load the languages of ``cfg`` from ``path``, else from the release."""
        source = cfg.path or self.url
        avail = available_languages(source) or list(self.release_languages)
        langs = select_languages(avail, cfg.languages, self.name)
        parsed = {lang: read_language(source, lang) for lang in langs}
        return build(self.name, parsed, cfg.split, cfg.dedupe, cfg.max_queries_per_language,
                     {"source": str(source)})


XQUAD_R = register(LareqaDataset("xquad-r", XQUAD_R_URL, XQUAD_R_LANGUAGES))
MLQA_R = register(LareqaDataset("mlqa-r", MLQA_R_URL, MLQA_R_LANGUAGES))
