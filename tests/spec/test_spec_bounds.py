"""Bounded specs (issue 24, item 9 and the smaller items): a grid's size is judged from its
axes before any point is built and no flag lifts the hard cap; nesting, file size and odd
characters in names are one-line errors that write nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main
from xlrun.errors import SpecError
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

GRID_MAX_RUNS = 10_000  # documented in README and xlrun.spec.grid
MAX_NESTING = 32        # documented in xlrun.spec.load

QS = """
[experiment]
name = "{name}"
output_dir = "out"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
[train]
steps = 2
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
{extra}
"""


def _submit(tmp_path: Path, text: str, *args: str) -> tuple[int, str, bool]:
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    before = set(os.listdir(tmp_path))
    res = CliRunner().invoke(main, ["submit", str(spec), "--db",
                                    f"sqlite:///{tmp_path / 'x.db'}", "--no-run", *args])
    lines = res.output.strip().splitlines()
    one_error = len(lines) == 1 and lines[0].startswith("Error:")
    wrote = set(os.listdir(tmp_path)) != before
    return res.exit_code, res.output, one_error and not wrote and res.exception is not None \
        and isinstance(res.exception, SystemExit)


@pytest.mark.parametrize("args", [("--yes",), ("--dry-run",), ("--yes", "--dry-run")])
def test_no_flag_lifts_the_grid_cap(tmp_path: Path, args: tuple[str, ...]) -> None:
    # 1000 x 1000 = 10^6 points from two short axes: refused from their lengths alone
    extra = (f'[grid]\nseeds = {list(range(1000))}\n'
             f'"train.lr" = {[1e-5 * (i + 1) for i in range(1000)]}')
    code, out, clean = _submit(tmp_path, QS.format(name="g", extra=extra), *args)
    assert code == 2 and clean and "1000000 points" in out and str(GRID_MAX_RUNS) in out, out


def test_the_documented_limits() -> None:
    from xlrun.spec import grid, load

    assert grid.GRID_MAX_RUNS == GRID_MAX_RUNS and load.MAX_NESTING == MAX_NESTING


def test_max_runs_cannot_lift_the_cap(tmp_path: Path) -> None:
    extra = f"[grid]\nseeds = {list(range(3))}"
    text = QS.format(name="g", extra=extra).replace('output_dir = "out"',
                                                     f'output_dir = "out"\nmax_runs = '
                                                     f'{GRID_MAX_RUNS + 1}')
    code, out, clean = _submit(tmp_path, text, "--yes")
    assert code == 2 and clean and "experiment.max_runs" in out, out


def test_one_axis_longer_than_the_cap_is_refused_before_its_values_are_read(
        tmp_path: Path) -> None:
    extra = f"[grid]\nseeds = {list(range(GRID_MAX_RUNS + 1))}"
    code, out, clean = _submit(tmp_path, QS.format(name="g", extra=extra), "--yes")
    assert code == 2 and clean and "grid.seeds" in out and "values" in out, out


def test_compile_spec_refuses_a_huge_grid_without_building_it() -> None:
    extra = (f'[grid]\nseeds = {list(range(5000))}\n'
             f'"train.lr" = {[1e-5 * (i + 1) for i in range(5000)]}')
    spec = parse_spec(QS.format(name="g", extra=extra))
    with pytest.raises(SpecError, match="25000000 points"):
        compile_spec(spec)  # 2.5e7 points would take hours and tens of GB when built


def test_a_spec_file_larger_than_allowed(tmp_path: Path) -> None:
    extra = "# " + "x" * (3 * 2**20)
    code, out, clean = _submit(tmp_path, QS.format(name="g", extra=extra))
    assert code == 2 and clean and "MiB" in out, out


@pytest.mark.parametrize("depth", [MAX_NESTING + 1, 5000])
def test_deeply_nested_toml(tmp_path: Path, depth: int) -> None:
    extra = "[grid]\n\"eval.languages\" = " + "[" * depth + "]" * depth
    code, out, clean = _submit(tmp_path, QS.format(name="g", extra=extra))
    assert code == 2 and clean and "nested more than" in out, out


@pytest.mark.parametrize("name", [
    "a\u200bb",          # zero-width space
    "a\u200db",          # zero-width joiner
    "\u202eevil",        # right-to-left override
    "a\u2066b\u2069",    # bidi isolate
    "a\u0085b",          # C1 next line
    "a\u009bb",          # C1 CSI (a terminal escape)
    "a\u00adb",          # soft hyphen
    "a\ufeffb",          # byte-order mark inside
])
def test_names_with_invisible_or_control_characters(tmp_path: Path, name: str) -> None:
    text = QS.format(name=name.encode("unicode_escape").decode("ascii").replace("\\x", "\\u00"),
                     extra="")
    code, out, clean = _submit(tmp_path, text)
    assert code == 2 and clean and "experiment.name" in out, out
    assert "\u202e" not in out and "\u009b" not in out


def test_ordinary_unicode_names_are_fine() -> None:
    for name in ("café", "日本語-study", "arm ablation (v2)"):
        assert parse_spec(QS.format(name=name, extra="")).experiment.name == name
