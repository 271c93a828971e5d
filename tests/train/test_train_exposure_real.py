"""The study's arms on the real LAReQA data (needs ../shared; skipped cleanly without it).

For both study specs (direction A trains on MLQA-R, B on XQuAD-R) and every clustered arm,
2,000 batches of 64 from the real sampler — clusters computed as the runs compute them, the
``embedding`` ones with the shipped multilingual-e5-small — must train every language as often,
as query and as passage, as the random arm (within 1 percentage point), keep ``within`` pairs
inside a cluster and ``across`` pairs between clusters, and never put two identical texts or
two translations in one batch.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xlrun.data.train_sources import load_train_corpus
from xlrun.data.types import normalize_text
from xlrun.execute.preflight import check_runs
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import load_spec
from xlrun.train.samplers import make_sampler

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SPECS = {"A": REPO / "experiments" / "lareqa_study.toml",
         "B": REPO / "experiments" / "lareqa_study_b.toml"}
BATCHES = 2000


@pytest.fixture(scope="module")
def study(e5_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Per direction: compiled runs, the arm plans (clusters) and the training corpus."""
    for name in ("mlqa-r", "xquad-r"):
        if not (SHARED / "data" / name).is_dir():
            pytest.skip(f"{SHARED / 'data' / name} is absent")
    out = tmp_path_factory.mktemp("study-out")
    mp = pytest.MonkeyPatch()
    mp.setenv("XLRUN_E5", str(e5_dir))
    try:
        result = {}
        for direction, path in SPECS.items():
            spec = load_spec(path)
            runs = compile_spec(spec)
            arms = check_runs(runs, experiment=spec.experiment.name, output_dir=out,
                             include_unclustered=True)
            corpus = load_train_corpus(runs[0].config.train_data if runs[0].config.train.steps
                                       else runs[1].config.train_data)
            result[direction] = (runs, arms, corpus)
        return result
    finally:
        mp.undo()


def _simulate(config, corpus, clusters):
    s = make_sampler(config.sampling, corpus, config.train.batch_size, config.train.seed,
                     [list(c) for c in clusters] or None, total_batches=BATCHES)
    return s, [s.next_batch() for _ in range(BATCHES)]


@pytest.mark.slow
@pytest.mark.parametrize("direction", ["A", "B"])
def test_clustered_arms_train_each_language_as_often_as_the_random_arm(study, direction):
    runs, arms, corpus = study[direction]
    by_key = {r.run_key: r for r in runs}
    clustered = [a for a in arms if "[" in a.arm]
    assert len(clustered) == 4, [a.arm for a in arms]  # syntax and embedding, within and across
    random_arm = next(a for a in arms if a.arm == "hybrid/size")
    ref = random_arm.plan.shares()
    for arm in clustered:
        config = by_key[arm.run_keys[0]].config
        assert config.sampling.exposure == "matched" and config.sampling.schedule == "exact"
        _sampler, batches = _simulate(config, corpus, arm.clusters)
        q, d = Counter(), Counter()
        label = {lang: i for i, c in enumerate(arm.clusters) for lang in c}
        for b in batches:
            assert len(b.items) == 64
            for it in b.items:
                q[it.query_lang] += 1
                d[it.doc_lang] += 1
                if it.query_lang != it.doc_lang:
                    same = label[it.query_lang] == label[it.doc_lang]
                    assert same == (config.sampling.pairing == "within"), (arm.arm, it)
        total = sum(q.values())
        for lang, (rq, rd) in ref.items():
            assert abs(q[lang] / total - rq) <= 0.01, (arm.arm, lang, q[lang] / total, rq)
            assert abs(d[lang] / total - rd) <= 0.01, (arm.arm, lang, d[lang] / total, rd)


@pytest.mark.slow
def test_xquadr_batches_hold_no_identical_texts_or_translations(study):
    runs, arms, corpus = study["B"]
    by_key = {r.run_key: r for r in runs}
    # XQuAD-R questions often share their answer sentence: the guard has work to do
    for lang in ("th", "en"):
        texts = Counter(normalize_text(corpus.get(lang, pid).passage) for pid in corpus.ids(lang))
        assert sum(n for n in texts.values() if n > 1) > 300
    for arm in arms:
        config = by_key[arm.run_keys[0]].config
        _, batches = _simulate(config, corpus, arm.clusters)
        for b in batches:
            assert len(b.items) == 64
            pids = [it.parallel_id for it in b.items]
            assert len(set(pids)) == 64, arm.arm
            passages = {(it.doc_lang, normalize_text(corpus.get(it.doc_lang, it.parallel_id)
                                                     .passage)) for it in b.items}
            queries = {(it.query_lang, normalize_text(corpus.get(it.query_lang, it.parallel_id)
                                                      .query)) for it in b.items}
            assert len(passages) == 64 and len(queries) == 64, arm.arm


@pytest.mark.slow
def test_embedding_distances_on_partially_parallel_mlqa_r(study, e5_dir, tmp_path):
    from xlrun.execute.training import load_encoder
    from xlrun.langsim.distances import distance_matrix
    from xlrun.langsim.embedding import SimilarityContext

    runs, _, corpus = study["A"]
    config = next(r.config for r in runs if r.config.sampling.similarity == "embedding"
                  and r.config.sampling.language_sampling == "clustered")
    # no MLQA-R id is in all 7 languages: a source that needs full parallelism cannot work
    common = set.intersection(*(set(corpus.ids(lang)) for lang in corpus.languages))
    assert not common
    encoder = load_encoder(dataclasses.replace(config.model, name=str(e5_dir)), "cpu",
                           tmp_path / "models")
    ctx = SimilarityContext.from_corpus(corpus, encoder, model_id=str(e5_dir),
                                        cache_dir=tmp_path / "langsim")
    dm = distance_matrix("embedding", corpus.languages, context=ctx)
    assert dm.values.shape == (7, 7)
    assert np.allclose(dm.values, dm.values.T)
    assert np.all(np.diag(dm.values) == 0)
    off = dm.values[~np.eye(7, dtype=bool)]
    assert np.all(off > 0) and np.all(off < 1)
