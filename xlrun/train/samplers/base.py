"""The batch sampler every strategy shares, and the ``SAMPLERS`` registry.

:class:`BatchSampler` does the work common to all strategies (language weights, clusters,
exposure plans, the exact schedule, per-language queues, the duplicate guard, checkpointed
state); a strategy (one module of :mod:`xlrun.train.samplers`) only says how a batch chooses
its kind (:attr:`BatchSampler.fixed_mono`, :attr:`BatchSampler.per_pair`). See the package
docstring for what each choice means.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from xlrun.data.types import TrainCorpus, normalize_text
from xlrun.errors import SpecError
from xlrun.langsim.distances import validate_source
from xlrun.registry import Registry
from xlrun.spec.schema import SamplingSection
from xlrun.train.exposure import (
    ExposurePlan,
    apportion,
    free_clustered_plan,
    matched_plan,
    random_arm_plan,
    round_half_up,
    round_matrix,
)

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


class _BatchGuard:
    """What a batch already holds: parallel ids, and query/passage texts per language."""

    __slots__ = ("ids", "passages", "pgroup", "qgroup", "queries")

    def __init__(self, qgroup: dict[str, list[int]], pgroup: dict[str, list[int]]) -> None:
        self.ids: set[int] = set()
        self.queries: set[tuple[str, int]] = set()
        self.passages: set[tuple[str, int]] = set()
        self.qgroup, self.pgroup = qgroup, pgroup

    def accepts(self, i: int, q: str, d: str) -> bool:
        return (i not in self.ids and (q, self.qgroup[q][i]) not in self.queries
                and (d, self.pgroup[d][i]) not in self.passages)

    def add(self, i: int, q: str, d: str) -> None:
        self.ids.add(i)
        self.queries.add((q, self.qgroup[q][i]))
        self.passages.add((d, self.pgroup[d][i]))


class _Queue:
    """A shuffled, per-epoch recycled queue of parallel ids (indices into the id table)."""

    __slots__ = ("_perm", "d", "deferred", "epoch", "ids", "key", "pos", "q", "seed")

    def __init__(self, ids: np.ndarray, q: str, d: str, seed: int) -> None:
        self.ids = ids
        self.q, self.d = q, d
        self.key = q if q == d else f"{q}>{d}"
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

    def take(self, k: int, guard: _BatchGuard) -> list[int]:
        """``k`` ids the batch accepts (``guard`` is updated); skipped ids wait in ``deferred``."""
        out: list[int] = []
        q, d = self.q, self.d
        if self.deferred:
            keep: list[int] = []
            for i in self.deferred:
                if len(out) < k and guard.accepts(i, q, d):
                    out.append(i)
                    guard.add(i, q, d)
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
            if guard.accepts(i, q, d):
                out.append(i)
                guard.add(i, q, d)
            else:
                self.deferred.append(i)
                if scanned > 2 * len(order) + k:  # the pool check at start-up rules this out
                    raise RuntimeError(f"queue {self.key!r} cannot fill a batch")
        return out

    def state(self) -> list[Any]:
        return [self.epoch, self.pos, list(self.deferred)]

    def load(self, state: Sequence[Any]) -> None:
        self.epoch, self.pos, deferred = int(state[0]), int(state[1]), state[2]
        self.deferred = [int(i) for i in deferred]
        self._perm = None


@dataclass(frozen=True)
class _Unit:
    """One pre-allocated batch of the exact schedule: its kind and its language cell (a
    language index, a cross pair index, or a cluster index under ``cluster_batch``)."""

    mono: bool
    cell: int


class BatchSampler:
    """Base class: language choice, per-language queues, determinism and checkpointed state.

    Subclasses set :attr:`strategy` and how a batch chooses its kind: :attr:`fixed_mono`
    (always monolingual / always cross-lingual) or a coin per batch, or :attr:`per_pair` (each
    pair draws its own kind).
    """

    strategy: ClassVar[str] = ""
    fixed_mono: ClassVar[bool | None] = None
    """``True``/``False``: every batch is monolingual / cross-lingual; ``None``: a coin."""
    per_pair: ClassVar[bool] = False
    """Every pair of a batch draws its own kind and languages (``multilingual``)."""

    def __init__(self, corpus: TrainCorpus, sampling: SamplingSection, batch_size: int,
                 seed: int = 0, clusters: Sequence[Sequence[str]] | None = None,
                 total_batches: int | None = None) -> None:
        self.sampling = sampling
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.step = 0
        langs = corpus.languages
        if not langs:
            raise SpecError("train_data", "the training corpus is empty", value=corpus.name)
        self.languages = langs
        self._lang_index = {lang: i for i, lang in enumerate(langs)}
        self.sizes = np.array([corpus.size(lang) for lang in langs], dtype=np.float64)
        if sampling.language_sampling == "uniform":
            self.weights = np.ones(len(langs))
        else:
            self.weights = self.sizes ** float(sampling.temperature)

        self._index_corpus(corpus)
        self._queues: dict[str, _Queue] = {}
        self._pairs_cache: dict[tuple[str, ...], list[tuple[str, str]]] = {}

        self.clusters = self._resolve_clusters(clusters)
        self.cluster_batch = bool(self.clusters) and sampling.pairing == "cluster_batch"
        """One cluster per batch (``pairing = "cluster_batch"``), in planned and free draws."""
        self._needs_mono = self.mono_ratio > 0
        self._needs_cross = self.mono_ratio < 1
        if self._needs_mono:
            small = [lang for lang in langs if self.pool_size(lang, lang) < self.batch_size]
            if small:
                have = [self.pool_size(s, s) for s in small]
                raise SpecError(
                    "train.batch_size",
                    f"batch is larger than the distinct examples available in "
                    f"{', '.join(small)} ({', '.join(map(str, have))}; pairs with the same "
                    f"query or passage text never share a batch)",
                    value=self.batch_size, allowed=f"at most {min(have)}")
        self.partners: dict[str, list[str]] = {}
        if self._needs_cross:
            self._find_partners()
        self.plan = self._make_plan()
        self._planned = (self.sampling.schedule == "exact"
                         or (bool(self.clusters) and self.sampling.exposure == "matched"))
        if self._planned:
            self._prepare_planned_draws()
        self.total_batches = total_batches
        self._units: list[_Unit] | None = None
        if self.sampling.schedule == "exact":
            if total_batches is None or total_batches < 1:
                raise ValueError("the exact schedule needs the run's number of batches")
            self._units = self._exact_units(int(total_batches))

    @classmethod
    def uses_mono_ratio(cls) -> bool:
        """Whether ``sampling.mono_ratio`` changes this strategy's batches; when it does not,
        the spec loader resets it before hashing, so it does not split run keys."""
        return cls.fixed_mono is None

    @classmethod
    def validate(cls, sampling: SamplingSection, key_path: str = "sampling") -> None:
        """The checks of ``[sampling]`` that need no data, for a run that trains (the spec
        loader calls this at submit time; value ranges and the sections' relations are the
        loader's own checks). A strategy with settings of its own extends this.

        Raises:
            SpecError: a clustered arm without a usable similarity source, clusters, a number
                of clusters or threshold, or ``across`` pairing with a single cluster.
        """
        if sampling.language_sampling != "clustered":
            return
        validate_source(sampling.similarity, f"{key_path}.similarity")
        if sampling.similarity == "manual" and not sampling.clusters:
            raise SpecError(f"{key_path}.clusters",
                            "clustered language sampling with similarity 'manual' needs clusters",
                            value=sampling.clusters,
                            allowed='a list of language lists, e.g. [["de","en"],["ar"]]')
        if sampling.similarity != "manual" and not (sampling.n_clusters > 0
                                                    or sampling.distance_threshold > 0):
            raise SpecError(f"{key_path}.n_clusters",
                            "clustering by similarity needs n_clusters or distance_threshold",
                            value=sampling.n_clusters)
        if sampling.pairing == "across" and sampling.clusters and len(sampling.clusters) < 2:
            raise SpecError(f"{key_path}.pairing", "'across' pairing needs two or more clusters",
                            value=sampling.pairing)

    # ----------------------------------------------------------------- setup & checks
    @property
    def mono_ratio(self) -> float:
        """The share of monolingual batches (or pairs) this strategy uses."""
        if self.fixed_mono is not None:
            return 1.0 if self.fixed_mono else 0.0
        return float(self.sampling.mono_ratio)

    def _index_corpus(self, corpus: TrainCorpus) -> None:
        """Dense integer ids, per-language id arrays, and text groups for the batch guard."""
        self._pids: list[str] = []
        pid_index: dict[str, int] = {}
        per_lang: dict[str, np.ndarray] = {}
        for lang in self.languages:
            idx = []
            for pid in corpus.ids(lang):
                j = pid_index.get(pid)
                if j is None:
                    j = pid_index[pid] = len(self._pids)
                    self._pids.append(pid)
                idx.append(j)
            per_lang[lang] = np.array(idx, dtype=np.int64)
        self._per_lang = per_lang
        self._pool_sizes: dict[tuple[str, str], int] = {}
        n = len(self._pids)
        self._qgroup: dict[str, list[int]] = {}
        self._pgroup: dict[str, list[int]] = {}
        for lang in self.languages:
            qg, pg = [-1] * n, [-1] * n
            qseen: dict[str, int] = {}
            pseen: dict[str, int] = {}
            for i in per_lang[lang].tolist():
                ex = corpus.get(lang, self._pids[i])
                qg[i] = qseen.setdefault(normalize_text(ex.query), i)
                pg[i] = pseen.setdefault(normalize_text(ex.passage), i)
            self._qgroup[lang], self._pgroup[lang] = qg, pg

    def _queue_ids(self, q: str, d: str) -> np.ndarray:
        if q == d:
            return self._per_lang[q]
        return self._per_lang[q][np.isin(self._per_lang[q], self._per_lang[d])]

    def pool_size(self, q: str, d: str) -> int:
        """How many of the ids of queue ``(q, d)`` can share one batch: a greedy count of ids
        with pairwise distinct query texts (in ``q``) and passage texts (in ``d``)."""
        count = self._pool_sizes.get((q, d))
        if count is None:
            guard = _BatchGuard(self._qgroup, self._pgroup)
            count = 0
            for i in self._queue_ids(q, d).tolist():
                if guard.accepts(i, q, d):
                    guard.add(i, q, d)
                    count += 1
            self._pool_sizes[(q, d)] = count
        return count

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

    def _find_partners(self) -> None:
        if len(self.languages) < 2:
            raise SpecError("sampling.strategy",
                            f"{self.strategy!r} needs cross-lingual pairs, i.e. two or more "
                            "languages in the training data", value=self.languages,
                            allowed="monolingual, or hybrid with mono_ratio = 1")
        for x in self.languages:
            self.partners[x] = [y for y in self.languages
                                if y != x and self.pool_size(x, y) >= self.batch_size]
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

    def _make_plan(self) -> ExposurePlan:
        """The expected composition of this sampler's pairs (see :mod:`xlrun.train.exposure`)."""
        m = self.mono_ratio
        base = random_arm_plan(self.languages, self.weights, self.partners, m)
        if not self.clusters:
            return base
        s = self.sampling
        if s.exposure == "free":
            return free_clustered_plan(self.languages, self.weights, self.partners,
                                       self.clusters, s.pairing, s.cluster_choice, m)
        return matched_plan(base, self.clusters, s.pairing, self.partners,
                            tolerance=s.exposure_tolerance)

    # ----------------------------------------------------------------- planned draws
    def _prepare_planned_draws(self) -> None:
        plan = self.plan
        self._mono_p = plan.mono_weights()
        self._cross = plan.cross_pairs()
        self._cross_p = plan.cross_weights()
        if not self.cluster_batch:
            return
        idx = self._lang_index
        joint = plan.joint
        # per cluster: the distribution of one pair inside it, for mono / cross / either kind
        self._blocks: list[dict[str, tuple[list[tuple[str, str]], np.ndarray]]] = []
        mass = {"mono": [], "cross": [], "any": []}
        for c in self.clusters:
            cells = {"mono": [(x, x) for x in c],
                     "cross": [(x, y) for x in c for y in c if x != y]}
            cells["any"] = cells["mono"] + cells["cross"]
            block = {}
            for kind, pairs in cells.items():
                w = np.array([joint[idx[x], idx[y]] for x, y in pairs], dtype=np.float64)
                mass[kind].append(w.sum())
                block[kind] = (pairs, w / w.sum() if w.sum() > 0 else w)
            self._blocks.append(block)
        self._cluster_p = {k: np.array(v) / max(sum(v), 1e-300) for k, v in mass.items()}

    def _choose(self, rng: np.random.Generator, p: np.ndarray) -> int:
        return int(rng.choice(len(p), p=p)) if len(p) > 1 else 0

    def _planned_slot(self, rng: np.random.Generator, mono: bool,
                      cell: int | None = None) -> tuple[str, str]:
        if mono:
            i = cell if cell is not None else self._choose(rng, self._mono_p)
            return self.languages[i], self.languages[i]
        return self._cross[cell if cell is not None else self._choose(rng, self._cross_p)]

    def _block_slots(self, rng: np.random.Generator, cluster: int, kind: str,
                     n: int) -> list[tuple[str, str]]:
        pairs, p = self._blocks[cluster][kind]
        return [pairs[self._choose(rng, p)] for _ in range(n)]

    def _exact_units(self, total: int) -> list[_Unit]:
        """The exact schedule: ``total`` batches allocated from the plan, order shuffled."""
        m = self.mono_ratio
        n_mono = round_half_up(m * total) if not self.per_pair else 0
        units: list[_Unit] = []
        if self.per_pair:
            if self.cluster_batch:
                for c, k in enumerate(apportion(self._cluster_p["any"], total)):
                    units += [_Unit(False, c)] * int(k)
            else:
                units = [_Unit(False, -1)] * total
        elif self.cluster_batch:
            for c, k in enumerate(apportion(self._cluster_p["mono"], n_mono)):
                units += [_Unit(True, c)] * int(k)
            for c, k in enumerate(apportion(self._cluster_p["cross"], total - n_mono)):
                units += [_Unit(False, c)] * int(k)
        else:
            for i, k in enumerate(apportion(self._mono_p, n_mono)):
                units += [_Unit(True, i)] * int(k)
            # cross pairs: counts whose per-language query and passage totals also round
            # only up or down (a plain largest-remainder would favour the first languages)
            idx = self._lang_index
            expected = np.zeros((len(self.languages), len(self.languages)))
            for (x, y), p in zip(self._cross, self._cross_p, strict=True):
                expected[idx[x], idx[y]] = p * (total - n_mono)
            counts = round_matrix(expected)
            for i, (x, y) in enumerate(self._cross):
                units += [_Unit(False, i)] * int(counts[idx[x], idx[y]])
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 0xE7AC7, total]))
        return [units[i] for i in rng.permutation(len(units))]

    def _plan_planned(self, rng: np.random.Generator,
                      step: int) -> tuple[BatchKind, list[tuple[str, str]]]:
        unit = self._units[step] if self._units is not None and step < len(self._units) else None
        b = self.batch_size
        if self.per_pair:
            if self.cluster_batch:
                c = unit.cell if unit else self._choose(rng, self._cluster_p["any"])
                return "multi", self._block_slots(rng, c, "any", b)
            if unit is not None:
                monos = np.zeros(b, dtype=bool)
                monos[rng.permutation(b)[:round_half_up(self.mono_ratio * b)]] = True
            else:
                monos = rng.random(b) < self.mono_ratio
            return "multi", [self._planned_slot(rng, bool(m)) for m in monos]
        if unit is not None:
            mono = unit.mono
        elif self.fixed_mono is not None:
            mono = self.fixed_mono
        else:
            mono = bool(rng.random() < self.mono_ratio)
        kind: BatchKind = "mono" if mono else "cross"
        if self.cluster_batch:
            key = "mono" if mono else "cross"
            c = unit.cell if unit else self._choose(rng, self._cluster_p[key])
            return kind, self._block_slots(rng, c, key, b)
        return kind, [self._planned_slot(rng, mono, unit.cell if unit else None)]

    # ----------------------------------------------------------------- free (0.1) draws
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

    def _plan_free(self, rng: np.random.Generator) -> tuple[BatchKind, list[tuple[str, str]]]:
        """Unclustered sampling and ``exposure = "free"``: the draws of xlrun 0.1, in the same
        order from the same generator."""
        b = self.batch_size
        if self.per_pair:
            kind: BatchKind = "multi"
            monos = [bool(m) for m in rng.random(b) < self.mono_ratio]
        else:
            mono = (self.fixed_mono if self.fixed_mono is not None
                    else bool(rng.random() < self.mono_ratio))
            kind = "mono" if mono else "cross"
            monos = [mono]
        if self.cluster_batch:
            cluster = self._cluster(rng, cross=not all(monos))
            if not self.per_pair:
                monos = monos * b
            return kind, [self._slot(rng, m, cluster) for m in monos]
        return kind, [self._slot(rng, m) for m in monos]

    # ----------------------------------------------------------------- batches
    def _rng(self, step: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, 0x5A3B1E, step]))

    def _queue(self, q: str, d: str) -> _Queue:
        key = q if q == d else f"{q}>{d}"
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue(self._queue_ids(q, d), q, d, self.seed)
        return queue

    def next_batch(self) -> Batch:
        """The batch at :attr:`step`; advances the sampler by one batch."""
        step = self.step
        rng = self._rng(step)
        kind, slots = self._plan_planned(rng, step) if self._planned else self._plan_free(rng)
        guard = _BatchGuard(self._qgroup, self._pgroup)
        if len(set(slots)) == 1:
            q, d = slots[0]
            ids = self._queue(q, d).take(self.batch_size, guard)
            items = tuple(PairRef(self._pids[i], q, d) for i in ids)
        else:
            items = tuple(PairRef(self._pids[self._queue(q, d).take(1, guard)[0]], q, d)
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

    def plan_rows(self) -> list[dict[str, Any]]:
        """The plan as ``sampling_plan`` rows: per batch kind and language cell, its
        probability within the kind and the size of its id pool."""
        rows = []
        mono_p = self.plan.mono_weights()
        if self.mono_ratio > 0:
            for lang, p in zip(self.languages, mono_p, strict=True):
                if p > 0:
                    rows.append({"batch_kind": "mono", "query_lang": lang, "doc_lang": lang,
                                 "probability": float(p), "pool": self.pool_size(lang, lang)})
        if self.mono_ratio < 1:
            for (x, y), p in zip(self.plan.cross_pairs(), self.plan.cross_weights(),
                                 strict=True):
                rows.append({"batch_kind": "cross", "query_lang": x, "doc_lang": y,
                             "probability": float(p), "pool": self.pool_size(x, y)})
        return rows


SAMPLERS: Registry[type[BatchSampler]] = Registry("sampler")
"""``sampling.strategy`` → sampler class (each registered by its module in this package)."""


def make_sampler(sampling: SamplingSection, corpus: TrainCorpus, batch_size: int, seed: int,
                 clusters: Sequence[Sequence[str]] | None = None,
                 total_batches: int | None = None) -> BatchSampler:
    """The sampler named by ``sampling.strategy`` (SpecError for unknown names).

    ``total_batches`` (the run's steps × gradient-accumulation batches) is needed by
    ``sampling.schedule = "exact"``.
    """
    cls = SAMPLERS.get(sampling.strategy, "sampling.strategy")
    return cls(corpus, sampling, batch_size, seed=seed, clusters=clusters,
               total_batches=total_batches)
