"""Batch samplers: probabilities, constraints, determinism, resume and spec errors."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.errors import SpecError
from xlrun.spec.schema import SamplingSection
from xlrun.train.samplers import SAMPLERS, Batch, PairRef, make_sampler


def corpus_of(sizes: dict[str, int], shared: bool = True) -> TrainCorpus:
    """Language ``l`` has ids ``0..sizes[l]-1`` (so smaller languages are subsets)."""
    ex = []
    for lang, n in sizes.items():
        for i in range(n):
            pid = f"p{i}" if shared else f"{lang}{i}"
            ex.append(TrainExample(pid, lang, f"question {i} in {lang}", f"passage {i} in {lang}"))
    return TrainCorpus.from_examples(ex, name="synthetic")


SIZES = {"de": 40, "en": 80, "es": 120, "ar": 160}


def sampling(**kw) -> SamplingSection:
    return dataclasses.replace(SamplingSection(), **kw)


def run(sampler, n: int) -> list[Batch]:
    return [sampler.next_batch() for _ in range(n)]


def test_registry_names():
    assert SAMPLERS.names() == ["cross_lingual", "hybrid", "monolingual", "multilingual"]


@pytest.mark.parametrize("how,temperature", [("uniform", 1.0), ("size", 1.0), ("size", 0.5)])
def test_monolingual_language_frequencies(how, temperature):
    s = make_sampler(sampling(strategy="monolingual", language_sampling=how,
                              temperature=temperature), corpus_of(SIZES), 4, seed=1)
    counts = Counter(b.items[0].query_lang for b in run(s, 3000))
    langs = sorted(SIZES)
    w = np.ones(4) if how == "uniform" else np.array([SIZES[x] for x in langs]) ** temperature
    expected = w / w.sum() * 3000
    assert chisquare([counts[x] for x in langs], expected).pvalue > 1e-3
    # and the test can fail: the wrong distribution is rejected
    wrong = np.full(4, 750.0) if how != "uniform" else np.array([300, 600, 900, 1200.0])
    assert chisquare([counts[x] for x in langs], wrong).pvalue < 1e-3


def test_cross_pair_frequencies_follow_renormalised_rule():
    s = make_sampler(sampling(strategy="cross_lingual", language_sampling="size"),
                     corpus_of(SIZES), 4, seed=2)
    batches = run(s, 4000)
    langs = sorted(SIZES)
    p = np.array([SIZES[x] for x in langs], dtype=float)
    p /= p.sum()
    pairs = [(a, b) for a in langs for b in langs if a != b]
    exp = np.array([p[langs.index(a)] * p[langs.index(b)] / (1 - p[langs.index(a)])
                    for a, b in pairs]) * 4000
    counts = Counter((b.items[0].query_lang, b.items[0].doc_lang) for b in batches)
    assert all(b.kind == "cross" for b in batches)
    assert all(it.query_lang != it.doc_lang for b in batches for it in b.items)
    assert chisquare([counts[pr] for pr in pairs], exp).pvalue > 1e-3


@pytest.mark.parametrize("ratio", [0.3, 0.5, 0.8])
def test_hybrid_mono_share(ratio):
    s = make_sampler(sampling(strategy="hybrid", mono_ratio=ratio, language_sampling="uniform"),
                     corpus_of(SIZES), 4, seed=3)
    batches = run(s, 2000)
    n_mono = sum(b.kind == "mono" for b in batches)
    assert chisquare([n_mono, 2000 - n_mono], [2000 * ratio, 2000 * (1 - ratio)]).pvalue > 1e-3
    for b in batches:
        same = {it.query_lang == it.doc_lang for it in b.items}
        assert same == {b.kind == "mono"}
        assert len({(it.query_lang, it.doc_lang) for it in b.items}) == 1


CLUSTERS = [["de", "en"], ["es", "ar"]]
SIX = {"de": 40, "en": 50, "es": 60, "ar": 70, "fr": 45, "ru": 55}
CLUSTERS3 = [["de", "en", "fr"], ["es", "ar"], ["ru"]]


def cluster_of(lang: str, clusters) -> int:
    return next(i for i, c in enumerate(clusters) if lang in c)


def test_hybrid_clustered_within_over_400_batches():
    s = make_sampler(sampling(strategy="hybrid", language_sampling="clustered", pairing="within",
                              mono_ratio=0.5), corpus_of(SIX), 8, seed=4, clusters=CLUSTERS3)
    batches = run(s, 500)
    share = sum(b.kind == "mono" for b in batches) / len(batches)
    assert abs(share - 0.5) <= 0.05
    for b in batches:
        for it in b.items:
            assert cluster_of(it.query_lang, CLUSTERS3) == cluster_of(it.doc_lang, CLUSTERS3)
    # a singleton cluster (ru) can only appear in mono batches
    assert any(b.items[0].query_lang == "ru" for b in batches if b.kind == "mono")
    assert not any(b.items[0].query_lang == "ru" for b in batches if b.kind == "cross")


def test_across_pairing_constraint():
    s = make_sampler(sampling(strategy="cross_lingual", language_sampling="clustered",
                              pairing="across"), corpus_of(SIX), 8, seed=5, clusters=CLUSTERS3)
    batches = run(s, 300)
    for b in batches:
        for it in b.items:
            assert cluster_of(it.query_lang, CLUSTERS3) != cluster_of(it.doc_lang, CLUSTERS3)
    assert {cluster_of(b.items[0].query_lang, CLUSTERS3) for b in batches} == {0, 1, 2}


def test_cluster_choice_uniform_frequencies():
    s = make_sampler(sampling(strategy="monolingual", language_sampling="clustered",
                              cluster_choice="uniform", exposure="free"), corpus_of(SIX), 8, seed=6,
                     clusters=CLUSTERS3)
    counts = Counter(cluster_of(b.items[0].query_lang, CLUSTERS3) for b in run(s, 1500))
    assert chisquare([counts[i] for i in range(3)], [500, 500, 500]).pvalue > 1e-3


@pytest.mark.parametrize("strategy", ["hybrid", "multilingual", "monolingual", "cross_lingual"])
@pytest.mark.parametrize("exposure", ["free", "matched"])
def test_cluster_batch_keeps_one_cluster_and_mixes(strategy, exposure):
    clusters = CLUSTERS3 if exposure == "free" or strategy != "cross_lingual" else [
        ["de", "en", "fr"], ["es", "ar", "ru"]]  # matched cross-only arms need no singleton
    s = make_sampler(sampling(strategy=strategy, language_sampling="clustered",
                              pairing="cluster_batch", exposure=exposure), corpus_of(SIX), 16,
                     seed=7, clusters=clusters)
    mixed = 0
    for b in run(s, 200):
        cl = {cluster_of(x, clusters) for it in b.items for x in (it.query_lang, it.doc_lang)}
        assert len(cl) == 1
        mixed += len(b.composition()) > 1
    assert mixed > 50


@pytest.mark.parametrize("strategy,how,pairing", [
    ("multilingual", "size", "within"), ("hybrid", "clustered", "cluster_batch"),
    ("multilingual", "clustered", "across"), ("monolingual", "uniform", "within"),
    ("cross_lingual", "uniform", "within")])
def test_no_translations_in_one_batch(strategy, how, pairing):
    # small languages: queues wrap around epochs often, multilingual draws collide often
    small = {"de": 12, "en": 13, "es": 14, "ar": 15}
    s = make_sampler(sampling(strategy=strategy, language_sampling=how, pairing=pairing),
                     corpus_of(small), 10, seed=8, clusters=CLUSTERS)
    for b in run(s, 300):
        assert len(b.items) == 10
        pids = [it.parallel_id for it in b.items]
        assert len(set(pids)) == len(pids)


def test_each_language_is_an_epoch_then_reshuffled():
    s = make_sampler(sampling(strategy="monolingual", language_sampling="uniform"),
                     corpus_of({"de": 12}), 4, seed=9)
    b = run(s, 6)
    epoch1 = [it.parallel_id for x in b[:3] for it in x.items]
    epoch2 = [it.parallel_id for x in b[3:] for it in x.items]
    assert sorted(epoch1) == sorted(epoch2) == sorted(f"p{i}" for i in range(12))
    assert epoch1 != epoch2


def test_multilingual_items_draw_their_own_languages():
    s = make_sampler(sampling(strategy="multilingual", mono_ratio=0.25), corpus_of(SIZES), 32,
                     seed=10)
    items = [it for b in run(s, 100) for it in b.items]
    mono = sum(it.query_lang == it.doc_lang for it in items)
    assert chisquare([mono, len(items) - mono], [len(items) * .25, len(items) * .75]).pvalue > 1e-3
    assert all(b.kind == "multi" for b in run(s, 5))


def test_deterministic_and_seed_dependent():
    spec = sampling(strategy="hybrid", language_sampling="size")
    a = run(make_sampler(spec, corpus_of(SIZES), 8, seed=11), 50)
    b = run(make_sampler(spec, corpus_of(SIZES), 8, seed=11), 50)
    c = run(make_sampler(spec, corpus_of(SIZES), 8, seed=12), 50)
    assert a == b
    assert a != c
    assert [x.step for x in a] == list(range(50))


@pytest.mark.parametrize("strategy", ["hybrid", "multilingual"])
@pytest.mark.parametrize("exposure,schedule,pairing", [
    ("free", "random", "within"), ("matched", "random", "within"),
    ("matched", "exact", "within"), ("matched", "exact", "cluster_batch"),
    ("free", "exact", "across")])
def test_resume_equals_uninterrupted(strategy, exposure, schedule, pairing):
    spec = sampling(strategy=strategy, language_sampling="clustered", pairing=pairing,
                    exposure=exposure, schedule=schedule)
    corpus = corpus_of({"de": 12, "en": 13, "es": 14, "ar": 15})

    def make():
        return make_sampler(spec, corpus, 6, seed=13, clusters=CLUSTERS, total_batches=80)

    full = run(make(), 80)
    first = make()
    run(first, 37)
    state = first.state_dict()
    import json
    state = json.loads(json.dumps(state))  # plain data
    resumed = make()
    resumed.load_state_dict(state)
    assert run(resumed, 43) == full[37:]
    replayed = make()
    replayed.skip_to(37)
    assert run(replayed, 43) == full[37:]


def test_composition():
    b = Batch(0, "multi", (PairRef("a", "de", "en"), PairRef("b", "de", "en"),
                           PairRef("c", "es", "es")))
    assert b.composition() == {("de", "en"): 2, ("es", "es"): 1}


def test_errors():
    one = corpus_of({"de": 50})
    with pytest.raises(SpecError, match="sampling.strategy"):
        make_sampler(sampling(strategy="cross_lingual"), one, 8, seed=0)
    with pytest.raises(SpecError, match="sampling.strategy"):
        make_sampler(sampling(strategy="hybrid"), one, 8, seed=0)
    make_sampler(sampling(strategy="hybrid", mono_ratio=1.0), one, 8, seed=0)  # fine
    with pytest.raises(SpecError, match=r"sampling.clusters\[1\].*'fr'"):
        make_sampler(sampling(language_sampling="clustered"), corpus_of(SIZES), 8, seed=0,
                     clusters=[["de", "en"], ["fr"]])
    with pytest.raises(SpecError, match="sampling.pairing"):
        make_sampler(sampling(language_sampling="clustered", pairing="across"),
                     corpus_of({"de": 20, "en": 20}), 8, seed=0, clusters=[["de", "en"]])
    with pytest.raises(SpecError, match="train.batch_size.*de"):
        make_sampler(sampling(strategy="monolingual"), corpus_of(SIZES), 41, seed=0)
    with pytest.raises(SpecError, match="train.batch_size"):
        make_sampler(sampling(strategy="cross_lingual"), corpus_of(SIZES, shared=False), 4,
                     seed=0)
    with pytest.raises(SpecError, match="sampling.clusters"):
        make_sampler(sampling(language_sampling="clustered"), corpus_of(SIZES), 8, seed=0,
                     clusters=[])
    with pytest.raises(SpecError, match="sampling.clusters"):  # within: only singletons
        make_sampler(sampling(strategy="cross_lingual", language_sampling="clustered"),
                     corpus_of(SIZES), 8, seed=0, clusters=[["de"], ["en"]])
    with pytest.raises(SpecError, match="sampling.strategy"):
        make_sampler(sampling(strategy="nope"), corpus_of(SIZES), 8, seed=0)


def test_size_cluster_choice_keeps_the_language_marginal():
    """Clustered by size: monolingual batches draw each language as often as unclustered size
    sampling does (the clustered arm changes who shares batches, not language frequencies)."""
    sizes = {"de": 40, "en": 80, "es": 120, "ar": 160, "hi": 60, "vi": 100}
    corpus = corpus_of(sizes)
    clusters = [["ar", "de", "en"], ["es", "hi"], ["vi"]]
    n = 4000
    plain = make_sampler(sampling(strategy="monolingual", language_sampling="size"),
                         corpus, 4, seed=3)
    clustered = make_sampler(sampling(strategy="monolingual", language_sampling="clustered",
                                      cluster_choice="size", exposure="free"), corpus, 4, seed=3,
                             clusters=clusters)
    langs = sorted(sizes)
    w = np.array([sizes[x] for x in langs], dtype=float)
    expected = w / w.sum() * n
    for s in (plain, clustered):
        counts = Counter(b.items[0].query_lang for b in run(s, n))
        assert chisquare([counts[x] for x in langs], expected).pvalue > 1e-3
    # uniform cluster choice does not keep it: the singleton cluster [vi] gets a third
    uni = make_sampler(sampling(strategy="monolingual", language_sampling="clustered",
                                cluster_choice="uniform", exposure="free"), corpus, 4, seed=3,
                       clusters=clusters)
    counts = Counter(b.items[0].query_lang for b in run(uni, n))
    assert chisquare([counts[x] for x in langs], expected).pvalue < 1e-3
