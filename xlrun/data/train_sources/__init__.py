"""Training-data sources (registry ``TRAIN_SOURCES``): one module each.

``train_data.source`` picks one: ``lareqa`` (XQuAD-R / MLQA-R JSON; :mod:`.lareqa`), ``jsonl``
(a JSON-lines file; :mod:`.jsonl`), ``hf`` (a Hugging Face dataset, online; :mod:`.hf`),
``mmarco`` (mMARCO's TSV files, hub or local; :mod:`.mmarco`) or ``quickstart`` (the
generated corpus; :mod:`.quickstart`). A new source is one new module here
(``docs/extending.md``). :func:`load_train_corpus` reads a section's corpus.
"""

from xlrun.data.train_sources.base import (
    TRAIN_SOURCES,
    TrainSource,
    load_train_corpus,
    register,
    select,
)
from xlrun.registry import import_submodules

__all__ = ["TRAIN_SOURCES", "TrainSource", "load_train_corpus", "register", "select"]

import_submodules(__name__, __path__)
