"""docs/notebook.ipynb executes (nbclient, a real kernel) on a quickstart-shaped database, and
its tables are the numbers of ``xlrun report --format json``."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from nbclient import NotebookClient

from xlrun.cli.report import report_command

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "notebook.ipynb"

PROBE = """import json as _json
print(_json.dumps({"by_setting": by_setting.table.to_dicts(), "pairs": pairs.table.to_dicts(),
                   "by_setting_notes": list(by_setting.notes), "pairs_notes": list(pairs.notes),
                   "wide": by_setting.wide().to_dicts(), "runs": runs.height,
                   "queries": q.height}))"""
"""Appended to a copy of the notebook (after its last cell): what it computed, as JSON."""

CLI = {"by_setting": ["--by", "setting", "--experiment", "quickstart", "--compare", "arm"],
       "pairs": ["--by", "language-pair", "--experiment", "quickstart", "--setting", "cross",
                 "--compare", "arm"]}
"""The CLI commands of the notebook's two reports."""


def _cli(url: str, *args: str) -> dict:
    res = CliRunner().invoke(report_command, ["--db", url, "--format", "json", *args])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_notebook_runs_and_equals_the_cli(quickstart_like_url: str, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XLRUN_DB", quickstart_like_url)  # the kernel inherits it
    nb = nbformat.read(NOTEBOOK, as_version=4)
    probe_index = len(nb.cells) - 1  # before res.close()
    nb.cells.insert(probe_index, nbformat.v4.new_code_cell(PROBE))
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    seconds = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    out = json.loads("".join(o["text"] for o in nb.cells[probe_index].outputs
                             if o.get("name") == "stdout"))
    for name, args in CLI.items():
        cli = _cli(quickstart_like_url, *args)
        assert out[name] == cli["rows"], name  # exactly: columns, order, rounding, nulls
        assert out[f"{name}_notes"] == cli["meta"]["notes"]
    wide = _cli(quickstart_like_url, *CLI["by_setting"], "--layout", "wide")
    assert out["wide"] == wide["rows"]
    assert out["runs"] == 7 and out["queries"] == 7 * 12 * 30
    assert (tmp_path / "quickstart-pairs.png").stat().st_size > 10_000  # the plot cell ran
    assert seconds < 120, f"the notebook took {seconds:.0f} s"


def test_notebook_is_clean_json_with_cells_in_order() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    sources = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "xlrun.connect(" in sources and "res.report(" in sources
    assert "res.query_results(" in sources and ".wide()" in sources
    assert ".to_latex()" in sources and ".plot(" in sources
