"""Similarity at the scale of Tatoeba and Belebele: which sources know which languages, and
distances, clusters and exposure plans with 100+ evaluation and 20 training languages."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from xlrun.cli import main
from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.errors import UsageError
from xlrun.evaluate.tasks.belebele import VARIANTS
from xlrun.evaluate.tasks.tatoeba import LASER_LANGUAGES
from xlrun.langsim.cluster import cluster, clusters_for_run
from xlrun.langsim.coverage import coverage, language_coverage
from xlrun.langsim.distances import distance_matrix
from xlrun.langsim.embedding import SimilarityContext
from xlrun.languages import normalize
from xlrun.report.seen import distance_fn, nearest_clusters
from xlrun.spec.schema import SamplingSection
from xlrun.train.samplers import make_sampler

TATOEBA = sorted({normalize(c) for c in LASER_LANGUAGES})
BELEBELE = sorted({normalize(v) for v in VARIANTS})
UNION = sorted({*TATOEBA, *BELEBELE, "en"})
TRAIN = ["ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "nl", "pt", "ru", "vi", "zh",
         "ko", "tr", "fi", "sw", "th", "he"]


def test_which_languages_each_source_knows() -> None:
    rows = {r.lang: r for r in coverage(UNION)}
    no_uriel = sorted(lang for lang, r in rows.items() if r.sources["uriel:syntax_knn"] == "none")
    assert no_uriel == ["ber"]  # Tatoeba's Berber is a language group, not a URIEL language
    assert all(r.script and r.family for r in rows.values())
    assert rows["de"].sources["uriel:syntax_knn"] == "observed"
    assert rows["tzl"].sources["uriel:syntax_knn"] == "predicted"  # Talossan: imputed only
    assert rows["eu"].sources["uriel:fam"] == "isolate"
    variant = language_coverage("bn-Latn")
    assert (variant.script, variant.sources) == ("Latn", language_coverage("bn").sources)


def test_every_source_gives_distances_over_all_evaluation_languages() -> None:
    typed = [x for x in UNION if x != "ber"]
    for source in ("script", "family", "uriel:syntax_knn", "0.5*uriel:syntax_knn+0.5*script"):
        dm = distance_matrix(source, typed if source.count("uriel") else UNION)
        assert len(dm.langs) >= 169
        assert len(cluster(dm, k=12, method="average").clusters) == 12
    assert distance_matrix("script", ["bn", "bn-Latn"]).get("bn", "bn-Latn") == 1.0
    assert distance_matrix("family", ["bn", "bn-Latn"]).get("bn", "bn-Latn") == 0.0


def test_twenty_training_languages_cluster_match_exposure_and_place_every_language() -> None:
    corpus = TrainCorpus.from_examples([TrainExample(str(i), lang, f"{lang} q{i}",
                                                     f"{lang} p{i}")
                                        for lang in TRAIN for i in range(40)])
    sampling = SamplingSection(strategy="hybrid", language_sampling="clustered",
                               similarity="uriel:syntax_knn", distance_threshold=0.3,
                               min_cluster_size=2, exposure="matched", schedule="exact")
    clusters, _ = clusters_for_run(sampling, TRAIN)
    assert sorted(x for c in clusters for x in c) == sorted(TRAIN) and len(clusters) > 1
    sampler = make_sampler(sampling, corpus, batch_size=8, seed=1, clusters=clusters,
                           total_batches=200)
    batches = [sampler.next_batch() for _ in range(200)]
    assert {it.query_lang for b in batches for it in b.items} == set(TRAIN)
    near = nearest_clusters(UNION, clusters, distance_fn("uriel:syntax_knn", UNION + TRAIN))
    assert sorted(lang for lang, (_, d) in near.items() if d is None) == ["ber"]


def test_xlrun_langs_coverage_lists_a_dataset() -> None:
    result = CliRunner().invoke(main, ["langs", "coverage", "--dataset", "tatoeba",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert len(out["languages"]) == 113 and out["summary"]["uriel:syntax_knn"]["none"] == 1
    bad = CliRunner().invoke(main, ["langs", "coverage"])
    assert bad.exit_code == 2 and "exactly one of --langs or --dataset" in bad.output


def test_languages_without_typology_still_have_script_family_and_embedding() -> None:
    langs = ["ber", "tzl", "bn", "bn-Latn"]
    texts = {lang: [f"{lang} sentence {i}" for i in range(4)] for lang in langs}

    def encode(batch: list[str]) -> np.ndarray:
        rng = [np.random.default_rng(abs(hash(t.split()[0])) % 2**32) for t in batch]
        out = np.vstack([r.normal(size=8) for r in rng])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    ctx = SimilarityContext(encode=encode, texts=texts, model_id="fake")
    for source in ("script", "family", "embedding", "embedding:parallel"):
        dm = distance_matrix(source, langs, context=ctx)
        assert dm.langs == tuple(langs)
    with pytest.raises(UsageError, match="'ber' has no usable URIEL vector"):
        distance_matrix("uriel:syntax_knn", langs)
