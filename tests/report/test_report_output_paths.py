"""``--out`` and ``--plot`` to a missing, read-only or full path: a one-line error, exit 2,
nothing written (issue 24, smaller items; ``--plot /dev/full`` printed "wrote" and exit 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from report_db import Synth

from xlrun.cli.main import main

FAST = ["--permutations", "200"]


def _report(url: str, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(main, ["report", "--db", url, "--compare", "language_sampling",
                                    *FAST, *args])
    return res.exit_code, res.output


def _one_error(out: str) -> bool:
    lines = out.strip().splitlines()
    return len(lines) == 1 and lines[0].startswith("Error:") and "wrote" not in out


@pytest.mark.parametrize("option", ["--plot", "--out"])
def test_a_full_device(make_db, option: str) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    url, _ = make_db(Synth(n_queries=5))
    code, out = _report(url, option, "/dev/full")
    assert code == 2 and _one_error(out) and "No space left" in out, out


@pytest.mark.parametrize("option", ["--plot", "--out"])
def test_a_missing_folder_is_an_error_before_any_work(make_db, tmp_path: Path,
                                                     option: str) -> None:
    url, _ = make_db(Synth(n_queries=5))
    target = tmp_path / "no" / "such" / "r.png"
    code, out = _report(url, option, str(target))
    assert code == 2 and _one_error(out) and "does not exist" in out, out
    assert not (tmp_path / "no").exists()


def test_an_unwritable_folder(make_db, tmp_path: Path) -> None:
    if not Path("/sys").is_dir():
        pytest.skip("no /sys")
    url, _ = make_db(Synth(n_queries=5))
    code, out = _report(url, "--plot", "/sys/xlrun-plot.png")
    assert code == 2 and _one_error(out) and "cannot be written" in out, out
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out = _report(url, "--plot", str(tmp_path), "--out", str(tmp_path / "r.csv"))
    assert code == 2 and "is a directory" in out, out  # click's own check of --plot
    assert sorted(p.name for p in tmp_path.iterdir()) == before
