"""``quickstart``: the generated multilingual corpus (:func:`xlrun.quickstart.corpus.train_corpus`)."""

from __future__ import annotations

from xlrun.data.train_sources.base import TrainSource, register
from xlrun.data.types import TrainExample
from xlrun.quickstart.corpus import train_corpus
from xlrun.spec.schema import TrainDataSection


class QuickstartSource(TrainSource):
    """No files: the corpus is generated, deterministically."""

    read_at_submit = True

    def read(self, section: TrainDataSection) -> tuple[list[TrainExample], str]:
        """The generated corpus in the section's languages (all when empty)."""
        corpus = train_corpus(languages=list(section.languages) or None)
        return list(corpus.examples), corpus.name


QUICKSTART = register(QuickstartSource("quickstart"))
