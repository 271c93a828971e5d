"""Experiment specs: TOML → typed, validated config → a grid of runs."""

from xlrun.spec.grid import CompiledRun, compile_spec
from xlrun.spec.load import load_spec, parse_spec
from xlrun.spec.schema import RunConfig, Spec

__all__ = ["CompiledRun", "RunConfig", "Spec", "compile_spec", "load_spec", "parse_spec"]
