"""Encoding for evaluation: an embedding cache, length overrides and long-document chunks.

The runner needs only one method of the encoder, duck-typed::

    encoder.encode(texts: list[str], side: "query" | "passage", batch_size: int,
                   progress: Callable[[int], None] | None) -> np.ndarray   # (n, dim), L2-normalised

(:class:`xlrun.train.encoder.Encoder` has it: every text tokenized once, batches of texts
of neighbouring token counts (:func:`padding_waste` measures what that saves), bf16 on
CUDA.) When the encoder also has ``config`` (an :class:`~xlrun.train.encoder.EncoderConfig`) and
``tokenizer``, ``EvalSection.max_length`` overrides the passage length and long documents
can be cut on token boundaries; otherwise chunks are cut on whitespace.

:class:`EmbeddingCache` keeps vectors per (model, dataset, split, language, side, variant,
texts digest): candidates are encoded once per run and shared by every setting. With a
``cache_dir`` and a stable ``model_key`` (e.g. the run key and checkpoint step) vectors
also go to ``<cache_dir>/<sha1 of the key>.npy`` and are reused across processes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xlrun.files import atomic_write

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: cumulative counts for a named stage."""


@dataclass(frozen=True)
class CacheKey:
    """What identifies one matrix of vectors."""

    model: str
    dataset: str
    split: str
    lang: str
    side: str
    variant: str
    texts_digest: str

    def file_name(self) -> str:
        """A file name derived from every field."""
        return hashlib.sha1(repr(self).encode("utf-8")).hexdigest() + ".npy"


def texts_digest(texts: Sequence[str]) -> str:
    """A short hash of the texts, in order."""
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


class EmbeddingCache:
    """In-memory (and optionally on-disk) store of encoded matrices."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._mem: dict[CacheKey, np.ndarray] = {}
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: CacheKey, compute: Callable[[], np.ndarray],
                       persist: bool = True) -> np.ndarray:
        """The cached matrix for ``key``, computing (and storing) it on a miss."""
        if key in self._mem:
            self.hits += 1
            return self._mem[key]
        path = self.cache_dir / key.file_name() if self.cache_dir and persist else None
        if path is not None and path.is_file():
            self.hits += 1
            arr = np.load(path)
        else:
            self.misses += 1
            arr = np.ascontiguousarray(compute(), dtype=np.float32)
            if path is not None:
                atomic_write(path, lambda tmp: np.save(tmp, arr))
        self._mem[key] = arr
        return arr

    def clear(self) -> None:
        """Forget the in-memory matrices (files stay)."""
        self._mem.clear()


def model_fingerprint(encoder: Any, model_key: str | None = None) -> tuple[str, bool]:
    """``(key, stable)``: the caller's ``model_key`` (stable, may go to disk) or the object id."""
    if model_key:
        return model_key, True
    return f"object-{id(encoder)}", False


@contextlib.contextmanager
def passage_max_length(encoder: Any, max_length: int) -> Iterator[None]:
    """Temporarily set the encoder's passage truncation length (no-op when 0 or unsupported)."""
    cfg = getattr(encoder, "config", None)
    if max_length <= 0 or not dataclasses.is_dataclass(cfg) or not hasattr(cfg, "passage_max_length"):
        yield
        return
    encoder.config = dataclasses.replace(cfg, passage_max_length=max_length)
    try:
        yield
    finally:
        encoder.config = cfg


def effective_max_length(encoder: Any, max_length: int = 0) -> int:
    """``max_length`` if set, else the encoder's passage length, else 512."""
    if max_length > 0:
        return max_length
    cfg = getattr(encoder, "config", None)
    return int(getattr(cfg, "passage_max_length", 0) or 512)


def _token_windows(text: str, tokenizer: Any, width: int) -> list[str] | None:
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True,
                        truncation=False)
        offsets = enc["offset_mapping"]
    except (TypeError, KeyError, NotImplementedError, ValueError):
        return None
    if len(offsets) <= width:
        return [text]
    return [text[offsets[i][0]:offsets[min(i + width, len(offsets)) - 1][1]]
            for i in range(0, len(offsets), width)]


def chunk_texts(texts: Sequence[str], max_tokens: int, tokenizer: Any = None
                ) -> tuple[list[str], np.ndarray]:
    """Cut texts longer than ``max_tokens`` into consecutive windows.

    Returns the chunks and, for each chunk, the index of its text (for max-pooling scores).
    With a fast tokenizer windows follow tokens; otherwise whitespace-separated words.
    """
    width = max(1, max_tokens)
    chunks: list[str] = []
    group: list[int] = []
    for i, text in enumerate(texts):
        parts = _token_windows(text, tokenizer, width) if tokenizer is not None else None
        if parts is None:
            words = text.split()
            parts = ([" ".join(words[j:j + width]) for j in range(0, len(words), width)]
                     if len(words) > width else [text])
        chunks.extend(parts)
        group.extend([i] * len(parts))
    return chunks, np.asarray(group, dtype=np.int64)


def chunk_budget(encoder: Any, max_length: int) -> int:
    """Tokens of text per chunk: the length limit minus special tokens and the passage prefix."""
    total = effective_max_length(encoder, max_length)
    tok = getattr(encoder, "tokenizer", None)
    cfg = getattr(encoder, "config", None)
    prefix = getattr(cfg, "passage_prefix", "") if cfg is not None else ""
    n_prefix = 0
    if tok is not None and prefix:
        with contextlib.suppress(Exception):
            n_prefix = len(tok(prefix, add_special_tokens=False)["input_ids"])
    return max(1, total - 2 - n_prefix)


def padding_waste(lengths: Sequence[int] | np.ndarray, batch_size: int,
                  order: Sequence[int] | np.ndarray | None = None) -> tuple[int, int]:
    """``(pad tokens, padded tokens)`` of encoding texts of these token counts in batches of
    ``batch_size``, taken in ``order`` (default: as given), each padded to its longest text.

    Their ratio is the share of the encoder's work spent on padding. With
    :func:`xlrun.train.encoder.length_order` (what ``Encoder.encode`` does) only texts of
    neighbouring token counts share a batch.
    """
    lens = np.asarray(lengths, dtype=np.int64)
    if order is not None:
        lens = lens[np.asarray(order, dtype=np.int64)]
    pad = total = 0
    for s in range(0, len(lens), max(1, batch_size)):
        part = lens[s:s + batch_size]
        width = int(part.max())
        total += width * len(part)
        pad += width * len(part) - int(part.sum())
    return pad, total


def encode(encoder: Any, texts: Sequence[str], side: str, batch_size: int,
           progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Call the encoder's ``encode`` and return float32 (n, dim)."""
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    out = encoder.encode(list(texts), side, batch_size=batch_size, progress=progress)
    return np.asarray(out, dtype=np.float32)
