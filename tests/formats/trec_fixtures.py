"""Helpers of the TREC tests (a module of its own: test modules import it by name)."""

from __future__ import annotations

from click.testing import CliRunner

from xlrun.cli import main

SPEC = """
[experiment]
name = "trec"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 32
passage_max_length = 48
[train_data]
source = "quickstart"
languages = ["en", "de"]
[sampling]
strategy = "hybrid"
[train]
steps = 10
batch_size = 16
lr = 2e-3
save_model = true
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
max_queries_per_language = 20
top_k = 20
measures = ["nDCG@20", "P@5", "AP@10", "Success@1", "R@50", "nDCG", "RR(rel=1)@5"]
[grid]
"train.steps" = [10, 0]
"""


def invoke(*args: str, code: int = 0) -> str:
    """Run a command and return its output (stdout and stderr)."""
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output
