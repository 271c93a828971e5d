"""Exposure plans, exposure-matched clustered sampling, the exact schedule, and duplicate texts
never sharing a batch (synthetic corpora; the real LAReQA checks are in
``test_train_exposure_real.py``)."""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare

from xlrun.data.types import TrainCorpus, TrainExample, normalize_text
from xlrun.errors import SpecError
from xlrun.spec.schema import SamplingSection
from xlrun.train.exposure import (
    EXPOSURE_TOLERANCE,
    apportion,
    matched_plan,
    random_arm_plan,
    round_half_up,
    round_matrix,
)
from xlrun.train.samplers import make_sampler
from xlrun.train.trainer import draw_hard_negatives


def corpus(sizes: dict[str, int], overlap: dict[tuple[str, str], int] | None = None
           ) -> TrainCorpus:
    """Language ``l`` has ids ``0..n-1`` (smaller languages are subsets: unbalanced, partly
    parallel like MLQA-R)."""
    return TrainCorpus.from_examples(
        TrainExample(f"p{i}", lang, f"question {i} in {lang}", f"passage {i} in {lang}")
        for lang, n in sizes.items() for i in range(n))


UNBALANCED = {"ar": 160, "de": 150, "en": 400, "es": 140, "hi": 150, "vi": 155, "zh": 145}
CLUSTERS = [["ar", "de", "en", "es"], ["hi", "zh"], ["vi"]]


def sampling(**kw) -> SamplingSection:
    return dataclasses.replace(SamplingSection(), **kw)


def shares(batches) -> tuple[dict[str, float], dict[str, float]]:
    q, d = Counter(), Counter()
    for b in batches:
        for it in b.items:
            q[it.query_lang] += 1
            d[it.doc_lang] += 1
    n = sum(q.values())
    return {k: v / n for k, v in q.items()}, {k: v / n for k, v in d.items()}


def cluster_of(lang: str, clusters) -> int:
    return next(i for i, c in enumerate(clusters) if lang in c)


# ----------------------------------------------------------------------------- plans
def test_random_arm_plan_is_what_the_random_sampler_draws():
    s = make_sampler(sampling(strategy="hybrid", language_sampling="size"), corpus(UNBALANCED),
                     32, seed=1)
    plan = s.plan
    assert plan.joint.sum() == pytest.approx(1.0)
    assert np.trace(plan.joint) == pytest.approx(0.5)
    cells = Counter()
    n = 6000
    for _ in range(n):
        b = s.next_batch()
        cells[(b.items[0].query_lang, b.items[0].doc_lang)] += 1
    langs = plan.languages
    keys = [(x, y) for x in langs for y in langs if plan.joint[langs.index(x), langs.index(y)] > 0]
    expected = [plan.joint[langs.index(x), langs.index(y)] * n for x, y in keys]
    assert chisquare([cells[k] for k in keys], expected).pvalue > 1e-3


@pytest.mark.parametrize("pairing", ["within", "across", "cluster_batch"])
def test_matched_plan_keeps_the_random_arms_shares_on_balanced_data(pairing):
    balanced = dict.fromkeys(UNBALANCED, 150)
    s = make_sampler(sampling(language_sampling="clustered", pairing=pairing),
                     corpus(balanced), 32, seed=1, clusters=CLUSTERS)
    ref = random_arm_plan(s.languages, s.weights, s.partners, 0.5)
    assert s.plan.kind == "matched"
    assert np.allclose(s.plan.query_share, ref.query_share, atol=1e-9)
    assert np.allclose(s.plan.passage_share, ref.passage_share, atol=1e-9)
    assert np.trace(s.plan.joint) == pytest.approx(0.5)
    # only allowed cells carry mass
    langs = s.languages
    for i, x in enumerate(langs):
        for j, y in enumerate(langs):
            if i != j and s.plan.joint[i, j] > 0:
                same = cluster_of(x, CLUSTERS) == cluster_of(y, CLUSTERS)
                assert same == (pairing != "across")


def test_matched_plan_on_unbalanced_data_spreads_the_unavoidable_imbalance():
    s = make_sampler(sampling(language_sampling="clustered", pairing="within"),
                     corpus(UNBALANCED), 32, seed=1, clusters=CLUSTERS)
    ref = random_arm_plan(s.languages, s.weights, s.partners, 0.5)
    q, d = ref.query_share, ref.passage_share
    langs = list(s.languages)
    # the random arm draws en more often as a query than as a passage
    assert q[langs.index("en")] - d[langs.index("en")] > 0.01
    for c in CLUSTERS:
        idx = [langs.index(x) for x in c]
        shift = (q[idx].sum() - d[idx].sum()) / (2 * len(c))
        assert np.allclose(s.plan.query_share[idx], q[idx] - shift, atol=1e-9)
        assert np.allclose(s.plan.passage_share[idx], d[idx] + shift, atol=1e-9)
    assert 0 < s.plan.deviation() <= EXPOSURE_TOLERANCE
    assert any("deviation" in n for n in s.plan.notes)
    assert any("vi: a singleton cluster" in n for n in s.plan.notes)


def test_free_plan_is_what_the_free_sampler_draws():
    s = make_sampler(sampling(language_sampling="clustered", pairing="within", exposure="free"),
                     corpus(UNBALANCED), 32, seed=2, clusters=CLUSTERS)
    n = 6000
    counts = Counter()
    for _ in range(n):
        b = s.next_batch()
        counts[(b.items[0].query_lang, b.items[0].doc_lang)] += 1
    langs = s.plan.languages
    keys = [(x, y) for x in langs for y in langs if s.plan.joint[langs.index(x), langs.index(y)]]
    expected = [s.plan.joint[langs.index(x), langs.index(y)] * n for x, y in keys]
    assert chisquare([counts[k] for k in keys], expected).pvalue > 1e-3
    # and free exposure is not matched: vi never appears in a cross-lingual batch
    ref = random_arm_plan(s.languages, s.weights, s.partners, 0.5)
    vi = langs.index("vi")
    assert s.plan.query_share[vi] < ref.query_share[vi] - 0.03


def test_unmatchable_clusterings_are_spec_errors_naming_clusters_and_languages():
    c = corpus(UNBALANCED)
    # a cross-lingual-only arm cannot train a singleton cluster at all
    with pytest.raises(SpecError, match=r"sampling\.exposure.*\[vi\].*leave vi.*monolingual.*has none"):
        make_sampler(sampling(strategy="cross_lingual", language_sampling="clustered"), c, 32,
                     seed=0, clusters=CLUSTERS)
    # across with one dominant cluster: its queries need more passages than the rest has
    with pytest.raises(SpecError, match=r"sampling\.exposure.*across.*off by"):
        make_sampler(sampling(language_sampling="clustered", pairing="across"), c, 32, seed=0,
                     clusters=[["ar", "de", "en", "es", "vi"], ["hi", "zh"]])
    # the same clustering is fine when exposure is free
    make_sampler(sampling(language_sampling="clustered", pairing="across", exposure="free"), c,
                 32, seed=0, clusters=[["ar", "de", "en", "es", "vi"], ["hi", "zh"]])


def test_imbalance_above_the_tolerance_is_rejected():
    sizes = {"en": 300, "de": 100, "fr": 100, "es": 100}
    s = make_sampler(sampling(language_sampling="size"), corpus(sizes), 16, seed=0)
    with pytest.raises(SpecError, match=r"cannot keep each language's query and passage shares"):
        matched_plan(s.plan, [["en", "de"], ["fr", "es"]], "within", s.partners, tolerance=1e-3)
    plan = matched_plan(s.plan, [["en", "de"], ["fr", "es"]], "within", s.partners,
                        tolerance=1.0)
    assert plan.deviation() == pytest.approx(1 / 60, abs=1e-6)  # (q - d) of [en de] / 4
    with pytest.raises(SpecError, match=r"de en \(±1\.67 pp\)"):
        matched_plan(s.plan, [["en", "de"], ["fr", "es"]], "within", s.partners)
    # the spec's tolerance is what the sampler applies; the error says how to loosen it
    clustered = sampling(language_sampling="clustered")
    with pytest.raises(SpecError, match=r"exposure_tolerance \(now 0\.50 pp\)"):
        make_sampler(clustered, corpus(sizes), 16, seed=0, clusters=[["en", "de"], ["fr", "es"]])
    loose = dataclasses.replace(clustered, exposure_tolerance=0.02)
    s2 = make_sampler(loose, corpus(sizes), 16, seed=0, clusters=[["en", "de"], ["fr", "es"]])
    assert s2.plan.deviation() == pytest.approx(1 / 60, abs=1e-6)


# ----------------------------------------------------------------------------- exact schedule
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("ratio,steps", [(0.5, 200), (0.3, 201), (0.25, 50)])
def test_exact_schedule_has_exactly_round_mono_ratio_times_steps_mono_batches(seed, ratio, steps):
    s = make_sampler(sampling(language_sampling="size", mono_ratio=ratio, schedule="exact"),
                     corpus(UNBALANCED), 32, seed=seed, total_batches=steps)
    batches = [s.next_batch() for _ in range(steps)]
    assert sum(b.kind == "mono" for b in batches) == round_half_up(ratio * steps)


@pytest.mark.parametrize("arm", [
    dict(language_sampling="size"),
    dict(language_sampling="clustered", pairing="within"),
    dict(language_sampling="clustered", pairing="across"),
    dict(language_sampling="clustered", pairing="cluster_batch"),
])
def test_exact_schedule_puts_each_language_at_its_planned_share(arm):
    balanced = dict.fromkeys(UNBALANCED, 150)
    n = 700
    s = make_sampler(sampling(schedule="exact", **arm), corpus(balanced), 32, seed=3,
                     clusters=CLUSTERS if arm["language_sampling"] == "clustered" else None,
                     total_batches=n)
    q, d = shares([s.next_batch() for _ in range(n)])
    plan = s.plan.shares()
    # within two batches of the plan (cluster_batch draws its pairs inside the cluster)
    tol = 2.5 / n if arm.get("pairing") != "cluster_batch" else 0.02
    for lang, (pq, pd) in plan.items():
        assert abs(q[lang] - pq) <= tol and abs(d[lang] - pd) <= tol, lang


def test_exact_schedule_differs_by_seed_only_in_order():
    def counts(seed: int) -> Counter:
        s = make_sampler(sampling(schedule="exact", language_sampling="size"),
                         corpus(UNBALANCED), 32, seed=seed, total_batches=300)
        return Counter((b.kind, b.items[0].query_lang, b.items[0].doc_lang)
                       for b in (s.next_batch() for _ in range(300)))

    assert counts(1) == counts(2)
    s1 = make_sampler(sampling(schedule="exact"), corpus(UNBALANCED), 32, seed=1,
                      total_batches=300)
    s2 = make_sampler(sampling(schedule="exact"), corpus(UNBALANCED), 32, seed=2,
                      total_batches=300)
    assert [s1.next_batch().kind for _ in range(40)] != [s2.next_batch().kind for _ in range(40)]


def test_exact_schedule_needs_the_number_of_batches():
    with pytest.raises(ValueError, match="number of batches"):
        make_sampler(sampling(schedule="exact"), corpus(UNBALANCED), 32, seed=1)


def test_rounding_helpers():
    assert list(apportion(np.array([0.5, 0.25, 0.25]), 7)) == [3, 2, 2]
    assert apportion(np.array([1 / 3] * 3), 10).sum() == 10
    assert round_half_up(100.5) == 101 and round_half_up(2.5) == 3 and round_half_up(2.49) == 2
    rng = np.random.default_rng(0)
    for _ in range(20):
        e = rng.random((6, 6)) * rng.integers(1, 40)
        np.fill_diagonal(e, 0)
        e *= np.floor(e.sum()) / e.sum()  # an integer total
        r = round_matrix(e)
        assert r.sum() == round(e.sum())
        assert np.all(np.abs(r - e) < 1)
        assert np.all(np.abs(r.sum(axis=1) - e.sum(axis=1)) < 1)
        assert np.all(np.abs(r.sum(axis=0) - e.sum(axis=0)) < 1)
        assert np.all(r[e == 0] == 0)


# ----------------------------------------------------------------------------- duplicates
def duplicated_corpus(n: int = 60) -> TrainCorpus:
    """Many ids share their passage text (as XQuAD-R questions share answer sentences), some
    share query texts; whitespace differences do not make texts different."""
    ex = []
    for lang in ("de", "en", "fr", "ru"):
        for i in range(n):
            passage = f"answer sentence {i // 3} in {lang}" + ("  " if i % 2 else "")
            query = f"question {i if i % 10 else 0} in {lang}"
            ex.append(TrainExample(f"p{i}", lang, query, passage))
    return TrainCorpus.from_examples(ex)


@pytest.mark.parametrize("arm", [
    dict(strategy="hybrid", language_sampling="size"),
    dict(strategy="multilingual", language_sampling="size"),
    dict(strategy="monolingual", language_sampling="uniform"),
    dict(strategy="hybrid", language_sampling="clustered", pairing="cluster_batch"),
    dict(strategy="multilingual", language_sampling="clustered", pairing="cluster_batch"),
    dict(strategy="hybrid", language_sampling="clustered", pairing="across", schedule="exact"),
])
def test_identical_texts_never_share_a_batch_and_nothing_is_lost(arm):
    c = duplicated_corpus()
    s = make_sampler(sampling(**arm), c, 8, seed=4, clusters=[["de", "en"], ["fr", "ru"]],
                     total_batches=400)
    seen = Counter()
    for _ in range(400):
        b = s.next_batch()
        assert len(b.items) == 8
        pids = [it.parallel_id for it in b.items]
        assert len(set(pids)) == len(pids)
        passages = [(it.doc_lang, normalize_text(c.get(it.doc_lang, it.parallel_id).passage))
                    for it in b.items]
        queries = [(it.query_lang, normalize_text(c.get(it.query_lang, it.parallel_id).query))
                   for it in b.items]
        assert len(set(passages)) == len(passages)
        assert len(set(queries)) == len(queries)
        seen.update((it.query_lang, it.parallel_id) for it in b.items)
    # deferred, not dropped: every example of every language was trained on
    assert len(seen) == 4 * 60


def test_too_few_distinct_texts_for_a_batch_is_a_spec_error():
    with pytest.raises(SpecError, match=r"train\.batch_size.*distinct"):
        make_sampler(sampling(strategy="monolingual"), duplicated_corpus(30), 12, seed=0)


def test_hard_negatives_never_repeat_a_positive_text():
    c = duplicated_corpus()
    s = make_sampler(sampling(strategy="hybrid"), c, 8, seed=5)
    for _ in range(100):
        b = s.next_batch()
        positives = {(it.doc_lang, normalize_text(c.get(it.doc_lang, it.parallel_id).passage))
                     for it in b.items}
        for refs in draw_hard_negatives(c, b, 3, seed=5):
            assert len(refs) == 3
            for lang, pid in refs:
                assert pid not in {it.parallel_id for it in b.items}
                assert (lang, normalize_text(c.get(lang, pid).passage)) not in positives
