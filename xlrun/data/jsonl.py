"""Training pairs from a JSON-lines file.

Each line is an object with ``query``, ``passage``, ``lang`` and optionally ``parallel_id``
(string or number). A line without ``parallel_id`` gets a unique one (``<file stem>:<line>``),
so it has no translations and can only take part in monolingual batches. Blank lines are
skipped; ``.gz`` / ``.xz`` files are read transparently.
"""

from __future__ import annotations

import gzip
import json
import lzma
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xlrun.data.types import TrainExample
from xlrun.errors import UnknownLanguageError, UsageError
from xlrun.languages import normalize

REQUIRED = ("query", "passage", "lang")


def example_from_record(rec: Mapping[str, Any], default_id: str, where: str) -> TrainExample:
    """One :class:`TrainExample` from a mapping with the jsonl columns (UsageError if bad)."""
    if not isinstance(rec, Mapping):
        raise UsageError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in REQUIRED if rec.get(k) in (None, "")]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)} "
                         f"(each record needs query, passage, lang; parallel_id is optional)")
    try:
        lang = normalize(str(rec["lang"]), where)
    except UnknownLanguageError as e:
        raise UsageError(f"{where}: {e}") from e
    pid = rec.get("parallel_id")
    pid = default_id if pid in (None, "") else str(pid)
    return TrainExample(parallel_id=pid, lang=lang, query=str(rec["query"]),
                        passage=str(rec["passage"]))


def _open(path: Path):  # noqa: ANN202 - text file object
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if path.suffix == ".xz":
        return lzma.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def iter_jsonl(path: str | Path) -> Iterator[TrainExample]:
    """Examples of a JSON-lines file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"training file not found: {path}")
    stem = path.name.split(".")[0]
    with _open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UsageError(f"{path}:{n}: not valid JSON ({e.msg})") from e
            yield example_from_record(rec, f"{stem}:{n}", f"{path}:{n}")


def read_jsonl(path: str | Path) -> list[TrainExample]:
    """All examples of a JSON-lines file."""
    return list(iter_jsonl(path))


def write_jsonl(examples: Iterable[TrainExample], path: str | Path) -> Path:
    """Write examples in the format :func:`read_jsonl` reads."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps({"query": ex.query, "passage": ex.passage, "lang": ex.lang,
                                "parallel_id": ex.parallel_id}, ensure_ascii=False) + "\n")
    return path
