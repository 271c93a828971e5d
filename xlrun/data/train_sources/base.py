"""The training-data source every source is, the ``TRAIN_SOURCES`` registry, and the corpus
of a ``[train_data]`` section.

``source`` picks a :class:`TrainSource` (one module of :mod:`xlrun.data.train_sources` each),
which reads the examples; then ``languages`` keeps only those languages and
``max_per_language`` keeps at most N examples per language (:func:`load_train_corpus`).

The subsample is deterministic and *parallel-preserving*: parallel ids are ranked by a hash
of the id (the same ranking in every language) and each language keeps its N best-ranked ids,
so a fully parallel corpus stays fully parallel after subsampling.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.errors import SpecError
from xlrun.registry import Registry
from xlrun.spec.schema import TrainDataSection


class TrainSource:
    """A source of parallel training examples named ``name`` (its ``train_data.source``).

    Subclasses implement :meth:`read` and say which fields of ``[train_data]`` they use.
    """

    needs_path: bool = False
    """``path`` is required and, unless it is a URL, must exist."""
    needs_name: bool = False
    """``name`` (a dataset id) is required."""
    takes_revision: bool = False
    """``revision`` (a hub revision) means something."""
    read_at_submit: bool = False
    """``xlrun submit`` reads the data (when it is local) before anything is enqueued."""
    max_negatives: int = 0
    """The most mined hard negatives per example it can read (``train_data.negatives``);
    0: it has none."""

    def __init__(self, name: str) -> None:
        self.name = name

    def read(self, section: TrainDataSection) -> tuple[list[TrainExample], str]:
        """All examples of ``section`` (``languages`` may be used to read less) and the
        corpus's name."""
        raise NotImplementedError

    def validate(self, section: TrainDataSection, key_path: str) -> None:
        """Checks of ``[train_data]`` that need no data: a path (that exists) or a dataset
        name where the source needs one, a revision only where it means something.

        Raises:
            SpecError: naming ``key_path``'s field, the value and what is allowed.
        """
        if self.needs_path and not section.path:
            raise SpecError(f"{key_path}.path", f"source {self.name!r} needs a path",
                            value=section.path)
        if self.needs_path and "://" not in section.path and not Path(section.path).exists():
            raise SpecError(f"{key_path}.path", "file or folder not found", value=section.path)
        if self.needs_name and not section.name:
            raise SpecError(f"{key_path}.name", f"source {self.name!r} needs a dataset name",
                            value=section.name)
        if section.negatives and section.negatives > self.max_negatives:
            has = [repr(n) for n, src in TRAIN_SOURCES.items() if src.max_negatives]
            why = (f"source {self.name!r} reads at most {self.max_negatives}"
                   if self.max_negatives else
                   f"source {self.name!r} has no mined negatives (sources that have them: "
                   f"{', '.join(has) or 'none'})")
            raise SpecError(f"{key_path}.negatives", why, value=section.negatives,
                            allowed=f"0 to {self.max_negatives}")
        if section.revision and not self.takes_revision:
            takes = [repr(n) for n, src in TRAIN_SOURCES.items() if src.takes_revision]
            raise SpecError(f"{key_path}.revision",
                            f"a hub revision applies only to source {' or '.join(takes)}",
                            value=section.revision)

    def read_offline(self, section: TrainDataSection) -> bool:
        """Whether ``xlrun submit`` reads ``section``'s data to check it (:attr:`read_at_submit`
        and, where there is a path, a local one)."""
        return self.read_at_submit and "://" not in section.path


TRAIN_SOURCES: Registry[TrainSource] = Registry("training-data source")
"""``train_data.source`` → :class:`TrainSource` (each registered by its module here)."""


def register(source: TrainSource) -> TrainSource:
    """Register ``source`` under its name; returns it."""
    TRAIN_SOURCES.add(source.name, source)
    return source


def _rank(pid: str) -> bytes:
    return hashlib.blake2b(pid.encode("utf-8"), digest_size=8).digest()


def parallel_rank(pid: str) -> tuple[bytes, str]:
    """The sort key of a parallel id in :func:`select`'s subsample (the same in every
    language): a source that subsamples while reading uses it to keep the same ids."""
    return _rank(pid), pid


def select(examples: Iterable[TrainExample], languages: list[str] | None = None,
           max_per_language: int = 0) -> list[TrainExample]:
    """Filter by language, then keep at most ``max_per_language`` ids per language.

    Order is preserved; the kept ids are those with the smallest hash (see module docs).
    """
    keep_langs = set(languages) if languages else None
    by_lang: dict[str, list[TrainExample]] = defaultdict(list)
    order: list[TrainExample] = []
    for ex in examples:
        if keep_langs is None or ex.lang in keep_langs:
            by_lang[ex.lang].append(ex)
            order.append(ex)
    if max_per_language <= 0:
        return order
    kept: set[tuple[str, str]] = set()
    for lang, exs in by_lang.items():
        ids = sorted({ex.parallel_id for ex in exs}, key=parallel_rank)
        kept.update((lang, p) for p in ids[:max_per_language])
    return [ex for ex in order if (ex.lang, ex.parallel_id) in kept]


def load_train_corpus(section: TrainDataSection) -> TrainCorpus:
    """The training corpus described by ``section`` (SpecError when it is empty)."""
    examples, name = TRAIN_SOURCES.get(section.source, "train_data.source").read(section)
    chosen = select(examples, list(section.languages) or None, section.max_per_language)
    if not chosen:
        present = sorted({ex.lang for ex in examples})
        raise SpecError("train_data.languages", "no training examples left after filtering",
                        value=list(section.languages), allowed=present or "a non-empty source")
    missing = [lang for lang in section.languages if lang not in {ex.lang for ex in chosen}]
    if missing:
        raise SpecError("train_data.languages",
                        f"no training examples in {', '.join(missing)}",
                        value=list(section.languages),
                        allowed=sorted({ex.lang for ex in examples}))
    return TrainCorpus.from_examples(chosen, name=name)
