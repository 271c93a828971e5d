"""A small valid spec to vary in tests (imported by the spec tests)."""

from __future__ import annotations

from pathlib import Path

import pytest

BASE = """
[experiment]
name = "t"

[model]
name = "quickstart:tiny"

[train_data]
source = "jsonl"
path = "train.jsonl"

[sampling]
strategy = "hybrid"
language_sampling = "size"

[train]
steps = 5
batch_size = 4

[[eval]]
dataset = "local"
path = "evaldir"
languages = ["en", "de"]
"""


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A folder holding the files BASE refers to."""
    (tmp_path / "train.jsonl").write_text('{"query": "q", "passage": "p", "lang": "en"}\n')
    (tmp_path / "evaldir").mkdir()
    return tmp_path


def write_spec(folder: Path, text: str, name: str = "spec.toml") -> Path:
    """Write a spec file and return its path."""
    p = folder / name
    p.write_text(text)
    return p
