"""Load the training corpus named by ``[train_data]``.

``source`` picks the reader: ``lareqa`` (:func:`xlrun.data.lareqa.train_examples`),
``jsonl`` (:mod:`xlrun.data.jsonl`), ``hf`` (:mod:`xlrun.data.hf`, online only) or
``quickstart`` (:func:`xlrun.quickstart.corpus.train_corpus`). Then ``languages`` keeps only
those languages and ``max_per_language`` keeps at most N examples per language.

The subsample is deterministic and *parallel-preserving*: parallel ids are ranked by a hash
of the id (the same ranking in every language) and each language keeps its N best-ranked ids,
so a fully parallel corpus stays fully parallel after subsampling.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.errors import SpecError
from xlrun.spec.schema import TrainDataSection

SOURCES = ("lareqa", "jsonl", "hf", "quickstart")


def _rank(pid: str) -> bytes:
    return hashlib.blake2b(pid.encode("utf-8"), digest_size=8).digest()


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
        ids = sorted({ex.parallel_id for ex in exs}, key=lambda p: (_rank(p), p))
        kept.update((lang, p) for p in ids[:max_per_language])
    return [ex for ex in order if (ex.lang, ex.parallel_id) in kept]


def _raw(section: TrainDataSection) -> tuple[list[TrainExample], str]:
    src = section.source
    langs = list(section.languages) or None
    if src == "lareqa":
        from xlrun.data import lareqa

        return list(lareqa.train_examples(section.path, langs)), "lareqa"
    if src == "jsonl":
        from xlrun.data.jsonl import read_jsonl

        return read_jsonl(section.path), "jsonl"
    if src == "hf":
        from xlrun.data.hf import read_hf

        return read_hf(section.name, section.split, section.revision), section.name
    if src == "quickstart":
        from xlrun.quickstart.corpus import train_corpus

        corpus = train_corpus(languages=langs)
        return list(corpus.examples), corpus.name
    raise SpecError("train_data.source", "no training data source", value=src,
                    allowed=list(SOURCES))


def load_train_corpus(section: TrainDataSection) -> TrainCorpus:
    """The training corpus described by ``section`` (SpecError when it is empty)."""
    if section.max_per_language < 0:
        raise SpecError("train_data.max_per_language", "must be 0 (all) or more",
                        value=section.max_per_language)
    examples, name = _raw(section)
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
