"""Language similarity: distance sources (typology, script, embeddings) and clustering.

Main entry points::

    from xlrun.langsim import distance_matrix, cluster, clusters_for_run
    dm = distance_matrix("0.5*uriel:syntax_knn+0.5*script", ["ar", "de", "en", "zh"])
    clustering = cluster(dm, k=2, method="average")

Plots live in :mod:`xlrun.langsim.plots` (imports matplotlib lazily).
"""

from xlrun.langsim.cluster import (
    Clustering,
    cluster,
    clusters_for_run,
    manual_clusters,
    silhouette_score,
)
from xlrun.langsim.distance_sources import DISTANCE_SOURCES, Source
from xlrun.langsim.distances import (
    distance_matrix,
    needs_context,
    parse_combination,
    validate_source,
)
from xlrun.langsim.embedding import SimilarityContext
from xlrun.langsim.matrix import DistanceMatrix

__all__ = [
    "DISTANCE_SOURCES",
    "Clustering",
    "DistanceMatrix",
    "SimilarityContext",
    "Source",
    "cluster",
    "clusters_for_run",
    "distance_matrix",
    "manual_clusters",
    "needs_context",
    "parse_combination",
    "silhouette_score",
    "validate_source",
]
