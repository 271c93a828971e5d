"""The evaluation dataset every dataset is, and the ``DATASETS`` registry.

A dataset is an :class:`EvalDataset`: it loads an ``[[eval]]`` section as
:class:`~xlrun.evaluate.types.EvalData` and says what the section may ask for (splits,
languages, hub revisions), which :meth:`EvalDataset.validate` checks at submit time. Each
dataset is one module of :mod:`xlrun.evaluate.tasks`.
"""

from __future__ import annotations

from pathlib import Path

from xlrun.errors import SpecError
from xlrun.evaluate.types import EvalData
from xlrun.registry import Registry
from xlrun.spec.schema import EvalSection


class EvalDataset:
    """An evaluation dataset named ``name`` (its ``[[eval]] dataset`` value).

    Subclasses implement :meth:`load` and describe what a section may ask for with the class
    attributes below (or by overriding :meth:`known_languages`).
    """

    splits: tuple[str, ...] | None = None
    """The splits it has (``None``: any name, e.g. a local folder's own files)."""
    hub_splits: tuple[str, ...] | None = None
    """Read from the Hugging Face hub when ``path`` is empty: the splits that can be
    evaluated from there (``None``: never read from the hub; ``revision`` means nothing)."""
    languages: tuple[str, ...] | None = None
    """Its languages when they are known before loading (``None``: from its files)."""
    default_split: str = "test"
    """The split ``xlrun evaluate`` uses when ``--split`` is not given."""
    read_at_submit: bool = False
    """``xlrun submit`` reads a local copy (a ``path``) before anything is enqueued, so that
    a broken file is an error there (leave it off for very large collections)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def load(self, cfg: EvalSection) -> EvalData:
        """The data of ``cfg`` (languages, split, subsampling as the section says)."""
        raise NotImplementedError

    def reads_from_hub(self, cfg: EvalSection) -> bool:
        """Whether ``cfg`` loads from the Hugging Face hub (no local ``path``): the only case
        where ``revision`` means anything."""
        return self.hub_splits is not None and not cfg.path

    def known_splits(self, cfg: EvalSection) -> tuple[str, ...] | None:
        """The splits ``cfg`` may name (``None``: any)."""
        return self.hub_splits if self.reads_from_hub(cfg) else self.splits

    def known_languages(self, cfg: EvalSection) -> list[str] | None:
        """The languages ``cfg`` can use, when known before loading (``None``: unknown)."""
        return list(self.languages) if self.languages is not None else None

    def validate(self, cfg: EvalSection, key_path: str) -> None:
        """Checks of an ``[[eval]]`` section (language codes already normalised) that need no
        data: a revision only where the hub is read, a split and languages it has.

        Raises:
            SpecError: naming ``key_path``'s field, the value and what is allowed.
        """
        if cfg.revision and not self.reads_from_hub(cfg):
            hub = [name for name, d in DATASETS.items() if d.hub_splits is not None]
            why = "a local path" if cfg.path else f"dataset {self.name!r}, which is never read from the hub"
            raise SpecError(f"{key_path}.revision", f"a hub revision means nothing for {why}; "
                            f"remove it (it applies to {' and '.join(hub)} without a path)",
                            value=cfg.revision)
        splits = self.known_splits(cfg)
        if splits is not None and cfg.split not in splits:
            raise SpecError(f"{key_path}.split", f"dataset {self.name!r} has no such split",
                            value=cfg.split, allowed=splits)
        available = self.known_languages(cfg)
        if available is not None:
            for j, lang in enumerate(cfg.languages):
                if lang not in available:
                    raise SpecError(f"{key_path}.languages[{j}]",
                                    f"dataset {self.name!r} has no language {lang!r}",
                                    value=lang, allowed=sorted(available))
            for j, pair in enumerate(cfg.pairs):
                for lang in pair:
                    if lang != "*" and lang not in available:
                        raise SpecError(f"{key_path}.pairs[{j}]",
                                        f"dataset {self.name!r} has no language {lang!r}",
                                        value=pair, allowed=sorted(available))

    def read_offline(self, cfg: EvalSection) -> bool:
        """Whether ``xlrun submit`` reads ``cfg``'s data to check it (a local copy of a
        dataset that is :attr:`read_at_submit`)."""
        return self.read_at_submit and bool(cfg.path) and "://" not in cfg.path


DATASETS: Registry[EvalDataset] = Registry("evaluation dataset")
"""``[[eval]] dataset`` → :class:`EvalDataset` (each registered by its module here)."""


def register(dataset: EvalDataset) -> EvalDataset:
    """Register ``dataset`` under its name; returns it."""
    DATASETS.add(dataset.name, dataset)
    return dataset


def load_dataset(cfg: EvalSection, key_path: str = "eval.dataset") -> EvalData:
    """Load the dataset an ``[[eval]]`` section names (SpecError for unknown names)."""
    return DATASETS.get(cfg.dataset, key_path).load(cfg)


def local_folder(path: str) -> Path | None:
    """``path`` as a local folder, or ``None`` (empty, a URL, or not a folder)."""
    return Path(path) if path and "://" not in path and Path(path).is_dir() else None
