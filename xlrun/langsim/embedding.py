"""Language distances measured in a model's own embedding space (the ``embedding`` source).

Given parallel texts per language and an ``encode`` callable (texts → L2-normalised rows):

* ``embedding`` (``embedding:mean``): cosine distance between the languages' mean embeddings;
* ``embedding:parallel``: 1 − mean cosine similarity of aligned parallel sentences.

**Partially parallel data.** Texts given as ``{parallel_id: text}`` per language need not share
ids across all languages (MLQA-R: each question is in 2–4 of 7 languages). The distance of each
pair of languages is computed from the ids *that pair* shares (at most ``max_texts`` of them,
the first by id), so both variants compare the two languages on the same content; a pair that
shares fewer than :data:`MIN_SHARED_TEXTS` ids is an error naming it. On fully parallel data
(XQuAD-R) every pair shares every id and the result equals the all-languages alignment. Texts
given as lists are aligned by position and must have equal lengths.

Results are cached on disk (``<cache_dir>/langsim-embedding-<key>.json``) where the key hashes
the model id, the variant, the languages and the exact texts used, so a cache entry is never
reused for other inputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xlrun.errors import UsageError
from xlrun.files import atomic_write_text
from xlrun.languages import normalize

EncodeFn = Callable[..., np.ndarray]
"""Texts → embeddings; it may take ``progress=`` (called with the number of texts finished
after each batch), which :class:`SimilarityContext.progress` then follows batch by batch."""
Progress = Callable[[int, int], None]
"""Texts encoded so far, texts to encode."""
ParallelTexts = Mapping[str, Sequence[str] | Mapping[str, str]]

EMBEDDING_VARIANTS: tuple[str, ...] = ("mean", "parallel")

MIN_SHARED_TEXTS = 32
"""Fewest parallel ids a pair of languages must share for its embedding distance."""


@dataclass(frozen=True)
class SimilarityContext:
    """What model-dependent sources (``embedding``) need.

    Attributes:
        encode: texts → embeddings (one L2-normalised row per text).
        texts: parallel texts per language: either lists aligned by position or
            ``{parallel_id: text}`` mappings aligned by id (ids shared by all languages).
        model_id: names the model in the cache key (a hub id, a path, a run's checkpoint id).
        cache_dir: folder for the on-disk cache; ``None`` disables it.
        max_texts: use at most this many aligned texts per language pair (the first by
            parallel id, or by position); 0 = all.
        min_shared: fewest parallel ids a pair of languages must share
            (:data:`MIN_SHARED_TEXTS`).
    """

    encode: EncodeFn | None = None
    texts: ParallelTexts | None = None
    model_id: str = ""
    cache_dir: str | Path | None = None
    max_texts: int = 0
    min_shared: int = MIN_SHARED_TEXTS
    progress: Progress | None = None
    """Called as texts are encoded (texts done, texts to encode); not called on a cache hit."""

    @classmethod
    def from_corpus(cls, corpus: Any, encoder: Any, *, cache_dir: str | Path | None = None,
                    model_id: str = "", max_texts: int = 512, field: str = "query",
                    min_shared: int = MIN_SHARED_TEXTS,
                    progress: Progress | None = None) -> SimilarityContext:
        """A context over a :class:`~xlrun.data.types.TrainCorpus` and an encoder.

        The parallel texts are the corpus's ``field`` (``query`` or ``passage``) per language,
        keyed by parallel id; ``encoder.encode(texts, side, progress=…)`` embeds them (its
        batches drive ``progress``). Nothing is encoded until an ``embedding`` source is
        computed.
        """
        texts = {lang: {pid: getattr(corpus.get(lang, pid), field) for pid in corpus.ids(lang)}
                 for lang in corpus.languages}
        side = "query" if field == "query" else "passage"

        def encode(batch: list[str], progress: Callable[[int], None] | None = None
                   ) -> np.ndarray:
            with full_precision(encoder):
                out = (encoder.encode(batch, side) if progress is None
                       else encoder.encode(batch, side, progress=progress))
                return np.asarray(out, dtype=np.float32)

        return cls(encode=encode, texts=texts, model_id=model_id, cache_dir=cache_dir,
                   max_texts=max_texts, min_shared=min_shared, progress=progress)


def full_precision(encoder: Any) -> contextlib.AbstractContextManager:
    """``encoder.full_precision()`` where the encoder has it (fp32 on every device, so that
    distances do not depend on where they are computed), else nothing."""
    method = getattr(encoder, "full_precision", None)
    return method() if callable(method) else contextlib.nullcontext()


def _by_language(texts: ParallelTexts, langs: Sequence[str]
                 ) -> dict[str, Sequence[str] | Mapping[str, str]]:
    by_lang: dict[str, Sequence[str] | Mapping[str, str]] = {}
    for code, items in texts.items():
        by_lang[normalize(code)] = items
    missing = [lang for lang in langs if lang not in by_lang or len(by_lang[lang]) == 0]
    if missing:
        raise UsageError(f"the embedding source has no parallel texts for: {', '.join(missing)}; "
                         f"texts are given for: {', '.join(sorted(by_lang)) or 'none'}")
    chosen = [by_lang[lang] for lang in langs]
    if any(isinstance(c, Mapping) for c in chosen) and not all(
            isinstance(c, Mapping) for c in chosen):
        raise UsageError("parallel texts must be all lists or all {parallel_id: text} mappings")
    return {lang: by_lang[lang] for lang in langs}


def aligned_texts(texts: ParallelTexts, langs: Sequence[str]) -> dict[str, list[str]]:
    """Texts of ``langs`` aligned across all languages (by position or by the parallel ids
    every language has).

    Raises:
        UsageError: a language has no texts, list lengths differ, or no id is shared.
    """
    by_lang = _by_language(texts, langs)
    chosen = list(by_lang.values())
    if all(isinstance(c, Mapping) for c in chosen):
        shared = set.intersection(*(set(c) for c in chosen)) if chosen else set()
        if not shared:
            raise UsageError("the embedding source's parallel texts share no parallel_id "
                             f"across {', '.join(langs)}")
        ids = sorted(shared, key=str)
        return {lang: [str(by_lang[lang][i]) for i in ids] for lang in langs}  # type: ignore[index]
    lengths = {lang: len(by_lang[lang]) for lang in langs}
    if len(set(lengths.values())) > 1:
        raise UsageError(f"parallel text lists differ in length: {lengths}; "
                         "give them aligned by position or as {parallel_id: text} mappings")
    return {lang: [str(t) for t in by_lang[lang]] for lang in langs}


def pair_ids(texts: ParallelTexts, langs: Sequence[str], max_texts: int = 0,
             min_shared: int = MIN_SHARED_TEXTS) -> dict[tuple[str, str], list[Any]]:
    """For each pair of ``langs`` (``a`` before ``b`` in ``langs`` order), the keys its texts
    are aligned on: the shared parallel ids (sorted, at most ``max_texts``) or, for texts
    given as lists, the positions.

    Raises:
        UsageError: a pair shares fewer than ``min_shared`` ids (the message names the pairs
            and what they share), or the texts are malformed (see :func:`aligned_texts`).
    """
    by_lang = _by_language(texts, langs)
    out: dict[tuple[str, str], list[Any]] = {}
    if not all(isinstance(c, Mapping) for c in by_lang.values()):
        n = len(aligned_texts(texts, langs)[langs[0]]) if langs else 0
        keys = list(range(min(n, max_texts) if max_texts > 0 else n))
        return {(a, b): keys for i, a in enumerate(langs) for b in langs[i + 1:]}
    short = []
    for i, a in enumerate(langs):
        for b in langs[i + 1:]:
            shared = sorted(set(by_lang[a]) & set(by_lang[b]), key=str)  # type: ignore[arg-type]
            if len(shared) < min_shared:
                short.append(f"{a}-{b} ({len(shared)})")
            out[(a, b)] = shared[:max_texts] if max_texts > 0 else shared
    if short:
        raise UsageError(f"the embedding source needs at least {min_shared} parallel ids "
                         f"shared by each pair of languages; these pairs share fewer: "
                         f"{', '.join(short)}")
    return out


def _with_progress(context: SimilarityContext, total: int) -> Callable[[list[str]], Any]:
    """``context.encode`` reporting to ``context.progress``: batch by batch when the encode
    function takes ``progress=``, else text list by text list (one per language)."""
    report = context.progress
    encode = context.encode
    assert encode is not None
    if report is None:
        return encode
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        report(done, total)

    try:
        batchwise = "progress" in inspect.signature(encode).parameters
    except (TypeError, ValueError):  # a callable without a signature
        batchwise = False
    report(0, total)

    def run(texts: list[str]) -> Any:
        if batchwise:
            return encode(texts, progress=tick)
        out = encode(texts)
        tick(len(texts))
        return out

    return run


def _cache_key(model_id: str, variant: str, texts: Mapping[str, Mapping[Any, str]]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"model": model_id, "variant": variant, "pairwise": 1},
                        sort_keys=True).encode())
    for lang in sorted(texts):
        h.update(b"\x00" + lang.encode() + b"\x00")
        for key in sorted(texts[lang], key=str):
            h.update(str(key).encode("utf-8") + b"\x1e" + texts[lang][key].encode("utf-8")
                     + b"\x1f")
    return h.hexdigest()[:24]


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def embedding_distances(langs: Sequence[str], context: SimilarityContext | None,
                        variant: str = "mean") -> np.ndarray:
    """Distance matrix (float64, ``len(langs)`` square) from embeddings of parallel texts."""
    if variant not in EMBEDDING_VARIANTS:
        raise UsageError(f"unknown embedding variant {variant!r}; allowed: "
                         + ", ".join(f"embedding:{v}" for v in EMBEDDING_VARIANTS))
    if context is None or context.encode is None or context.texts is None:
        raise UsageError("the embedding source needs a model and parallel texts "
                         "(an encode function and texts per language; on the command line: "
                         "--model PATH --texts FILE.jsonl)")
    langs = list(langs)
    pairs = pair_ids(context.texts, langs, context.max_texts, context.min_shared)
    by_lang = _by_language(context.texts, langs)
    needed: dict[str, dict[Any, str]] = {lang: {} for lang in langs}
    for (a, b), keys in pairs.items():
        for k in keys:
            needed[a][k] = str(by_lang[a][k])  # type: ignore[index]
            needed[b][k] = str(by_lang[b][k])  # type: ignore[index]
    if len(langs) == 1:
        keys = list(by_lang[langs[0]])[:1] if isinstance(by_lang[langs[0]], Mapping) else [0]
        needed[langs[0]] = {k: str(by_lang[langs[0]][k]) for k in keys}  # type: ignore[index]
    cache_file: Path | None = None
    if context.cache_dir is not None:
        key = _cache_key(context.model_id, variant, needed)
        cache_file = Path(context.cache_dir) / f"langsim-embedding-{key}.json"
        if cache_file.exists():
            try:
                cached = json.loads(cache_file.read_text())
                if cached.get("langs") == list(langs):
                    return np.asarray(cached["values"], dtype=np.float64)
            except (OSError, ValueError, KeyError):
                pass  # unreadable cache entry: recompute and overwrite
    emb: dict[str, dict[Any, np.ndarray]] = {}
    encode = _with_progress(context, sum(len(needed[lang]) for lang in langs))
    for lang in langs:
        keys = sorted(needed[lang], key=str)
        rows = _normalise_rows(encode([needed[lang][k] for k in keys]))
        if rows.shape[0] != len(keys):
            raise UsageError(f"encode returned {rows.shape[0]} rows for "
                             f"{len(keys)} texts of {lang!r}")
        emb[lang] = dict(zip(keys, rows, strict=True))
    n = len(langs)
    out = np.zeros((n, n), dtype=np.float64)
    for i in range(n):
        for j in range(i + 1, n):
            keys = pairs[(langs[i], langs[j])]
            ea = np.vstack([emb[langs[i]][k] for k in keys])
            eb = np.vstack([emb[langs[j]][k] for k in keys])
            if variant == "mean":
                ma, mb = _normalise_rows(np.vstack([ea.mean(axis=0), eb.mean(axis=0)]))
                dist = 1.0 - float(ma @ mb)
            else:
                dist = 1.0 - float(np.mean(np.sum(ea * eb, axis=1)))
            out[i, j] = out[j, i] = dist
    out = np.clip(out, 0.0, 2.0)
    np.fill_diagonal(out, 0.0)
    if cache_file is not None:
        atomic_write_text(cache_file, json.dumps({"model_id": context.model_id, "variant": variant,
                                                  "langs": list(langs), "values": out.tolist()}))
    return out


def read_parallel_jsonl(path: str | Path) -> dict[str, dict[str, str]]:
    """Read ``{"lang", "parallel_id", "text"}`` lines into ``{lang: {parallel_id: text}}``."""
    out: dict[str, dict[str, str]] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                lang, pid, text = normalize(rec["lang"]), str(rec["parallel_id"]), rec["text"]
            except (ValueError, KeyError, TypeError) as e:
                raise UsageError(f"{path}:{n}: expected a JSON object with 'lang', "
                                 f"'parallel_id' and 'text' ({e})") from None
            out.setdefault(lang, {})[pid] = str(text)
    return out
