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
