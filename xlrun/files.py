"""Reading text and JSON-lines files (compressed or not), and writing files so that readers
and concurrent writers never see a partial one.

A compressed input (``.gz``, ``.xz``) is checked while it streams: its output may not grow
past :data:`MAX_RATIO` times the compressed bytes read (once past :data:`RATIO_FLOOR_BYTES`)
nor past :data:`MAX_DECOMPRESSED_BYTES`, so a decompression bomb is refused after reading a
few kB of it and holding at most :data:`RATIO_FLOOR_BYTES` of its output.

Output a user names (``--out``, ``--plot``) is checked before any work
(:func:`check_output_file`) and written so that a failure is seen and leaves nothing
(:func:`write_output`).

Caches (embeddings, language-similarity matrices, downloads) are shared by every worker on a
machine; two workers may compute the same entry at once. Each writes its own temporary file
beside the target and renames it into place: the rename is atomic, the last writer wins and
both wrote the same content.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import lzma
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from xlrun.errors import UsageError

MAX_RATIO = 100
"""A compressed input may decompress to at most this many times the compressed bytes read so
far (once past :data:`RATIO_FLOOR_BYTES`): text compresses 3-20 times with xz or gzip (the
LAReQA files: 5-16), a decompression bomb thousands of times."""
RATIO_FLOOR_BYTES = 32 * 2**20
"""Output below this size is never refused for its ratio (small, very repetitive files)."""
MAX_DECOMPRESSED_BYTES = 16 * 2**30
"""The most bytes one compressed file may decompress to (the largest corpus shard xlrun reads,
a MIRACL ``docs-N.jsonl.gz``, is well under 1 GiB)."""
MAX_LINE_CHARS = 64 * 2**20
"""Longest line of a JSON-lines file (one record)."""
MAX_DOCUMENT_BYTES = 1 * 2**30
"""Largest whole JSON document read into memory (:func:`read_text`; a LAReQA language file is a
few MB)."""


class _Counting(io.RawIOBase):
    """A binary file that counts the bytes read from it (the compressed side)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.raw.readinto(b)  # type: ignore[attr-defined]
        self.count += n or 0
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


class _Bounded(io.RawIOBase):
    """The decompressed side of a compressed file, refused as soon as it grows past
    :data:`MAX_DECOMPRESSED_BYTES` (or ``limit``) or :data:`MAX_RATIO` times what was read."""

    def __init__(self, stream: IO[bytes], source: _Counting, path: Path, limit: int) -> None:
        self.stream = stream
        self.source = source
        self.path = path
        self.limit = limit
        self.out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = self.stream.readinto(b)  # type: ignore[attr-defined]
        self.out += n or 0
        if self.out > self.limit:
            raise UsageError(f"{self.path}: decompresses to more than {_size(self.limit)}; "
                             "refused (a decompression bomb, or not the file meant)")
        if self.out > RATIO_FLOOR_BYTES and self.out > MAX_RATIO * max(self.source.count, 1):
            raise UsageError(f"{self.path}: decompresses to more than {MAX_RATIO} times its size "
                             f"({_size(self.out)} from {_size(self.source.count)} so far); "
                             "refused as a decompression bomb")
        return n

    def close(self) -> None:
        self.stream.close()
        self.source.close()
        super().close()


def _size(n: int) -> str:
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


def open_binary(path: Path, limit: int = MAX_DECOMPRESSED_BYTES) -> IO[bytes]:
    """``path`` opened for reading bytes, through gzip or xz when it ends in ``.gz``/``.xz``;
    a compressed file is checked while it streams: its output may not exceed ``limit`` bytes
    nor :data:`MAX_RATIO` times the compressed bytes read (:class:`~xlrun.errors.UsageError`
    naming the file, raised by the read that crosses the line: nothing is held in memory)."""
    if path.suffix not in (".gz", ".xz"):
        return path.open("rb")
    source = _Counting(path.open("rb"))
    stream: IO[bytes] = (gzip.GzipFile(fileobj=source, mode="rb") if path.suffix == ".gz"
                         else lzma.LZMAFile(source, mode="rb"))  # noqa: SIM115 - returned
    return io.BufferedReader(_Bounded(stream, source, path, limit))


def open_text(path: Path, limit: int = MAX_DECOMPRESSED_BYTES) -> IO[str]:
    """``path`` opened as UTF-8 text, read through gzip or xz when it ends in ``.gz``/``.xz``
    (checked while streaming, :func:`open_binary`)."""
    return io.TextIOWrapper(open_binary(path, limit), encoding="utf-8")


def read_text(path: Path, limit: int = MAX_DOCUMENT_BYTES) -> str:
    """A whole (possibly compressed) UTF-8 file as text, at most ``limit`` bytes of it
    decompressed.

    Raises:
        UsageError: larger than ``limit`` or a decompression bomb (:func:`open_binary`).
        UnicodeDecodeError, OSError, EOFError, lzma.LZMAError: as reading raises them.
    """
    if path.suffix not in (".gz", ".xz") and path.stat().st_size > limit:
        raise UsageError(f"{path}: {_size(path.stat().st_size)}, more than the "
                         f"{_size(limit)} xlrun reads as one document")
    with open_text(path, limit) as f:
        return f.read()


def json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded value)`` for every non-blank line of a JSON-lines file.

    Raises:
        UsageError: naming the file and the line: invalid JSON, a line longer than
            :data:`MAX_LINE_CHARS`, a decompression bomb, or a file that cannot be read (not
            UTF-8, a corrupt .gz/.xz, an I/O error).
    """
    n = 0
    try:
        with open_text(path) as f:
            while line := f.readline(MAX_LINE_CHARS + 1):
                n += 1
                if len(line) > MAX_LINE_CHARS:
                    raise UsageError(f"{path}:{n}: a line longer than {_size(MAX_LINE_CHARS)} "
                                     "characters (not JSON lines?)")
                if not line.strip():
                    continue
                try:
                    yield n, json.loads(line)
                except json.JSONDecodeError as e:
                    raise UsageError(f"{path}:{n}: not valid JSON ({e.msg}, column {e.colno})"
                                     ) from e
                except RecursionError as e:
                    raise UsageError(f"{path}:{n}: JSON nested too deeply") from e
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


# ----------------------------------------------------------------------------- output paths
def _strerror(e: OSError) -> str:
    return e.strerror or str(e)


def _probe_writable(folder: Path) -> None:
    """Create (and drop at once) an unnamed temporary file in ``folder``: the one check that
    sees read-only mounts, permissions and root alike. On Linux the file never gets a name."""
    with tempfile.TemporaryFile(dir=folder):
        pass


def check_writable_dir(path: str | Path) -> Path:
    """``path`` as a folder xlrun can create or write into (nothing is left behind).

    Raises:
        UsageError: it is a file or a device, lies under a file, or cannot be written (a
            read-only mount, no permission).
    """
    p = Path(path)
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            what = "a file" if p.is_file() else "not a folder (a device, a link to nothing?)"
            raise UsageError(f"{p} is {what}, not a folder")
        probe = p
    else:
        probe = p.parent
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            raise UsageError(f"{p} cannot be created: {probe} is a file, not a folder")
    try:
        _probe_writable(probe)
    except OSError as e:
        raise UsageError(f"{p} cannot be written ({_strerror(e)} in {probe})") from e
    return p


def check_output_file(path: str | Path, option: str) -> Path:
    """``path`` as a file a command may write (``--out``, ``--plot``), checked before any work.

    Its folder must exist and be writable; an existing device (``/dev/stdout``) must be
    writable.

    Raises:
        UsageError: one line naming ``option`` and the path.
    """
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{option} {p}: is a folder, not a file")
    if p.exists() and not p.is_file():
        if not os.access(p, os.W_OK):
            raise UsageError(f"{option} {p}: cannot be written (no permission)")
        return p
    parent = p.parent
    if not parent.exists():
        raise UsageError(f"{option} {p}: the folder {parent} does not exist")
    if not parent.is_dir():
        raise UsageError(f"{option} {p}: {parent} is not a folder")
    try:
        _probe_writable(parent)
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot be written ({_strerror(e)})") from e
    return p


def write_output(path: str | Path, data: bytes, option: str) -> Path:
    """Write ``data`` to ``path`` so that a failure says so and leaves nothing: a regular file
    is written beside it, flushed to disk and renamed into place; an existing device or pipe
    (``/dev/stdout``, ``/dev/full``) is written directly. Every write error (a full disk, a
    read-only mount) is seen, unlike libraries that ignore them (matplotlib's PNG writer).

    Raises:
        UsageError: one line naming ``option``, the path and the fault.
    """
    p = check_output_file(path, option)
    try:
        if p.exists() and not p.is_file():
            with open(p, "wb") as f:
                f.write(data)
                f.flush()
            return p

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        return atomic_write(p, write)
    except OSError as e:
        raise UsageError(f"{option} {p}: cannot be written ({_strerror(e)}); nothing was "
                         "written") from e


def write_rendered(path: str | Path, render: Callable[[Path], object], option: str) -> Path:
    """Let ``render`` write a file (a plot) into a private temporary folder, then copy it to
    ``path`` with :func:`write_output` (so its write errors are seen)."""
    p = check_output_file(path, option)
    with tempfile.TemporaryDirectory(prefix="xlrun-out-") as d:
        render(Path(d) / f"out{p.suffix}")
        written = [f for f in Path(d).iterdir() if f.is_file()]  # out.png when no suffix
        if len(written) != 1:
            raise UsageError(f"{option} {p}: nothing was rendered")
        data = written[0].read_bytes()
    return write_output(p, data, option)


def _chain(e: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    while e is not None and e not in out and len(out) < 10:
        out.append(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return out


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) says a disk is full: ``ENOSPC`` from Python, "No
    space left" / "os error 28" from Rust writers (safetensors), "file write failed" at
    ``inline_container.cc`` from PyTorch's ``torch.save``."""
    for x in _chain(e):
        text = str(x)
        if (getattr(x, "errno", None) == errno.ENOSPC or "No space left" in text
                or "os error 28" in text
                or ("inline_container" in text and "write failed" in text)):
            return True
    return False


def explain_write_error(e: BaseException, path: str | Path) -> str:
    """One line for a failed write under ``path``: a full disk says so (PyTorch reports one
    as ``enforce fail at inline_container.cc … file write failed``), otherwise the error's
    first line."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if disk_full(e):
        return f"cannot write {path}: no space left on the device"
    return f"cannot write {path}: {text}"
