"""``manual``: no distances; the clusters are written in the spec (``sampling.clusters``)."""

from __future__ import annotations

from xlrun.langsim.distance_sources.base import DISTANCE_SOURCES, Source

DISTANCE_SOURCES.add("manual", Source(
    "manual", "clusters written in the spec (sampling.clusters); no distances", None))
