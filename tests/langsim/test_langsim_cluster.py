"""Clustering: determinism, silhouette, clusters for a run, the PNG."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xlrun.errors import SpecError, UsageError
from xlrun.langsim import DistanceMatrix, cluster, clusters_for_run, distance_matrix
from xlrun.langsim.cluster import manual_clusters, renumber, silhouette_score
from xlrun.spec.schema import SamplingSection
from xlrun.train.samplers import BatchSampler

LANGS = ["ar", "de", "en", "es", "fr", "hi", "ja", "ko", "pt", "ru", "vi", "zh"]


def _toy() -> DistanceMatrix:
    # two obvious groups {a1,a2,a3} and {b1,b2}, plus c far from everything
    langs = ("de", "en", "nl", "ja", "ko", "sw")
    v = np.full((6, 6), 0.9)
    v[np.ix_([0, 1, 2], [0, 1, 2])] = 0.1
    v[np.ix_([3, 4], [3, 4])] = 0.2
    np.fill_diagonal(v, 0.0)
    return DistanceMatrix("toy", langs, v)


def test_cluster_k_and_threshold_on_toy() -> None:
    dm = _toy()
    c = cluster(dm, k=3)
    assert sorted(map(sorted, c.clusters)) == [["de", "en", "nl"], ["ja", "ko"], ["sw"]]
    t = cluster(dm, threshold=0.5)
    assert sorted(map(sorted, t.clusters)) == sorted(map(sorted, c.clusters))
    one = cluster(dm, threshold=5.0)
    assert one.n_clusters == 1 and one.silhouette is None
    each = cluster(dm, k=6)
    assert each.n_clusters == 6 and each.silhouette is None


def test_cluster_ids_by_first_appearance_in_sorted_order() -> None:
    c = cluster(_toy(), k=3)
    # sorted: de en ja ko nl sw → de's cluster is 0, ja's 1, sw's 2
    assert c.labels == {"de": 0, "en": 0, "ja": 1, "ko": 1, "nl": 0, "sw": 2}
    assert c.clusters == [["de", "en", "nl"], ["ja", "ko"], ["sw"]]
    assert c.rows()[0] == {"lang": "de", "cluster": 0}
    assert renumber([5, 5, 2, 7, 2]) == [0, 0, 1, 2, 1]


@pytest.mark.parametrize("method", ["average", "complete", "ward"])
def test_clustering_stable_across_calls_and_input_order(method: str) -> None:
    src = "0.5*uriel:syntax_knn+0.5*script"
    first = cluster(distance_matrix(src, LANGS), k=4, method=method)
    again = cluster(distance_matrix(src, LANGS), k=4, method=method)
    shuffled = cluster(distance_matrix(src, list(reversed(LANGS))), k=4, method=method)
    assert first.labels == again.labels == shuffled.labels
    assert first.n_clusters == 4
    assert np.array_equal(first.linkage_matrix, shuffled.linkage_matrix)


def test_k_gives_exactly_k_clusters_with_tied_distances() -> None:
    c = cluster(distance_matrix("script", LANGS), k=5)
    assert c.n_clusters == 5


def test_cluster_argument_errors() -> None:
    dm = _toy()
    with pytest.raises(UsageError):
        cluster(dm)
    with pytest.raises(UsageError):
        cluster(dm, k=2, threshold=0.3)
    with pytest.raises(UsageError, match="between 1 and 6"):
        cluster(dm, k=7)
    with pytest.raises(UsageError, match="linkage"):
        cluster(dm, k=2, method="single")


def _silhouette_brute(d: np.ndarray, labels: list[int]) -> float:
    n = len(labels)
    s = []
    for i in range(n):
        own = [j for j in range(n) if labels[j] == labels[i] and j != i]
        if not own:
            s.append(0.0)
            continue
        a = sum(d[i, j] for j in own) / len(own)
        b = min(
            sum(d[i, j] for j in range(n) if labels[j] == c) / sum(1 for x in labels if x == c)
            for c in set(labels) if c != labels[i])
        s.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return sum(s) / n


def test_silhouette_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(9, 3))
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    for labels in ([0, 0, 0, 1, 1, 1, 2, 2, 2], [0, 1, 0, 1, 0, 1, 0, 1, 2], [3, 3, 1, 1, 1, 1, 1, 1, 1]):
        assert silhouette_score(d, labels) == pytest.approx(_silhouette_brute(d, labels))
    assert silhouette_score(d, [0] * 9) is None
    assert silhouette_score(d, list(range(9))) is None
    dm = distance_matrix("uriel:syntax_knn", LANGS)
    c = cluster(dm, k=3)
    order = list(c.order)
    assert c.silhouette == pytest.approx(
        _silhouette_brute(dm.subset(order).values, [c.labels[x] for x in order]))


def test_clusters_for_run_manual() -> None:
    s = SamplingSection(language_sampling="clustered", similarity="manual",
                        clusters=[["de", "en", "nl"], ["ar", "he"], ["zh"]])
    clusters, dm = clusters_for_run(s, ["ar", "de", "en", "fi", "zh", "sw"], None)
    assert dm is None
    # 'nl'/'he' not trained on: dropped; 'fi'/'sw' in no cluster: own singletons at the end
    assert clusters == [["de", "en"], ["ar"], ["zh"], ["fi"], ["sw"]]
    assert manual_clusters([["deu", "eng"]], ["de", "en"]) == [["de", "en"]]
    # a manual arm without clusters is a spec error (the sampler's validate, at submit time)
    with pytest.raises(SpecError, match="sampling.clusters"):
        BatchSampler.validate(SamplingSection(language_sampling="clustered",
                                              similarity="manual"))


def test_clusters_for_run_similarity() -> None:
    s = SamplingSection(language_sampling="clustered", similarity="uriel:syntax_knn",
                        n_clusters=3, linkage="average")
    clusters, dm = clusters_for_run(s, LANGS, None)
    assert dm is not None and dm.langs == tuple(LANGS)
    assert len(clusters) == 3
    assert sorted(itertools.chain.from_iterable(clusters)) == sorted(LANGS)
    expected = cluster(dm, k=3, method="average").clusters
    assert clusters == expected
    t = SamplingSection(similarity="script", distance_threshold=0.5)
    clusters_t, _ = clusters_for_run(t, ["de", "en", "ru", "uk"], None)
    assert clusters_t == [["de", "en"], ["ru", "uk"]]
    with pytest.raises(SpecError, match="n_clusters"):
        BatchSampler.validate(SamplingSection(language_sampling="clustered", similarity="script"))
    with pytest.raises(UsageError, match="exactly one"):  # the library call, unvalidated
        clusters_for_run(SamplingSection(similarity="script"), ["de", "ru"], None)


def test_plot_writes_png(tmp_path) -> None:
    from xlrun.langsim.plots import plot_clustering

    dm = distance_matrix("uriel:syntax_knn", LANGS)
    out = plot_clustering(dm, cluster(dm, k=3), tmp_path / "sub" / "c.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    heat_only = plot_clustering(dm, None, tmp_path / "h.png")
    assert heat_only.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("k", [2, 3, 5])
def test_dendrogram_colours_are_the_clusters(tmp_path, monkeypatch, k: int) -> None:
    """Leaves share a colour exactly when they share a cluster (links joining clusters are
    grey), and the tick labels wear their cluster's colour."""
    from matplotlib.figure import Figure
    from scipy.cluster import hierarchy

    from xlrun.langsim import plots

    drawn: list[dict] = []
    figures: list[Figure] = []
    original, savefig = hierarchy.dendrogram, Figure.savefig
    monkeypatch.setattr(plots.hierarchy, "dendrogram",
                        lambda *a, **kw: drawn.append(original(*a, **kw)) or drawn[-1])
    monkeypatch.setattr(Figure, "savefig",
                        lambda self, *a, **kw: figures.append(self) or savefig(self, *a, **kw))
    dm = distance_matrix("uriel:syntax_knn", LANGS)
    result = cluster(dm, k=k)
    plots.plot_clustering(dm, result, tmp_path / "c.png")
    tree = drawn[-1]
    colour_of = dict(zip(tree["ivl"], tree["leaves_color_list"], strict=True))
    sizes = {c: sum(1 for x in result.labels.values() if x == c) for c in result.labels.values()}
    for a in LANGS:
        for b in LANGS:
            if a < b and sizes[result.labels[a]] > 1 and sizes[result.labels[b]] > 1:
                same_cluster = result.labels[a] == result.labels[b]
                assert (colour_of[a] == colour_of[b]) == same_cluster, (a, b)
    for lang, c in result.labels.items():
        if sizes[c] > 1:
            assert colour_of[lang] == plots.cluster_colour(c)
    ticks = {t.get_text(): t.get_color() for t in figures[-1].axes[0].get_yticklabels()}
    assert {lang: ticks[lang] for lang in LANGS} == {
        lang: plots.cluster_colour(result.labels[lang]) for lang in LANGS}
