"""Value types for training data.

A training corpus is a set of :class:`TrainExample` records: one question and the passage
that answers it, in one language, with a ``parallel_id`` shared by its translations. A
cross-lingual pair (X, Y) is the query of the X record and the passage of the Y record with
the same ``parallel_id``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field


def normalize_text(text: str) -> str:
    """``text`` with runs of whitespace collapsed to one space and the ends stripped: the form
    in which two training texts count as identical."""
    return " ".join(text.split())


@dataclass(frozen=True)
class TrainExample:
    """One question and its positive passage in one language."""

    parallel_id: str
    lang: str
    query: str
    passage: str
    negatives: tuple[str, ...] = ()
    """Mined hard-negative passages in ``lang`` (sources that have them: ``mmarco``)."""


@dataclass(frozen=True)
class TrainCorpus:
    """An immutable collection of training examples, indexed by language and parallel id."""

    examples: tuple[TrainExample, ...]
    name: str = "corpus"
    _index: dict[str, dict[str, int]] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, dict[str, int]] = defaultdict(dict)
        for i, ex in enumerate(self.examples):
            index[ex.lang].setdefault(ex.parallel_id, i)
        object.__setattr__(self, "_index", dict(index))

    @classmethod
    def from_examples(cls, examples: Iterable[TrainExample], name: str = "corpus") -> TrainCorpus:
        """Build a corpus; the first record wins when (lang, parallel_id) repeats."""
        return cls(tuple(examples), name=name)

    @property
    def languages(self) -> list[str]:
        """Languages present, sorted."""
        return sorted(self._index)

    def size(self, lang: str) -> int:
        """Number of examples in ``lang``."""
        return len(self._index.get(lang, {}))

    def ids(self, lang: str) -> list[str]:
        """Parallel ids available in ``lang``, in corpus order."""
        return list(self._index.get(lang, {}))

    def shared_ids(self, lang_a: str, lang_b: str) -> list[str]:
        """Parallel ids present in both languages, in ``lang_a`` corpus order."""
        b = self._index.get(lang_b, {})
        return [pid for pid in self._index.get(lang_a, {}) if pid in b]

    def get(self, lang: str, parallel_id: str) -> TrainExample:
        """The example for ``parallel_id`` in ``lang`` (KeyError when absent)."""
        return self.examples[self._index[lang][parallel_id]]

    def __len__(self) -> int:
        return len(self.examples)
