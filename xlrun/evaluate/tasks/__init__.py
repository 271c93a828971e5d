"""Evaluation datasets (registry ``DATASETS``): name → loader returning EvalData."""

from xlrun.registry import Registry

DATASETS: Registry = Registry("evaluation dataset")
