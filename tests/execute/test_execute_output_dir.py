"""An unusable ``output_dir`` is refused at submit, and a full disk is reported as one
(issue 24, smaller items: a file, /dev/null or a read-only folder were accepted and failed
at run time with raw exception text; a full disk read "enforce fail at inline_container.cc")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from xlrun.cli import main

SPEC = """
[experiment]
name = "od"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
[train]
steps = 2
batch_size = 4
checkpoint_every = 1
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
max_queries_per_language = 3
"""


def _submit(tmp_path: Path, out: str, *args: str) -> tuple[int, str]:
    (tmp_path / "s.toml").write_text(SPEC.format(out=out))
    res = CliRunner().invoke(main, ["submit", str(tmp_path / "s.toml"), "--db",
                                    f"sqlite:///{tmp_path / 'x.db'}", *args])
    return res.exit_code, res.output


@pytest.mark.parametrize(("kind", "needle"), [
    ("a file", "is a file"), ("/dev/null", "not a folder"), ("under a file", "is a file"),
    ("read-only", "cannot be written")])
def test_unusable_output_dir_is_refused_at_submit(tmp_path: Path, kind: str,
                                                  needle: str) -> None:
    (tmp_path / "f").write_text("x")
    out = {"a file": str(tmp_path / "f"), "/dev/null": "/dev/null",
           "under a file": str(tmp_path / "f" / "out"), "read-only": "/sys/xlrun-out"}[kind]
    if kind == "read-only" and not Path("/sys").is_dir():
        pytest.skip("no /sys")
    for args in (("--no-run",), ("--dry-run",)):
        code, output = _submit(tmp_path, out, *args)
        lines = output.strip().splitlines()
        assert code == 2 and len(lines) == 1 and "experiment.output_dir" in lines[0], output
        assert needle in output
    assert not (tmp_path / "x.db").exists()


def test_a_full_disk_is_reported_as_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                        ) -> None:
    import torch

    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                           "failed writing file data/3: file write failed")

    monkeypatch.setattr(torch, "save", full)
    code, output = _submit(tmp_path, str(tmp_path / "out"))
    assert code == 1, output
    assert "no space left on the device" in output and "inline_container" not in output
    assert not list((tmp_path / "out").rglob(".tmp-step-*"))  # nothing half-written left


def test_a_real_full_disk(tmp_path: Path) -> None:
    """On a 1 MB tmpfs (where mounting is allowed): the checkpoint does not fit."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        code, output = _submit(tmp_path, str(small / "out"))
        assert code == 1, output
        assert "no space left on the device" in output and "inline_container" not in output
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
