"""Reading text and JSON-lines files (compressed or not), and writing files so that readers
and concurrent writers never see a partial one.

Caches (embeddings, language-similarity matrices, downloads) are shared by every worker on a
machine; two workers may compute the same entry at once. Each writes its own temporary file
beside the target and renames it into place: the rename is atomic, the last writer wins and
both wrote the same content.
"""

from __future__ import annotations

import gzip
import json
import lzma
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from xlrun.errors import UsageError


def open_text(path: Path) -> IO[str]:
    """``path`` opened as UTF-8 text, read through gzip or xz when it ends in ``.gz``/``.xz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded value)`` for every non-blank line of a JSON-lines file.

    Raises:
        UsageError: naming the file and the line: invalid JSON, or a file that cannot be read
            (not UTF-8, a corrupt .gz/.xz, an I/O error).
    """
    n = 0
    try:
        with open_text(path) as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise UsageError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno})"
                                     ) from e
    except (UnicodeDecodeError, OSError, EOFError, lzma.LZMAError) as e:
        raise UsageError(f"{path}:{n + 1}: cannot be read ({e})") from e


def atomic_write(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a private temporary file beside ``target``, then rename it.

    The temporary name keeps ``target``'s suffix (``np.save`` and friends look at it), and
    is removed if ``write`` fails. Returns ``target`` as a Path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp{target.suffix}")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    return atomic_write(target, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(target: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    return atomic_write(target, lambda tmp: tmp.write_bytes(data))
