"""Evaluation datasets (registry ``DATASETS``): one module each.

Registered here: ``xquad-r``, ``mlqa-r`` (LAReQA, parallel; :mod:`.lareqa`), ``mldr``,
``miracl`` (monolingual collections; :mod:`.hf_style`), ``tatoeba`` (bitext retrieval with
English; :mod:`.tatoeba`), ``belebele`` (questions → FLORES passages, 122 variants;
:mod:`.belebele`), ``local`` (a folder of JSONL/TSV files; :mod:`.local`), ``beir``
(:mod:`.beir`) and ``quickstart`` (the generated corpus; :mod:`.quickstart`). See each
module for its local layout; a new dataset is one new module here (``docs/extending.md``).
"""

from xlrun.evaluate.tasks.base import DATASETS, EvalDataset, load_dataset, register
from xlrun.registry import import_submodules

__all__ = ["DATASETS", "EvalDataset", "load_dataset", "register"]

import_submodules(__name__, __path__)
