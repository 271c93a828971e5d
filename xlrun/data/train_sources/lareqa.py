"""``lareqa``: XQuAD-R / MLQA-R questions with their answer sentences
(:func:`xlrun.data.lareqa.train_examples`)."""

from __future__ import annotations

from xlrun.data import lareqa
from xlrun.data.train_sources.base import TrainSource, register
from xlrun.data.types import TrainExample
from xlrun.spec.schema import TrainDataSection


class LareqaSource(TrainSource):
    """``path``: a folder of ``<lang>.json[.xz]`` files (or a URL base)."""

    needs_path = True
    read_at_submit = True

    def read(self, section: TrainDataSection) -> tuple[list[TrainExample], str]:
        """The section's languages (all files when empty) of ``path``."""
        return lareqa.train_examples(section.path, list(section.languages) or None), self.name


LAREQA = register(LareqaSource("lareqa"))
