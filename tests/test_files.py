"""Atomic file writes: concurrent writers never crash or leave a partial or temporary file."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from xlrun.files import atomic_write, atomic_write_text


def test_concurrent_writers_leave_one_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "cache" / "entry.npy"
    arrays = [np.full((200, 64), i, dtype=np.float32) for i in range(8)]
    errors: list[BaseException] = []
    start = threading.Barrier(len(arrays))

    def writer(arr: np.ndarray) -> None:
        try:
            start.wait()
            for _ in range(20):
                atomic_write(target, lambda tmp: np.save(tmp, arr))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(a,)) for a in arrays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = np.load(target)
    assert got.shape == (200, 64) and len(np.unique(got)) == 1  # one writer's whole array
    assert [p.name for p in target.parent.iterdir()] == ["entry.npy"]


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "m.json", '{"ok": 1}')

    def broken(tmp: Path) -> None:
        tmp.write_text('{"partial')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == '{"ok": 1}'
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


# ----------------------------------------------------------------------------- issue 24
def _bomb(path: Path, mib: int) -> Path:
    """``mib`` MiB of zeros compressed (a few kB): a decompression bomb in miniature."""
    import gzip
    import lzma

    chunk = b"\0" * 2**20
    if path.suffix == ".xz":
        comp = lzma.LZMACompressor(preset=1)
        data = b"".join(comp.compress(chunk) for _ in range(mib)) + comp.flush()
    else:
        data = gzip.compress(chunk * mib, compresslevel=1)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("suffix", [".jsonl.xz", ".jsonl.gz"])
def test_a_decompression_bomb_is_refused_while_streaming(tmp_path: Path, suffix: str) -> None:
    import tracemalloc

    from xlrun.errors import UsageError
    from xlrun.files import RATIO_FLOOR_BYTES, json_lines

    bomb = _bomb(tmp_path / f"b{suffix}", 3 * RATIO_FLOOR_BYTES // 2**20)
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    with pytest.raises(UsageError, match="decompression bomb") as err:
        list(json_lines(bomb))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert str(bomb) in str(err.value) and len(str(err.value).splitlines()) == 1
    assert peak < 2 * RATIO_FLOOR_BYTES + 2**20  # never the whole output at once


def test_a_lareqa_xz_bomb_is_refused_at_submit(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from xlrun.cli import main
    from xlrun.files import RATIO_FLOOR_BYTES

    fixtures = Path(__file__).resolve().parent / "fixtures" / "lareqa"
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "en.json").write_bytes((fixtures / "en.json").read_bytes())
    _bomb(tmp_path / "train" / "de.json.xz", 2 * RATIO_FLOOR_BYTES // 2**20)
    (tmp_path / "s.toml").write_text(
        '[experiment]\nname = "b"\noutput_dir = "out"\n[model]\nname = "quickstart:tiny"\n'
        '[train_data]\nsource = "lareqa"\npath = "train"\n[sampling]\nstrategy = '
        '"monolingual"\n[train]\nsteps = 2\nbatch_size = 2\n[[eval]]\ndataset = '
        '"quickstart"\nlanguages = ["en", "de"]\n')
    res = CliRunner().invoke(main, ["submit", str(tmp_path / "s.toml"), "--db",
                                    f"sqlite:///{tmp_path / 'x.db'}", "--no-run"])
    assert res.exit_code == 2 and "decompression bomb" in res.output, res.output
    assert "de.json.xz" in res.output and not (tmp_path / "x.db").exists()


def test_ordinary_compressed_files_still_read(tmp_path: Path) -> None:
    import gzip
    import json

    from xlrun.files import json_lines, read_text

    rows = [{"id": i, "text": "the same sentence again " * 20} for i in range(2000)]
    data = "\n".join(json.dumps(r) for r in rows).encode()
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(data))
    assert [r["id"] for _, r in json_lines(tmp_path / "a.jsonl.gz")] == list(range(2000))
    assert read_text(tmp_path / "a.jsonl.gz") == data.decode()


def test_a_line_longer_than_allowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from xlrun import files
    from xlrun.errors import UsageError

    monkeypatch.setattr(files, "MAX_LINE_CHARS", 1000)
    (tmp_path / "a.jsonl").write_text('{"a": 1}\n' + '"' + "x" * 5000 + '"\n')
    with pytest.raises(UsageError, match=r"a\.jsonl:2: a line longer than"):
        list(files.json_lines(tmp_path / "a.jsonl"))


@pytest.mark.parametrize(("target", "needle"), [
    ("missing/out.csv", "does not exist"),
    ("a_file/out.csv", "is not a folder"),
    ("a_folder", "is a folder"),
    ("/sys/xlrun-out.csv", "cannot be written"),
])
def test_output_paths_checked_before_any_work(tmp_path: Path, target: str,
                                              needle: str) -> None:
    from xlrun.errors import UsageError
    from xlrun.files import check_output_file

    if target.startswith("/sys") and not Path("/sys").is_dir():
        pytest.skip("no /sys")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    path = target if target.startswith("/") else str(tmp_path / target)
    with pytest.raises(UsageError, match=needle):
        check_output_file(path, "--out")


def test_write_output_sees_a_full_device_and_leaves_nothing(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    import errno
    import os

    from xlrun.errors import UsageError
    from xlrun.files import write_output

    if Path("/dev/full").exists():
        with pytest.raises(UsageError, match="No space left"):
            write_output("/dev/full", b"x" * 100_000, "--plot")
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UsageError, match="No space left"):
        write_output(tmp_path / "r.csv", b"rows", "--out")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []
    write_output(tmp_path / "r.csv", b"rows", "--out")
    assert (tmp_path / "r.csv").read_bytes() == b"rows"


def test_writable_folders(tmp_path: Path) -> None:
    from xlrun.errors import UsageError
    from xlrun.files import check_writable_dir

    (tmp_path / "f").write_text("x")
    assert check_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # checked, not created
    for bad, needle in ((tmp_path / "f", "is a file"), (Path("/dev/null"), "not a folder"),
                        (tmp_path / "f" / "sub", "is a file")):
        with pytest.raises(UsageError, match=needle):
            check_writable_dir(bad)
    if Path("/sys").is_dir():
        with pytest.raises(UsageError, match="cannot be written"):
            check_writable_dir("/sys/xlrun-out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]
