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
