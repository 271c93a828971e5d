"""A queue of quick runs for the worker tests (a module name of its own, so that ``conftest``
of another test folder never shadows it)."""

from __future__ import annotations

from pathlib import Path

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

SPEC = """
[experiment]
name = "{name}"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
settings = ["mono"]
top_k = 0
[grid]
"eval.max_queries_per_language" = [{values}]
"""


def enqueue(url: str, tmp_path: Path, n: int, name: str = "queue") -> list[int]:
    """Submit ``n`` untrained runs of the quickstart data (experiment ``name``); their ids."""
    text = SPEC.format(name=name, out=tmp_path / "out",
                       values=", ".join(str(i + 2) for i in range(n)))
    runs = compile_spec(parse_spec(text, base_dir=tmp_path))
    return list(store.submit_runs(get_engine(url), name, text, runs).run_ids)
