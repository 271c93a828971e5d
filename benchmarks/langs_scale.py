"""Language similarity at the scale of Tatoeba and Belebele: distance matrices over every
evaluation language, clustering them, exposure-matched plans for up to 20 training languages,
and each evaluation language's nearest training cluster (what ``xlrun report --by language``
computes). Prints the coverage of each source over both language lists first.

    python benchmarks/langs_scale.py              # everything (~1 min on the 2-core dev box)
    python benchmarks/langs_scale.py --quick      # 10 training languages, one source
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import TypeVar

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.evaluate.tasks.belebele import VARIANTS
from xlrun.evaluate.tasks.tatoeba import LASER_LANGUAGES, PIVOT
from xlrun.langsim.cluster import cluster, clusters_for_run
from xlrun.langsim.coverage import coverage, summary
from xlrun.langsim.distances import distance_matrix
from xlrun.languages import normalize
from xlrun.report.seen import distance_fn, nearest_clusters
from xlrun.spec.schema import SamplingSection
from xlrun.train.samplers import make_sampler

T = TypeVar("T")
TRAIN_20 = ("ar", "de", "en", "es", "fr", "hi", "id", "it", "ja", "nl", "pt", "ru", "vi", "zh",
            "ko", "tr", "fi", "sw", "th", "he")
"""mMARCO's 14 languages and 6 more: a training set of 20."""


def timed(label: str, fn: Callable[[], T]) -> T:
    t0 = time.perf_counter()
    out = fn()
    print(f"  {label}: {time.perf_counter() - t0:.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    tatoeba = sorted({PIVOT, *(normalize(c) for c in LASER_LANGUAGES)})
    belebele = sorted({normalize(v) for v in VARIANTS})
    union = sorted(set(tatoeba) | set(belebele))
    print(f"languages: Tatoeba {len(tatoeba)} (with English), Belebele {len(belebele)}, "
          f"union {len(union)}")
    for name, langs in (("tatoeba", [c for c in tatoeba if c != PIVOT]), ("belebele", belebele)):
        totals = summary(coverage(langs))
        print(f"coverage {name} ({len(langs)}): " + "; ".join(
            f"{src} " + ", ".join(f"{k} {v}" for k, v in sorted(st.items()))
            for src, st in totals.items()))
    typed = [c for c in union if c != "ber"]  # Berber (a group, not a language) has no URIEL row
    sources = ["script"] if args.quick else ["script", "family", "uriel:syntax_knn",
                                             "uriel:fam", "0.5*uriel:syntax_knn+0.5*script"]
    print(f"distance matrices over {len(typed)} languages:")
    matrices = {s: timed(s, lambda s=s: distance_matrix(s, typed)) for s in sources}
    for s, dm in matrices.items():
        result = timed(f"cluster {s} into 12 (average linkage)",
                       lambda dm=dm: cluster(dm, k=12, method="average"))
        print(f"    sizes {sorted((len(c) for c in result.clusters), reverse=True)}")
    train = TRAIN_20[:10] if args.quick else TRAIN_20
    examples = [TrainExample(str(i), lang, f"{lang} q{i}", f"{lang} p{i}")
                for lang in train for i in range(300)]
    corpus = TrainCorpus.from_examples(examples)
    source = "uriel:syntax_knn"
    print(f"training on {len(train)} languages ({source}, threshold 0.3, min cluster 2):")
    sampling = SamplingSection(strategy="hybrid", language_sampling="clustered",
                               similarity=source, distance_threshold=0.3, min_cluster_size=2,
                               exposure="matched", schedule="exact")
    clusters, _ = timed("clusters_for_run", lambda: clusters_for_run(sampling, list(train)))
    print(f"    {clusters}")
    sampler = timed("exposure-matched sampler (plan + exact schedule of 5,000 batches)",
                    lambda: make_sampler(sampling, corpus, batch_size=32, seed=1,
                                         clusters=clusters, total_batches=5000))
    timed("5,000 batches drawn", lambda: [sampler.next_batch() for _ in range(5000)])
    near = timed(f"nearest training cluster of all {len(union)} evaluation languages",
                 lambda: nearest_clusters(union, clusters, distance_fn(
                     source, sorted({*union, *train}))))
    missing = [lang for lang, (_, d) in near.items() if d is None]
    print(f"    without a distance: {missing}")


if __name__ == "__main__":
    main()
