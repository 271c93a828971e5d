"""Value types for evaluation data and results.

Query ids are unique within a language; parallel datasets (XQuAD-R, MLQA-R) reuse the same
id for a question's translations. Document ids are unique across the whole dataset (loaders
prefix them with the language where needed). Relevance is keyed by ``(query_lang, query_id)``
and lists document ids in any language, so the same structure serves monolingual,
cross-lingual and pooled settings. ``grades`` holds the relevance grade of a relevant
document where the qrels give one other than 1 (graded qrels, e.g. MIRACL's TREC files or a
local ``relevance`` column); every other relevant document has grade 1.

A dataset may define fewer settings than the three (:attr:`EvalData.settings`: Tatoeba has
only ``cross``) and may say which cross-lingual pairs it has and what each searches
(:attr:`EvalData.cross`: a Tatoeba pair searches only its own sentences).
"""

from __future__ import annotations

from dataclasses import dataclass, field

SETTINGS = ("mono", "cross", "multi")
POOL = "all"  # doc_lang of the multilingual pool


@dataclass(frozen=True)
class Query:
    """One query in one language."""

    id: str
    lang: str
    text: str


@dataclass(frozen=True)
class Document:
    """One retrieval candidate in one language."""

    id: str
    lang: str
    text: str


@dataclass(frozen=True)
class PairScope:
    """What the queries of one cross-lingual pair search: a subset of the query language's
    queries and of the document language's documents (``None``: all of them)."""

    query_ids: frozenset[str] | None = None
    doc_ids: frozenset[str] | None = None


@dataclass
class EvalData:
    """Everything needed to evaluate one dataset split."""

    dataset: str
    split: str
    queries: dict[str, list[Query]]
    corpus: dict[str, list[Document]]
    qrels: dict[tuple[str, str], frozenset[str]]
    parallel: bool = False  # cross-lingual settings are defined (relevant docs in every language)
    meta: dict[str, object] = field(default_factory=dict)
    settings: tuple[str, ...] = SETTINGS
    """The settings this dataset defines; the others are skipped."""
    cross: dict[tuple[str, str], PairScope] | None = None
    """The ordered ``(query_lang, doc_lang)`` pairs of the ``cross`` setting and what each
    searches; ``None``: every ordered pair of two of its languages, whole collections."""
    grades: dict[tuple[str, str], dict[str, int]] = field(default_factory=dict)
    """``(query_lang, query_id)`` → document id → grade, for grades other than 1."""

    @property
    def languages(self) -> list[str]:
        """Languages that have queries or documents, sorted."""
        return sorted(set(self.queries) | set(self.corpus))

    def relevant(self, query: Query) -> frozenset[str]:
        """Ids of the documents relevant to ``query`` (any language)."""
        return self.qrels.get((query.lang, query.id), frozenset())

    def grade(self, query: Query, doc_id: str) -> int:
        """The relevance grade of ``doc_id`` for ``query`` (1 unless the qrels say
        otherwise; call it for relevant documents)."""
        return self.grades.get((query.lang, query.id), {}).get(doc_id, 1)
