"""Batch samplers (registry ``SAMPLERS``). Filled in by the training-engine work."""

from xlrun.registry import Registry

SAMPLERS: Registry = Registry("sampler")
