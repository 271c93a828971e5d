"""``hf``: training pairs from a Hugging Face dataset with the jsonl columns (online; its
reading is not tested offline)."""

from __future__ import annotations

from xlrun.data.train_sources.base import TrainSource, register
from xlrun.data.train_sources.jsonl import example_from_record
from xlrun.data.types import TrainExample
from xlrun.errors import UsageError
from xlrun.spec.schema import TrainDataSection


def read_hf(name: str, split: str = "train", revision: str = "") -> list[TrainExample]:
    """Rows of ``name`` (``split``) with ``query``, ``passage``, ``lang``, opt. ``parallel_id``.

    ``name`` may carry a config after a colon: ``org/dataset:config``; ``revision`` (a commit
    hash, tag or branch; empty = latest) pins the hub data.
    """
    try:
        import datasets  # deferred on purpose: heavy, and only this source reads with it
    except ImportError as e:  # pragma: no cover - datasets is a dependency
        raise UsageError("train_data.source = 'hf' needs the 'datasets' package") from e
    path, _, config = name.partition(":")
    try:
        ds = datasets.load_dataset(path, config or None, split=split, revision=revision or None)
    except Exception as e:
        raise UsageError(f"cannot load Hugging Face dataset {name!r} (split {split!r}): {e}") from e
    missing = [c for c in ("query", "passage", "lang") if c not in ds.column_names]
    if missing:
        raise UsageError(f"Hugging Face dataset {name!r} lacks column(s) {', '.join(missing)}; "
                         f"it has {', '.join(ds.column_names)}")
    return [example_from_record(row, f"{path}:{i}", f"{name}[{i}]") for i, row in enumerate(ds)]


class HfSource(TrainSource):
    """``name`` (``org/dataset[:config]``), ``split`` and ``revision`` on the hub."""

    needs_name = True
    takes_revision = True

    def read(self, section: TrainDataSection) -> tuple[list[TrainExample], str]:
        """:func:`read_hf` of the section's dataset."""
        return read_hf(section.name, section.split, section.revision), section.name


HF = register(HfSource("hf"))
