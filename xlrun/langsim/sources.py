"""Language-distance sources (registry ``SOURCES``). Filled in by the language-similarity work."""

from xlrun.registry import Registry

SOURCES: Registry = Registry("language-similarity source")
SOURCES.add("manual", None)
