"""Values that passed the checks but meant nothing (issue 17, item 4): each is now a
SpecError at submit time that names the key, with exit code 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main
from xlrun.errors import SpecError
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import load_spec, parse_spec

QS = """
[experiment]
name = "h"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
[sampling]
strategy = "hybrid"
[train]
steps = 3
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
"""


GRID_CONFIRM_RUNS = 1000  # documented in README and xlrun.spec.grid


def _compile(text: str, folder: Path) -> list:
    from xlrun.spec.grid import check_grid_size

    spec = parse_spec(text, base_dir=folder)
    check_grid_size(spec)
    return compile_spec(spec)


@pytest.mark.parametrize("edit, path, needle", [
    (("batch_size = 4", "batch_size = 4\ntemperature = inf"), "train.temperature", "finite"),
    (("batch_size = 4", "batch_size = 4\nmax_grad_norm = nan"), "train.max_grad_norm", "finite"),
    (("batch_size = 4", "batch_size = 4\nlr = nan"), "train.lr", "finite"),
    (("batch_size = 4", "batch_size = 4\nlr = inf"), "train.lr", "finite"),
    (("batch_size = 4", "batch_size = 4\nlr = -inf"), "train.lr", "finite"),
    (('strategy = "hybrid"', 'strategy = "hybrid"\ntemperature = nan'), "sampling.temperature",
     "finite"),
    (('strategy = "hybrid"', 'strategy = "hybrid"\nmono_ratio = nan'), "sampling.mono_ratio",
     "finite"),
    (("batch_size = 4", "batch_size = 4\nseed = -1"), "train.seed", "0 or more"),
    (("batch_size = 4", "batch_size = 4\nseed = 3000000000"), "train.seed", "out of range"),
    (("steps = 3", "steps = 99999999999"), "train.steps", "out of range"),
    (('[[eval]]', '[grid]\nseeds = []\n[[eval]]'), "grid.seeds", "non-empty"),
    (('[[eval]]', '[grid]\nseeds = [1, -2]\n[[eval]]'), "grid.seeds[1]", "0 or more"),
    (('[[eval]]', '[grid]\n"train.lr" = [1e-3, inf]\n[[eval]]'), "grid.train.lr[1]", "finite"),
    (('name = "h"', 'name = ""'), "experiment.name", "must not be empty"),
    (('name = "h"', 'name = "   "'), "experiment.name", "must not be empty"),
    (('name = "h"', 'name = "../../escaped"'), "experiment.name", "folder name"),
    (('name = "h"', 'name = "a/b"'), "experiment.name", "folder name"),
    (('name = "h"', 'name = "a\\\\b"'), "experiment.name", "folder name"),
    (('name = "h"', 'name = ".."'), "experiment.name", "folder name"),
    (('name = "h"', 'name = "a\\u0000b"'), "experiment.name", "folder name"),
    (('name = "h"', 'name = " h"'), "experiment.name", "spaces"),
    (('name = "h"', f'name = "{"x" * 201}"'), "experiment.name", "more than 200"),
    (('name = "h"', 'name = "h"\noutput_dir = ""'), "experiment.output_dir", "empty"),
    (('name = "quickstart:tiny"', 'name = ""'), "model.name", "must not be empty"),
    (('[[eval]]', '[grid]\n"eval.top_k" = [1, 2]\n"eval.0.top_k" = [3, 4]\n[[eval]]'),
     "grid.eval.0.top_k", "conflicts with grid.eval.top_k"),
    (('[[eval]]', '[grid]\n"eval.0.top_k" = [1, 2]\n"eval.00.top_k" = [3, 4]\n[[eval]]'),
     "grid.eval.00.top_k", "same value"),
    (('[[eval]]', '[grid]\n"train.lr" = [1e-3]\n[grid.train]\nlr = [2e-3]\n[[eval]]'),
     "grid.train.lr", "given twice"),
    (('[[eval]]', '[grid]\n"train.seed" = [1, 2]\nseeds = [3]\n[[eval]]'), "grid.train.seed",
     "use one of them"),
    (('[[eval]]', '[executor]\ntime_limit_min = 0\n[[eval]]'), "executor.time_limit_min",
     "1 or more"),
    (('name = "h"', 'name = "h"\nmax_runs = -1'), "experiment.max_runs", "0"),
])
def test_meaningless_values_are_spec_errors(tmp_path: Path, edit: tuple[str, str], path: str,
                                            needle: str) -> None:
    text = QS.replace(*edit)
    assert text != QS
    with pytest.raises(SpecError) as err:
        _compile(text, tmp_path)
    assert err.value.path == path and needle in str(err.value), str(err.value)
    assert err.value.exit_code == 2


def test_conflicting_eval_axes_no_longer_collapse(tmp_path: Path) -> None:
    """Before: a 2x2 grid of eval.top_k x eval.0.top_k became 2 runs, one mislabelled."""
    ok = QS.replace("[[eval]]", '[grid]\n"eval.0.top_k" = [3, 4]\n"train.lr" = [1e-3, 2e-3]\n'
                                "[[eval]]")
    assert len(_compile(ok, tmp_path)) == 4


def _submit(tmp_path: Path, text: str, *args: str):
    spec = tmp_path / "s.toml"
    spec.write_text(text)
    db = tmp_path / "x.db"
    res = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}", "--no-run",
                                    *args])
    return res, db


def test_a_huge_grid_asks_for_yes(tmp_path: Path) -> None:
    n = GRID_CONFIRM_RUNS + 1
    big = QS.replace("[[eval]]", f"[grid]\nseeds = {list(range(n))}\n[[eval]]")
    res, db = _submit(tmp_path, big)
    assert res.exit_code == 2 and "--yes" in res.output and str(n) in res.output, res.output
    assert not db.exists()
    capped = big.replace('name = "h"', 'name = "h"\nmax_runs = 10')
    res, db = _submit(tmp_path, capped, "--yes")
    assert res.exit_code == 2 and "max_runs" in res.output and not db.exists(), res.output
    res, db = _submit(tmp_path, big, "--dry-run")  # writes nothing: no confirmation needed
    assert res.exit_code == 0 and f"{n} runs" in res.output and not db.exists()
    from xlrun.spec.grid import GRID_CONFIRM_RUNS as documented
    from xlrun.spec.grid import check_grid_size

    assert documented == GRID_CONFIRM_RUNS
    allowed = big.replace('name = "h"', f'name = "h"\nmax_runs = {n}')
    spec = parse_spec(allowed, base_dir=tmp_path)
    assert check_grid_size(spec) == n


def test_the_confirmed_large_grid_is_submitted(tmp_path: Path) -> None:
    n = GRID_CONFIRM_RUNS + 1
    big = QS.replace("[[eval]]", f"[grid]\nseeds = {list(range(n))}\n[[eval]]")
    res, _db = _submit(tmp_path, big, "--yes")
    assert res.exit_code == 0 and f"{n} new" in res.output, res.output


def test_spec_encodings(tmp_path: Path) -> None:
    bom = tmp_path / "bom.toml"
    bom.write_bytes(b"\xef\xbb\xbf" + QS.encode())
    assert load_spec(bom).experiment.name == "h"
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(QS.replace('name = "h"', 'name = "caf\u00e9"').encode("latin-1"))
    with pytest.raises(SpecError, match=r"not UTF-8 text: byte 0xe9 at line 3, column 12"):
        load_spec(latin1)
    res = CliRunner().invoke(main, ["submit", str(latin1), "--dry-run"])
    assert res.exit_code == 2 and res.output.startswith("Error:") and "UTF-8" in res.output
    folder = tmp_path / "f.toml"
    folder.mkdir()
    res = CliRunner().invoke(main, ["submit", str(folder), "--dry-run"])
    assert res.exit_code == 2, res.output
