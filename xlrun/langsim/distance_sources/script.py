"""``script``: 0 when two languages share their main writing system (ISO 15924), else 1."""

from __future__ import annotations

from xlrun.langsim.distance_sources.base import DISTANCE_SOURCES, Source, attribute_distance

DISTANCE_SOURCES.add("script", Source(
    "script", "0 if the main writing systems (ISO 15924) are the same, else 1",
    attribute_distance("script")))
