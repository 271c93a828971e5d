"""The ``quickstart`` evaluation dataset: the generated parallel corpus, no files needed."""

from __future__ import annotations

from xlrun.evaluate.types import EvalData
from xlrun.quickstart.corpus import eval_data
from xlrun.spec.schema import EvalSection


def load_quickstart(cfg: EvalSection) -> EvalData:
    """Load the generated evaluation split named by ``cfg``.

    Honours ``cfg.languages`` (empty = all of :data:`xlrun.quickstart.corpus.LANGUAGES`),
    ``cfg.split`` (``test`` or ``dev``) and ``cfg.max_queries_per_language`` (0 = all).
    ``cfg.path`` is ignored: the data is generated, deterministically.
    """
    return eval_data(languages=list(cfg.languages) or None, split=cfg.split,
                     max_queries_per_language=cfg.max_queries_per_language)
