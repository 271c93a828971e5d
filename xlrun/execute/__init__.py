"""Executing runs: the per-run pipeline and the executors that schedule it."""
