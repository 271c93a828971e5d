"""Batch samplers: which (parallel id, query language, passage language) pairs form each batch.

Registry ``SAMPLERS`` maps ``sampling.strategy`` to a sampler class:

* ``monolingual``: every batch is one language X (queries and passages in X).
* ``cross_lingual``: every batch is one ordered pair (X, Y), X != Y: queries in X, passages
  in Y, drawn from the parallel ids present in both.
* ``hybrid``: each batch is monolingual with probability ``mono_ratio``, otherwise
  cross-lingual (the coin is flipped per batch).
* ``multilingual``: every pair of the batch draws its own languages: with probability
  ``mono_ratio`` a monolingual pair (X, X), otherwise a cross-lingual pair (X, Y).

Language choice (``sampling.language_sampling``):

* ``uniform``: every language has the same weight.
* ``size``: weight ``n_X ** temperature`` where ``n_X`` is the number of examples in X
  (temperature 1 = proportional to dataset size).
* ``clustered``: first a cluster (``cluster_choice``: ``size`` (default) = the sum of its
  languages' weights ``n_X ** temperature``, or ``uniform``), then languages inside it by
  ``n_X ** temperature``. With ``size``, the query-language marginal of monolingual batches
  equals that of the unclustered ``size`` arm, so a clustered-vs-random comparison changes
  which languages share cross-lingual batches, not how often each language is trained on
  (``uniform`` over-samples small clusters: a singleton cluster gets a whole cluster's share).
  ``pairing``: ``within`` (X and Y in the chosen cluster), ``across`` (X in the chosen
  cluster, Y outside it), ``cluster_batch`` (one cluster per batch; every pair of the batch
  draws its own languages inside that cluster, so languages mix within the batch).
  Corpus languages that no cluster names become clusters of their own (so that clustered and
  unclustered arms train on the same languages).

Cross-lingual pairs under ``uniform``/``size``: X is drawn from the language distribution,
then Y != X from the same distribution renormalised over X's partners, so
``P(X, Y) = p_X * p_Y / sum_{Z partner of X} p_Z``. The "size" of a language *pair* is the
number of parallel ids the two share; a pair is a *partner* pair when it shares at least
``batch_size`` ids (pairs sharing fewer cannot fill a batch and are never drawn). Clustered
sampling uses the same rule inside the allowed set of languages.

Data order: every language (monolingual) and every ordered pair (cross-lingual) keeps its own
queue of parallel ids, shuffled per epoch with a generator seeded by ``(seed, queue, epoch)``.
When a queue runs out it starts its next epoch (its own counter) with a fresh shuffle, so
small languages are recycled more often than large ones. Translations never share a batch:
an id already in the batch is skipped and kept at the head of its queue for the next batch
that uses that queue (no example is lost).

Determinism and resume: the random choices of batch ``N`` (coin flips, clusters, languages)
come from a generator seeded by ``(seed, N)``, and the only other state is the queues'
``(epoch, position, deferred ids)``, which :meth:`BatchSampler.state_dict` returns as plain
data. Restoring it with :meth:`BatchSampler.load_state_dict` (or replaying with
:meth:`BatchSampler.skip_to`) gives exactly the batches of an uninterrupted run.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from xlrun.data.types import TrainCorpus
from xlrun.errors import SpecError
from xlrun.registry import Registry
from xlrun.spec.schema import SamplingSection

BatchKind = Literal["mono", "cross", "multi"]


@dataclass(frozen=True)
class PairRef:
    """One training pair: the query of ``query_lang`` and the passage of ``doc_lang``."""

    parallel_id: str
    query_lang: str
    doc_lang: str


@dataclass(frozen=True)
class Batch:
    """One sampled batch: its index, its kind and its pairs."""

    step: int
    kind: BatchKind
    items: tuple[PairRef, ...]

    def composition(self) -> dict[tuple[str, str], int]:
        """Number of pairs per ``(query_lang, doc_lang)``."""
        return dict(Counter((it.query_lang, it.doc_lang) for it in self.items))

    def __len__(self) -> int:
        return len(self.items)


class _Queue:
    """A shuffled, per-epoch recycled queue of parallel ids (indices into the id table)."""

    __slots__ = ("ids", "key", "seed", "epoch", "pos", "deferred", "_perm")

    def __init__(self, ids: np.ndarray, key: str, seed: int) -> None:
        self.ids = ids
        self.key = key
        self.seed = seed
        self.epoch = 0
        self.pos = 0
        self.deferred: list[int] = []
        self._perm: np.ndarray | None = None

    def _order(self) -> np.ndarray:
        if self._perm is None:
            ss = np.random.SeedSequence([self.seed, zlib.crc32(self.key.encode()), self.epoch])
            self._perm = self.ids[np.random.default_rng(ss).permutation(len(self.ids))]
        return self._perm

    def take(self, k: int, exclude: set[int]) -> list[int]:
        """``k`` ids not in ``exclude`` (which is updated); skipped ids wait in ``deferred``."""
        out: list[int] = []
        if self.deferred:
            keep: list[int] = []
            for i in self.deferred:
                if len(out) < k and i not in exclude:
                    out.append(i)
                    exclude.add(i)
                else:
                    keep.append(i)
            self.deferred = keep
        scanned = 0
        while len(out) < k:
            order = self._order()
            if self.pos >= len(order):
                self.epoch += 1
                self.pos = 0
                self._perm = None
                continue
            i = int(order[self.pos])
            self.pos += 1
            scanned += 1
            if i in exclude:
                self.deferred.append(i)
                if scanned > 2 * len(order) + k:  # cannot happen when len(ids) >= batch size
                    raise RuntimeError(f"queue {self.key!r} cannot fill a batch")
            else:
                out.append(i)
                exclude.add(i)
        return out

    def state(self) -> list[Any]:
        return [self.epoch, self.pos, list(self.deferred)]

    def load(self, state: Sequence[Any]) -> None:
        self.epoch, self.pos, deferred = int(state[0]), int(state[1]), state[2]
        self.deferred = [int(i) for i in deferred]
        self._perm = None


class BatchSampler:
    """Base class: language choice, per-language queues, determinism and checkpointed state.

    Subclasses set :attr:`strategy` and implement :meth:`_plan`, which turns the generator of
    one batch into its kind and the list of ``(query_lang, doc_lang)`` slots (one per pair, or
    one slot repeated for a whole single-language batch).
    """

    strategy: ClassVar[str] = ""

    def __init__(self, corpus: TrainCorpus, sampling: SamplingSection, batch_size: int,
                 seed: int = 0, clusters: Sequence[Sequence[str]] | None = None) -> None:
        self.sampling = sampling
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.step = 0
        langs = corpus.languages
        if not langs:
            raise SpecError("train_data", "the training corpus is empty", value=corpus.name)
        if not 0.0 <= sampling.mono_ratio <= 1.0:
            raise SpecError("sampling.mono_ratio", "must be within [0, 1]",
                            value=sampling.mono_ratio)
        if sampling.temperature <= 0:
            raise SpecError("sampling.temperature", "must be positive",
                            value=sampling.temperature)
        if self.batch_size < 1:
            raise SpecError("train.batch_size", "must be 1 or more", value=batch_size)
        self.languages = langs
        self._lang_index = {lang: i for i, lang in enumerate(langs)}
        self.sizes = np.array([corpus.size(lang) for lang in langs], dtype=np.float64)
        if sampling.language_sampling == "uniform":
            self.weights = np.ones(len(langs))
        else:
            self.weights = self.sizes ** float(sampling.temperature)

        # parallel ids → dense integer table
        self._pids: list[str] = []
        pid_index: dict[str, int] = {}
        per_lang: dict[str, np.ndarray] = {}
        for lang in langs:
            idx = []
            for pid in corpus.ids(lang):
                j = pid_index.get(pid)
                if j is None:
                    j = pid_index[pid] = len(self._pids)
                    self._pids.append(pid)
                idx.append(j)
            per_lang[lang] = np.array(idx, dtype=np.int64)
        self._per_lang = per_lang
        self._queues: dict[str, _Queue] = {}
        self._pairs_cache: dict[tuple[str, ...], list[tuple[str, str]]] = {}

        self.clusters = self._resolve_clusters(clusters)
        self._needs_mono = self._uses_mono()
        self._needs_cross = self._uses_cross()
        if self._needs_mono:
            small = [lang for lang in langs if len(per_lang[lang]) < self.batch_size]
            if small:
                raise SpecError(
                    "train.batch_size",
                    f"batch is larger than the examples available in {', '.join(small)} "
                    f"({', '.join(str(len(per_lang[s])) for s in small)})",
                    value=self.batch_size, allowed=f"at most {min(len(per_lang[s]) for s in small)}")
        self.partners: dict[str, list[str]] = {}
        if self._needs_cross:
            self._find_partners(corpus)

    # ----------------------------------------------------------------- setup & checks
    def _uses_mono(self) -> bool:
        return self.sampling.mono_ratio > 0

    def _uses_cross(self) -> bool:
        return self.sampling.mono_ratio < 1

    def _resolve_clusters(self, clusters: Sequence[Sequence[str]] | None) -> list[list[str]]:
        if self.sampling.language_sampling != "clustered":
            return []
        given = [list(c) for c in (clusters if clusters is not None else self.sampling.clusters)]
        if not given:
            raise SpecError("sampling.clusters", "clustered language sampling needs clusters",
                            value=given, allowed='a list of language lists, e.g. [["de","en"],["ar"]]')
        seen: dict[str, int] = {}
        out: list[list[str]] = []
        for i, c in enumerate(given):
            for lang in c:
                if lang not in self._lang_index:
                    raise SpecError(f"sampling.clusters[{i}]",
                                    f"names {lang!r}, which is not in the training data",
                                    value=lang, allowed=self.languages)
                if lang in seen:
                    raise SpecError(f"sampling.clusters[{i}]",
                                    f"language {lang!r} is already in cluster {seen[lang]}",
                                    value=c)
                seen[lang] = i
            if c:
                out.append(sorted(c))
        out += [[lang] for lang in self.languages if lang not in seen]
        if self.sampling.pairing == "across" and len(out) < 2:
            raise SpecError("sampling.pairing", "'across' pairing needs two or more clusters",
                            value=self.sampling.pairing, allowed=["within", "cluster_batch"])
        return out

    def _find_partners(self, corpus: TrainCorpus) -> None:
        if len(self.languages) < 2:
            raise SpecError("sampling.strategy",
                            f"{self.strategy!r} needs cross-lingual pairs, i.e. two or more "
                            "languages in the training data", value=self.languages,
                            allowed="monolingual, or hybrid with mono_ratio = 1")
        sets = {lang: set(self._per_lang[lang].tolist()) for lang in self.languages}
        for x in self.languages:
            self.partners[x] = [y for y in self.languages
                                if y != x and len(sets[x] & sets[y]) >= self.batch_size]
        if not any(self.partners.values()):
            raise SpecError("train.batch_size",
                            "no language pair shares enough parallel ids to fill a "
                            "cross-lingual batch", value=self.batch_size)
        if self.clusters:
            allowed = [self._cluster_pairs(c) for c in self.clusters]
            if not any(allowed):
                raise SpecError("sampling.clusters",
                                f"pairing {self.sampling.pairing!r} leaves no cross-lingual "
                                "pair (every cluster has a single language or its languages "
                                "share too few parallel ids)", value=self.clusters)

    def _cluster_pairs(self, cluster: Sequence[str]) -> list[tuple[str, str]]:
        """Allowed cross pairs (X in ``cluster``) under the pairing rule (cached)."""
        key = tuple(cluster)
        pairs = self._pairs_cache.get(key)
        if pairs is None:
            inside = set(cluster)
            across = self.sampling.pairing == "across"
            pairs = [(x, y) for x in cluster for y in self.partners.get(x, [])
                     if (y not in inside) == across]
            self._pairs_cache[key] = pairs
        return pairs

    # ----------------------------------------------------------------- language choice
    def _p(self, langs: Sequence[str]) -> np.ndarray:
        w = self.weights[[self._lang_index[lang] for lang in langs]]
        return w / w.sum()

    def _pick(self, rng: np.random.Generator, langs: Sequence[str]) -> str:
        if len(langs) == 1:
            return langs[0]
        return langs[int(rng.choice(len(langs), p=self._p(langs)))]

    def _cluster(self, rng: np.random.Generator, cross: bool) -> list[str]:
        """Choose a cluster (restricted to clusters that can give a cross pair if ``cross``)."""
        cands = [c for c in self.clusters if not cross or self._cluster_pairs(c)]
        if self.sampling.cluster_choice == "size":
            # the sum of its languages' weights: for monolingual batches each language is then
            # drawn exactly as often as under unclustered sampling with the same weights
            w = np.array([sum(self.weights[self._lang_index[x]] for x in c) for c in cands])
        else:
            w = np.ones(len(cands))
        return cands[int(rng.choice(len(cands), p=w / w.sum()))]

    def _mono_lang(self, rng: np.random.Generator, cluster: Sequence[str] | None) -> str:
        if self.clusters:
            cluster = cluster if cluster is not None else self._cluster(rng, cross=False)
            return self._pick(rng, cluster)
        return self._pick(rng, self.languages)

    def _cross_pair(self, rng: np.random.Generator,
                    cluster: Sequence[str] | None) -> tuple[str, str]:
        if self.clusters:
            cluster = cluster if cluster is not None else self._cluster(rng, cross=True)
            pairs = self._cluster_pairs(cluster)
            xs = sorted({x for x, _ in pairs})
            x = self._pick(rng, xs)
            return x, self._pick(rng, sorted(y for xx, y in pairs if xx == x))
        xs = [x for x in self.languages if self.partners[x]]
        x = self._pick(rng, xs)
        return x, self._pick(rng, self.partners[x])

    def _slot(self, rng: np.random.Generator, mono: bool,
              cluster: Sequence[str] | None = None) -> tuple[str, str]:
        if mono:
            x = self._mono_lang(rng, cluster)
            return x, x
        return self._cross_pair(rng, cluster)

    # ----------------------------------------------------------------- batches
    def _plan(self, rng: np.random.Generator) -> tuple[BatchKind, list[tuple[str, str]]]:
        raise NotImplementedError

    def _rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, 0x5A3B1E, step]))

    def _queue(self, q: str, d: str) -> _Queue:
        key = q if q == d else f"{q}>{d}"
        queue = self._queues.get(key)
        if queue is None:
            if q == d:
                ids = self._per_lang[q]
            else:
                ids = self._per_lang[q][np.isin(self._per_lang[q], self._per_lang[d])]
            queue = self._queues[key] = _Queue(ids, key, self.seed)
        return queue

    def next_batch(self) -> Batch:
        """The batch at :attr:`step`; advances the sampler by one batch."""
        step = self.step
        kind, slots = self._plan(self._rng(step))
        exclude: set[int] = set()
        if len(set(slots)) == 1:
            q, d = slots[0]
            ids = self._queue(q, d).take(self.batch_size, exclude)
            items = tuple(PairRef(self._pids[i], q, d) for i in ids)
        else:
            items = tuple(PairRef(self._pids[self._queue(q, d).take(1, exclude)[0]], q, d)
                          for q, d in slots)
        self.step = step + 1
        return Batch(step, kind, items)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.next_batch()

    def skip_to(self, step: int) -> None:
        """Advance (by replaying) until :attr:`step` equals ``step``."""
        if step < self.step:
            raise ValueError(f"sampler is at step {self.step}; cannot go back to {step}")
        while self.step < step:
            self.next_batch()

    def state_dict(self) -> dict[str, Any]:
        """Plain-data state: the next step and every queue's (epoch, position, deferred)."""
        return {"strategy": self.strategy, "seed": self.seed, "step": self.step,
                "queues": {k: q.state() for k, q in self._queues.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (same corpus, spec and seed)."""
        if state.get("strategy") != self.strategy or int(state.get("seed", -1)) != self.seed:
            raise ValueError("sampler state was saved by a different strategy or seed")
        self.step = int(state["step"])
        self._queues = {}
        for key, qs in state["queues"].items():
            q, _, d = key.partition(">")
            self._queue(q, d or q).load(qs)


SAMPLERS: Registry[type[BatchSampler]] = Registry("sampler")


@SAMPLERS.register("monolingual")
class MonolingualSampler(BatchSampler):
    """Every batch is one language: queries and passages in X."""

    strategy = "monolingual"

    def _uses_mono(self) -> bool:
        return True

    def _uses_cross(self) -> bool:
        return False

    def _plan(self, rng: np.random.Generator) -> tuple[BatchKind, list[tuple[str, str]]]:
        if self.clusters and self.sampling.pairing == "cluster_batch":
            cluster = self._cluster(rng, cross=False)
            return "mono", [self._slot(rng, True, cluster) for _ in range(self.batch_size)]
        return "mono", [self._slot(rng, True)]


@SAMPLERS.register("cross_lingual")
class CrossLingualSampler(BatchSampler):
    """Every batch is one ordered pair (X, Y), X != Y."""

    strategy = "cross_lingual"

    def _uses_mono(self) -> bool:
        return False

    def _uses_cross(self) -> bool:
        return True

    def _plan(self, rng: np.random.Generator) -> tuple[BatchKind, list[tuple[str, str]]]:
        if self.clusters and self.sampling.pairing == "cluster_batch":
            cluster = self._cluster(rng, cross=True)
            return "cross", [self._slot(rng, False, cluster) for _ in range(self.batch_size)]
        return "cross", [self._slot(rng, False)]


@SAMPLERS.register("hybrid")
class HybridSampler(BatchSampler):
    """Each batch is monolingual with probability ``mono_ratio``, else cross-lingual."""

    strategy = "hybrid"

    def _plan(self, rng: np.random.Generator) -> tuple[BatchKind, list[tuple[str, str]]]:
        mono = bool(rng.random() < self.sampling.mono_ratio)
        kind: BatchKind = "mono" if mono else "cross"
        if self.clusters and self.sampling.pairing == "cluster_batch":
            cluster = self._cluster(rng, cross=not mono)
            return kind, [self._slot(rng, mono, cluster) for _ in range(self.batch_size)]
        return kind, [self._slot(rng, mono)]


@SAMPLERS.register("multilingual")
class MultilingualSampler(BatchSampler):
    """Every pair draws its own languages: mono with probability ``mono_ratio``, else cross."""

    strategy = "multilingual"

    def _plan(self, rng: np.random.Generator) -> tuple[BatchKind, list[tuple[str, str]]]:
        ratio = self.sampling.mono_ratio
        monos = rng.random(self.batch_size) < ratio
        if self.clusters and self.sampling.pairing == "cluster_batch":
            any_cross = not bool(monos.all())
            cluster = self._cluster(rng, cross=any_cross)
            return "multi", [self._slot(rng, bool(m), cluster) for m in monos]
        return "multi", [self._slot(rng, bool(m)) for m in monos]


def make_sampler(sampling: SamplingSection, corpus: TrainCorpus, batch_size: int, seed: int,
                 clusters: Sequence[Sequence[str]] | None = None) -> BatchSampler:
    """The sampler named by ``sampling.strategy`` (SpecError for unknown names)."""
    cls = SAMPLERS.get(sampling.strategy, "sampling.strategy")
    return cls(corpus, sampling, batch_size, seed=seed, clusters=clusters)
