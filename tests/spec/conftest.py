"""Fixtures of the spec tests."""

from spec_fixtures import spec_dir  # noqa: F401
