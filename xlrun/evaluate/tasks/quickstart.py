"""``quickstart``: the generated offline parallel evaluation set (see :mod:`xlrun.quickstart`)."""

from __future__ import annotations

from xlrun.evaluate.tasks import DATASETS
from xlrun.evaluate.types import EvalData
from xlrun.spec.schema import EvalSection


@DATASETS.register("quickstart")
def load_quickstart(cfg: EvalSection) -> EvalData:
    """The quickstart evaluation split, restricted to ``cfg.languages`` when given."""
    from xlrun.quickstart.corpus import eval_data

    return eval_data(languages=list(cfg.languages) or None, split=cfg.split,
                     max_queries_per_language=cfg.max_queries_per_language)
