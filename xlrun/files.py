"""Writing files so that readers and concurrent writers never see a partial one.

Caches (embeddings, language-similarity matrices, downloads) are shared by every worker on a
machine; two workers may compute the same entry at once. Each writes its own temporary file
beside the target and renames it into place: the rename is atomic, the last writer wins and
both wrote the same content.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


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
