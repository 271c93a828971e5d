"""Evaluation datasets (registry ``DATASETS``): name → loader returning EvalData.

A loader is a callable ``(cfg: EvalSection) -> EvalData``. Registered here:
``xquad-r``, ``mlqa-r`` (LAReQA, parallel), ``mldr``, ``miracl`` (monolingual collections)
and ``local`` (a folder of JSONL/TSV files). See each module for its local layout.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xlrun.registry import Registry

if TYPE_CHECKING:
    from xlrun.evaluate.types import EvalData
    from xlrun.spec.schema import EvalSection

DATASETS: Registry = Registry("evaluation dataset")

# Registration happens on import; keep these below DATASETS (the modules import it).
from xlrun.evaluate.tasks import hf_style, lareqa, local, quickstart  # noqa: E402, F401, I001


def load_dataset(cfg: EvalSection) -> EvalData:
    """Load the dataset an ``[[eval]]`` section names (SpecError for unknown names)."""
    return DATASETS.get(cfg.dataset, "eval.dataset")(cfg)


HUB_DATASETS: tuple[str, ...] = ("mldr", "miracl")
"""Datasets read from the Hugging Face hub when ``[[eval]] path`` is empty."""


def known_splits(dataset: str, hub: bool = False) -> tuple[str, ...] | None:
    """The splits a dataset has (None: any name is accepted, e.g. ``local``); with ``hub``,
    those that can be evaluated from the Hugging Face hub (MIRACL's test splits have no
    published judgements)."""
    from xlrun.evaluate.tasks.hf_style import MIRACL_HUB_SPLITS, MIRACL_SPLITS, MLDR_SPLITS
    from xlrun.quickstart.corpus import SPLITS

    miracl = MIRACL_HUB_SPLITS if hub else MIRACL_SPLITS
    return {"mldr": MLDR_SPLITS, "miracl": miracl, "quickstart": SPLITS}.get(dataset)


def default_split(dataset: str) -> str:
    """The split ``xlrun evaluate`` uses when ``--split`` is not given: ``dev`` for MIRACL
    (the last split with published judgements), else ``test``."""
    return "dev" if dataset == "miracl" else "test"


def reads_from_hub(cfg: EvalSection) -> bool:
    """Whether this ``[[eval]]`` section loads from the Hugging Face hub (no local ``path``),
    the only case where ``revision`` means anything."""
    return cfg.dataset in HUB_DATASETS and not cfg.path


def known_languages(cfg: EvalSection) -> list[str] | None:
    """The languages an ``[[eval]]`` section can use, when they are known before loading:
    the quickstart's, or the files present in a local LAReQA folder (None: unknown)."""
    from pathlib import Path

    if cfg.dataset == "quickstart":
        from xlrun.quickstart.corpus import LANGUAGES

        return list(LANGUAGES)
    if cfg.dataset in HUB_DATASETS:
        from xlrun.evaluate.tasks.hf_style import MIRACL_LANGUAGES, MLDR_LANGUAGES

        return list(MLDR_LANGUAGES if cfg.dataset == "mldr" else MIRACL_LANGUAGES)
    if cfg.dataset in ("xquad-r", "mlqa-r") and cfg.path and Path(cfg.path).is_dir():
        from xlrun.data.lareqa import available_languages

        return available_languages(cfg.path)
    return None
