"""Batch samplers: which (parallel id, query language, passage language) pairs form each batch.

Registry ``SAMPLERS`` maps ``sampling.strategy`` to a sampler class, one module each (a new
strategy is one new module here: see ``docs/extending.md``):

* ``monolingual``: every batch is one language X (queries and passages in X).
* ``cross_lingual``: every batch is one ordered pair (X, Y), X != Y: queries in X, passages
  in Y, drawn from the parallel ids present in both.
* ``hybrid``: each batch is monolingual with probability ``mono_ratio``, otherwise
  cross-lingual.
* ``multilingual``: every pair of the batch draws its own languages: with probability
  ``mono_ratio`` a monolingual pair (X, X), otherwise a cross-lingual pair (X, Y).

Language choice (``sampling.language_sampling``):

* ``uniform``: every language has the same weight.
* ``size``: weight ``n_X ** temperature`` where ``n_X`` is the number of examples in X
  (temperature 1 = proportional to dataset size). Cross-lingual pairs: X is drawn from the
  language distribution (over languages that have partners), then Y != X from the same
  distribution renormalised over X's partners, so ``P(X, Y) = p_X * p_Y / sum_{Z partner of X}
  p_Z``. This is *the random arm*.
* ``clustered``: languages are grouped into clusters and ``pairing`` decides which languages
  may meet in a cross-lingual pair: ``within`` (X and Y in one cluster), ``across`` (in two
  different clusters), ``cluster_batch`` (one cluster per batch; every pair of the batch draws
  its own languages inside it, so languages mix within the batch). Corpus languages that no
  cluster names become clusters of their own.

  With ``exposure = "matched"`` (the default) the clustered arm trains every language exactly
  as often as the random arm with the same ``temperature``, ``mono_ratio`` and data — its share
  of query texts and its share of passage texts over the run, in expectation — and clustering
  decides only which languages meet: the language and pair probabilities come from
  :func:`xlrun.train.exposure.matched_plan` (iterative proportional fitting of the random arm's
  pair distribution onto the allowed pairs). Matched: per-language query share, passage share
  and the monolingual share of the run. Not matched (it is what clustering changes): which
  pairs occur, how often each parallel id of a pair is repeated, and a language's split between
  monolingual and cross-lingual batches (a singleton cluster under ``within`` is trained only
  in monolingual batches). Where the random arm's shares cannot be reached within
  ``sampling.exposure_tolerance`` (default 0.5 points) the sampler (and ``xlrun submit``) raises a
  :class:`~xlrun.errors.SpecError`.

  With ``exposure = "free"`` (xlrun 0.1 behaviour) a cluster is chosen first
  (``cluster_choice``: ``size`` = by the sum of its languages' weights, or ``uniform``), then
  the languages inside it by weight; singleton clusters take no part in cross-lingual batches,
  so per-language exposure changes too.

Schedule (``sampling.schedule``): ``random`` — each batch flips its own mono/cross coin and
draws its languages independently; ``exact`` — the run's batches are allocated up front from
the plan: exactly ``round(mono_ratio × batches)`` monolingual batches, and the monolingual
languages, cross-lingual pairs (or, under ``cluster_batch``, clusters) in counts proportional
to their probabilities (largest remainder), in an order shuffled by the seed. With ``exact``
every seed trains each language and pair the same number of times, so seeds differ only in
order and data. Under ``multilingual`` (pairs draw their own kind) ``exact`` gives every batch
exactly ``round(mono_ratio × batch_size)`` monolingual pairs, or under ``cluster_batch``
allocates the batches' clusters.

A cross-lingual pair of languages is a *partner* pair when the ids the two share can fill a
batch; pairs sharing fewer are never drawn.

Data order: every language (monolingual) and every ordered pair (cross-lingual) keeps its own
queue of parallel ids, shuffled per epoch with a generator seeded by ``(seed, queue, epoch)``.
When a queue runs out it starts its next epoch (its own counter) with a fresh shuffle, so
small languages are recycled more often than large ones.

No false negatives from duplicates: two pairs never share a batch when they have the same
parallel id (translations), the same passage text in the same language, or the same query
text in the same language (texts compared after collapsing whitespace) — in-batch negatives
would otherwise push a query away from its own answer text. A pair that would break this is
skipped and kept at the head of its queue for the next batch that uses that queue (no example
is lost).

Determinism and resume: the random choices of batch ``N`` (coin flips, clusters, languages)
come from a generator seeded by ``(seed, N)``; the exact schedule is a function of the seed and
the run's number of batches; the only other state is the queues'
``(epoch, position, deferred ids)``, which :meth:`BatchSampler.state_dict` returns as plain
data. Restoring it with :meth:`BatchSampler.load_state_dict` (or replaying with
:meth:`BatchSampler.skip_to`) gives exactly the batches of an uninterrupted run.
"""

from xlrun.registry import import_submodules
from xlrun.train.samplers.base import (
    SAMPLERS,
    Batch,
    BatchKind,
    BatchSampler,
    PairRef,
    make_sampler,
)

__all__ = ["SAMPLERS", "Batch", "BatchKind", "BatchSampler", "PairRef", "make_sampler"]

import_submodules(__name__, __path__)
