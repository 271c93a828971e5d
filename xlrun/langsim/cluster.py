"""Agglomerative clustering of languages from a distance matrix, and the clusters of a run.

Determinism: languages are sorted by code before the linkage is computed (so the input
order does not matter, ties included), and cluster ids are renumbered 0, 1, 2, ... in order of
first appearance in the sorted language list: the cluster of the alphabetically first
language is 0, the next new cluster met is 1, and so on.

``ward`` linkage assumes Euclidean distances; on other distances (cosine, 0/1) scipy still
computes it, but the merge heights are no longer variance increases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy.cluster import hierarchy

from xlrun.errors import UsageError
from xlrun.langsim.distances import distance_matrix
from xlrun.langsim.embedding import SimilarityContext
from xlrun.langsim.matrix import DistanceMatrix
from xlrun.languages import normalize, normalize_all
from xlrun.spec.schema import SamplingSection

Linkage = Literal["average", "complete", "ward"]
LINKAGES: tuple[str, ...] = ("average", "complete", "ward")


@dataclass(frozen=True, eq=False)
class Clustering:
    """Languages grouped into clusters.

    Attributes:
        source: the distance source string.
        method: the linkage (``average``, ``complete``, ``ward``).
        labels: language → cluster id (0-based, numbered as described in the module docstring).
        silhouette: mean silhouette width on the distances, ``None`` when undefined (one
            cluster, or as many clusters as languages).
        linkage_matrix: scipy linkage matrix over :attr:`order`.
        order: the (sorted) languages, in the order the linkage matrix indexes them.
    """

    source: str
    method: str
    labels: dict[str, int]
    silhouette: float | None
    linkage_matrix: np.ndarray
    order: tuple[str, ...] = ()

    @property
    def clusters(self) -> list[list[str]]:
        """Languages per cluster, by cluster id; languages sorted within a cluster."""
        n = max(self.labels.values(), default=-1) + 1
        out: list[list[str]] = [[] for _ in range(n)]
        for lang in sorted(self.labels):
            out[self.labels[lang]].append(lang)
        return out

    @property
    def n_clusters(self) -> int:
        """Number of clusters."""
        return len(set(self.labels.values()))

    def rows(self) -> list[dict[str, Any]]:
        """``{"lang", "cluster"}`` per language (the ``language_clusters`` table layout)."""
        return [{"lang": lang, "cluster": c} for lang, c in sorted(self.labels.items())]


def renumber(raw: Sequence[int]) -> list[int]:
    """Relabel cluster ids 0, 1, ... by order of first appearance."""
    mapping: dict[int, int] = {}
    return [mapping.setdefault(int(r), len(mapping)) for r in raw]


def silhouette_score(values: np.ndarray, labels: Sequence[int]) -> float | None:
    """Mean silhouette width from a precomputed distance matrix.

    For each item, ``a`` = mean distance to the other members of its cluster and ``b`` = the
    smallest mean distance to another cluster; ``s = (b - a) / max(a, b)`` (0 when both are 0),
    and ``s = 0`` for members of singleton clusters (the usual convention). Returns ``None``
    unless 2 ≤ number of clusters ≤ n − 1.
    """
    lab = np.asarray(labels)
    d = np.asarray(values, dtype=np.float64)
    n = len(lab)
    ids = np.unique(lab)
    if not 2 <= len(ids) <= n - 1:
        return None
    member = lab[None, :] == ids[:, None]  # clusters × items
    sizes = member.sum(axis=1)
    sums = d @ member.T.astype(np.float64)  # items × clusters: summed distance to each cluster
    own = np.searchsorted(ids, lab)
    own_size = sizes[own]
    a = np.where(own_size > 1, sums[np.arange(n), own] / np.maximum(own_size - 1, 1), 0.0)
    means = sums / sizes[None, :]
    means[np.arange(n), own] = np.inf
    b = means.min(axis=1)
    denom = np.maximum(a, b)
    s = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    s[own_size == 1] = 0.0
    return float(s.mean())


def cluster(dm: DistanceMatrix, *, k: int | None = None, threshold: float | None = None,
            method: str = "average") -> Clustering:
    """Agglomerative clustering of ``dm``'s languages into ``k`` clusters or at a threshold.

    Args:
        dm: the distances.
        k: number of clusters (exactly ``k``: the last ``k - 1`` merges are undone).
        threshold: cut the tree at this merge height (scipy ``distance`` criterion).
        method: ``average``, ``complete`` or ``ward``.

    Raises:
        UsageError: neither or both of ``k``/``threshold``, ``k`` out of range, bad method.
    """
    if method not in LINKAGES:
        raise UsageError(f"unknown linkage {method!r}; allowed: {', '.join(LINKAGES)}")
    if (k is None) == (threshold is None):
        raise UsageError("give exactly one of a number of clusters (k) or a distance threshold")
    order = tuple(sorted(dm.langs))
    n = len(order)
    if k is not None and not 1 <= k <= n:
        raise UsageError(f"number of clusters must be between 1 and {n} (the number of "
                         f"languages), got {k}")
    if threshold is not None and threshold < 0:
        raise UsageError(f"distance threshold must be 0 or more, got {threshold}")

    sub = dm.subset(order)
    if n == 1:
        return Clustering(dm.source, method, {order[0]: 0}, None, np.zeros((0, 4)), order)
    z = hierarchy.linkage(sub.condensed(), method=method)
    if k is not None:
        # cut_tree gives exactly k clusters even when merges tie (0/1 distances); fcluster's
        # maxclust would fall back to fewer clusters there.
        raw = hierarchy.cut_tree(z, n_clusters=k).ravel()
    else:
        raw = hierarchy.fcluster(z, t=threshold, criterion="distance")
    labels = renumber(raw)
    return Clustering(source=dm.source, method=method, labels=dict(zip(order, labels, strict=True)),
                      silhouette=silhouette_score(sub.values, labels), linkage_matrix=z,
                      order=order)


def merge_small_clusters(result: Clustering, dm: DistanceMatrix, min_size: int) -> Clustering:
    """Clusters of fewer than ``min_size`` languages join their nearest cluster.

    Repeatedly, the smallest cluster below the minimum (the lowest id on ties) is merged into
    the cluster at the smallest average distance (the lowest id on ties) — the ``average``
    linkage rule — until every cluster has ``min_size`` languages or one cluster is left.
    Ids are then renumbered as in :func:`cluster`.
    """
    if min_size <= 1:
        return result
    order = tuple(sorted(result.labels))
    sub = dm.subset(order).values
    labels = [result.labels[lang] for lang in order]
    while True:
        ids = sorted(set(labels))
        sizes = {c: labels.count(c) for c in ids}
        small = [c for c in ids if sizes[c] < min_size]
        if not small or len(ids) == 1:
            break
        c = min(small, key=lambda k: (sizes[k], k))
        members = [i for i, lab in enumerate(labels) if lab == c]

        def avg(other: int, members: list[int] = members, labels: list[int] = labels) -> float:
            them = [i for i, lab in enumerate(labels) if lab == other]
            return float(sub[np.ix_(members, them)].mean())

        target = min((o for o in ids if o != c), key=lambda o: (avg(o), o))
        labels = [target if lab == c else lab for lab in labels]
    labels = renumber(labels)
    return Clustering(source=result.source, method=result.method,
                      labels=dict(zip(order, labels, strict=True)),
                      silhouette=silhouette_score(sub, labels),
                      linkage_matrix=result.linkage_matrix, order=result.order)


def manual_clusters(clusters: Sequence[Sequence[str]], langs: Sequence[str]) -> list[list[str]]:
    """Spec clusters restricted to ``langs``.

    Codes are normalised; languages not in ``langs`` are dropped, then empty clusters; each
    language of ``langs`` that no cluster names becomes its own singleton cluster, appended
    after the spec's clusters in ``langs`` order. A language named twice stays in its first
    cluster.
    """
    wanted = normalize_all(list(langs), "langs")
    seen: set[str] = set()
    out: list[list[str]] = []
    for c in clusters:
        members = []
        for code in c:
            iso = normalize(code)
            if iso in wanted and iso not in seen:
                members.append(iso)
                seen.add(iso)
        if members:
            out.append(members)
    out += [[lang] for lang in wanted if lang not in seen]
    return out


def clusters_for_run(sampling: SamplingSection, langs: Sequence[str],
                     context: SimilarityContext | None = None,
                     ) -> tuple[list[list[str]], DistanceMatrix | None]:
    """The language clusters a clustered-sampling run trains with, and the distances used.

    Args:
        sampling: the run's :class:`xlrun.spec.schema.SamplingSection`, validated
            (:meth:`xlrun.train.samplers.BatchSampler.validate`).
        langs: the run's training languages.
        context: model and texts for ``embedding`` sources.

    ``similarity = "manual"`` → :func:`manual_clusters` of ``sampling.clusters`` (no matrix).
    Otherwise the distances of ``sampling.similarity`` are clustered with ``sampling.linkage``
    into ``sampling.n_clusters`` clusters (when > 0, capped at the number of languages) or at
    ``sampling.distance_threshold``; clusters smaller than ``sampling.min_cluster_size`` then
    join their nearest cluster (:func:`merge_small_clusters`).
    """
    if sampling.similarity == "manual":
        return manual_clusters(sampling.clusters, langs), None
    dm = distance_matrix(sampling.similarity, langs, context=context)
    if sampling.n_clusters > 0:
        result = cluster(dm, k=min(sampling.n_clusters, len(dm.langs)), method=sampling.linkage)
    else:  # neither (an unvalidated section): cluster() says what is missing
        result = cluster(dm, threshold=sampling.distance_threshold or None,
                         method=sampling.linkage)
    return merge_small_clusters(result, dm, sampling.min_cluster_size).clusters, dm

