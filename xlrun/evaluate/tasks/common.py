"""Helpers shared by dataset loaders: language selection, deterministic subsampling, I/O."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.types import EvalData, Query
from xlrun.files import json_lines
from xlrun.languages import normalize


def select_languages(available: Sequence[str], requested: Sequence[str], dataset: str) -> list[str]:
    """``requested`` (normalised) or all ``available``; a language the dataset lacks is a SpecError."""
    avail = sorted(set(available))
    if not requested:
        return avail
    out: list[str] = []
    for code in requested:
        lang = normalize(code, "eval.languages")
        if lang not in avail:
            raise SpecError("eval.languages", f"language not in dataset {dataset!r}",
                            value=code, allowed=avail)
        if lang not in out:
            out.append(lang)
    return sorted(out)


def _order_key(query_id: str) -> str:
    return hashlib.sha1(query_id.encode("utf-8")).hexdigest()


def subsample(queries: list[Query], n: int) -> list[Query]:
    """Keep ``n`` queries chosen by a hash of their id (0 = all), in their original order.

    The choice depends only on the ids, so parallel datasets keep the same questions in
    every language, and reruns keep the same queries.
    """
    if n <= 0 or len(queries) <= n:
        return list(queries)
    keep = set(sorted((q.id for q in queries), key=_order_key)[:n])
    return [q for q in queries if q.id in keep]


def finish(data: EvalData, max_queries_per_language: int) -> EvalData:
    """Subsample queries and drop qrels entries whose query or document is absent.

    Raises:
        UsageError: nothing could be scored: no documents, no queries, or no query with a
            relevant document in the corpus (an empty corpus or qrels file, ids that do not
            match) — such data would give a ``done`` run without a single result.
    """
    queries = {lang: subsample(qs, max_queries_per_language) for lang, qs in data.queries.items()}
    doc_ids = {d.id for docs in data.corpus.values() for d in docs}
    keys = {(q.lang, q.id) for qs in queries.values() for q in qs}
    qrels = {}
    for key, rel in data.qrels.items():
        if key in keys:
            kept = frozenset(d for d in rel if d in doc_ids)
            if kept:
                qrels[key] = kept
    source = data.meta.get("source") or data.dataset
    if not doc_ids:
        raise UsageError(f"{source}: the corpus holds no documents"
                         + (f" in {', '.join(sorted(data.corpus))}" if data.corpus else ""))
    if not keys:
        raise UsageError(f"{source}: holds no queries"
                         + (f" in {', '.join(sorted(queries))}" if queries else ""))
    if not qrels:
        raise UsageError(f"{source}: no query has a relevant document in the corpus (empty "
                         "qrels, or query/document ids that do not match theirs); nothing "
                         "could be scored")
    grades = {key: {d: g for d, g in data.grades[key].items() if d in rel}
              for key, rel in qrels.items() if key in data.grades}
    return dataclasses.replace(data, queries=queries, qrels=qrels, meta=dict(data.meta),
                               grades={k: v for k, v in grades.items() if v})


def read_jsonl(path: Path, required: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
    """Records of a ``.jsonl`` (or ``.gz``/``.xz``) file; each must be a JSON object whose
    ``required`` fields are non-empty strings.

    Raises:
        UsageError: naming the file, the line and the fault (invalid JSON, not an object, a
            missing or non-string field, not UTF-8, a corrupt .gz).
    """
    for n, rec in json_lines(path):
        if not isinstance(rec, dict):
            raise UsageError(f"{path}:{n}: expected a JSON object, got {type(rec).__name__}")
        for key in required:
            value = rec.get(key)
            if value is None or value == "":
                raise UsageError(f"{path}:{n}: missing {key!r} (each line needs "
                                 f"{', '.join(required)})")
            ok = (str, int) if key.endswith("id") else (str,)
            if not isinstance(value, ok) or isinstance(value, bool):
                raise UsageError(f"{path}:{n}: {key!r} must be a string, got "
                                 f"{type(value).__name__} {value!r:.40}")
        yield rec


def find_file(folder: Path, stems: Sequence[str], exts: Sequence[str] = (".jsonl", ".jsonl.gz")
              ) -> Path | None:
    """The first ``folder/<stem><ext>`` that exists."""
    for stem in stems:
        for ext in exts:
            p = folder / f"{stem}{ext}"
            if p.is_file():
                return p
    return None
