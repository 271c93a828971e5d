"""Figures: a dendrogram beside the distance heatmap, in one PNG (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.cluster import hierarchy

from xlrun.langsim.cluster import Clustering
from xlrun.langsim.matrix import DistanceMatrix


def plot_clustering(dm: DistanceMatrix, clustering: Clustering | None, path: str | Path,
                    *, title: str | None = None) -> Path:
    """Write a PNG with the dendrogram (left) and the distance heatmap (right).

    Rows and columns of the heatmap follow the dendrogram's leaf order; tick labels are
    ``lang (cluster id)``. Without a clustering (or with a single language) only the heatmap
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
                                    orientation="left", ax=ax_tree, color_threshold=None)
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
