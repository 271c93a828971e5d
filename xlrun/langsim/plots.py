"""Figures: a dendrogram beside the distance heatmap, in one PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.cluster import hierarchy

from xlrun.langsim.cluster import Clustering
from xlrun.langsim.matrix import DistanceMatrix

CLUSTER_COLOURS: tuple[str, ...] = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                    "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f")
"""Colour of cluster ``k``: ``CLUSTER_COLOURS[k % 10]`` (matplotlib's tab10)."""

MIXED_COLOUR = "#b0b0b0"
"""Colour of a dendrogram link that joins languages of different clusters."""


def cluster_colour(cluster: int) -> str:
    """The colour of cluster id ``cluster`` in the dendrogram and on the tick labels."""
    return CLUSTER_COLOURS[cluster % len(CLUSTER_COLOURS)]


def link_colours(clustering: Clustering) -> Callable[[int], str]:
    """``link id → colour`` for :func:`scipy.cluster.hierarchy.dendrogram`: a link whose
    leaves all belong to one cluster (of ``clustering.labels``) gets that cluster's colour,
    a link joining clusters :data:`MIXED_COLOUR` — so the colours are the clusters, whatever
    cut or post-processing (``min_cluster_size``) made them."""
    n = len(clustering.order)
    members: dict[int, set[int]] = {i: {clustering.labels[lang]}
                                    for i, lang in enumerate(clustering.order)}
    for k, row in enumerate(clustering.linkage_matrix):
        members[n + k] = members[int(row[0])] | members[int(row[1])]

    def colour(link: int) -> str:
        found = members.get(link, set())
        return cluster_colour(next(iter(found))) if len(found) == 1 else MIXED_COLOUR

    return colour


def plot_clustering(dm: DistanceMatrix, clustering: Clustering | None, path: str | Path,
                    *, title: str | None = None) -> Path:
    """Write a PNG with the dendrogram (left) and the distance heatmap (right).

    Rows and columns of the heatmap follow the dendrogram's leaf order; tick labels are
    ``lang (cluster id)``, coloured like the cluster (:func:`cluster_colour`); dendrogram
    links inside one cluster have its colour, links joining clusters are grey. Without a clustering (or with a single language) only the heatmap
    is drawn, in ``dm``'s language order. Returns the path written.
    """
    import matplotlib  # deferred on purpose: heavy, and only a plot needs it

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    has_tree = clustering is not None and clustering.linkage_matrix.shape[0] > 0
    n = len(dm.langs)
    size = max(4.0, 0.45 * n + 2.0)
    if has_tree:
        assert clustering is not None
        fig, (ax_tree, ax_heat) = plt.subplots(
            1, 2, figsize=(size * 1.9, size), gridspec_kw={"width_ratios": [1, 1.3]})
        tree = hierarchy.dendrogram(clustering.linkage_matrix, labels=list(clustering.order),
                                    orientation="left", ax=ax_tree,
                                    link_color_func=link_colours(clustering))
        for tick in ax_tree.get_yticklabels():
            tick.set_color(cluster_colour(clustering.labels[tick.get_text()]))
        ax_tree.set_title(f"{clustering.method} linkage")
        ax_tree.set_xlabel("merge distance")
        # dendrogram leaves are drawn bottom-to-top; list the heatmap top-to-bottom alike
        leaves = list(reversed(tree["ivl"]))
    else:
        fig, ax_heat = plt.subplots(figsize=(size * 1.1, size))
        leaves = list(dm.langs)
    sub = dm.subset(leaves)
    im = ax_heat.imshow(sub.values, cmap="viridis", vmin=0.0,
                        vmax=float(np.max(sub.values)) if sub.values.size else 1.0)
    labels = [f"{x} ({clustering.labels[x]})" if clustering is not None else x for x in leaves]
    ax_heat.set_xticks(range(n), labels, rotation=90)
    ax_heat.set_yticks(range(n), labels)
    if clustering is not None:
        for tick in [*ax_heat.get_xticklabels(), *ax_heat.get_yticklabels()]:
            tick.set_color(cluster_colour(clustering.labels[tick.get_text().split(" (")[0]]))
    if n <= 16:
        for i in range(n):
            for j in range(n):
                ax_heat.text(j, i, f"{sub.values[i, j]:.2f}", ha="center", va="center",
                             fontsize=7, color="white" if sub.values[i, j] < 0.5 * sub.values.max()
                             else "black")
    fig.colorbar(im, ax=ax_heat, fraction=0.046, pad=0.04, label="distance")
    heading = title or dm.source
    if clustering is not None and clustering.silhouette is not None:
        heading += f"  (silhouette {clustering.silhouette:.3f})"
    fig.suptitle(heading)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
