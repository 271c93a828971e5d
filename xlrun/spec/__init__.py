"""Experiment specs: TOML → typed, validated config → a grid of runs.

:mod:`.schema` (the sections as dataclasses, imported by every layer), :mod:`.load` (TOML →
:class:`~.schema.Spec`, every check with its key path; it imports the component registries),
:mod:`.grid` (runs and their keys), :mod:`.env` (``${VAR}``), :mod:`.toml_writer`. This file
imports none of them, so that importing the schema does not import the loader.
"""
