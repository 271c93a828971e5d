"""``jsonl``: training pairs from a JSON-lines file.

Each line is an object with ``query``, ``passage``, ``lang`` and optionally ``parallel_id``
(string or number). A line without ``parallel_id`` gets a unique one (``<file stem>:<line>``),
so it has no translations and can only take part in monolingual batches. Blank lines are
skipped; ``.gz`` / ``.xz`` files are read transparently.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from xlrun.data.train_sources.base import TrainSource, register
from xlrun.data.types import TrainExample
from xlrun.errors import UnknownLanguageError, UsageError
from xlrun.files import json_lines
from xlrun.languages import normalize
from xlrun.spec.schema import TrainDataSection

REQUIRED = ("query", "passage", "lang")


def example_from_record(rec: Mapping[str, Any], default_id: str, where: str) -> TrainExample:
    """One :class:`TrainExample` from a mapping with the jsonl columns (UsageError if bad)."""
    if not isinstance(rec, Mapping):
        raise UsageError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in REQUIRED if rec.get(k) in (None, "")]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)} "
                         f"(each record needs query, passage, lang; parallel_id is optional)")
    for k in REQUIRED:
        if not isinstance(rec[k], str):
            raise UsageError(f"{where}: {k!r} must be a string, got {type(rec[k]).__name__} "
                             f"{rec[k]!r:.40}")
        if not rec[k].strip():
            raise UsageError(f"{where}: {k!r} is blank")
    pid = rec.get("parallel_id")
    if pid is not None and (not isinstance(pid, (str, int)) or isinstance(pid, bool)):
        raise UsageError(f"{where}: 'parallel_id' must be a string or an integer, got "
                         f"{type(pid).__name__} {pid!r:.40}")
    try:
        lang = normalize(str(rec["lang"]), where)
    except UnknownLanguageError as e:
        raise UsageError(f"{where}: {e}") from e
    pid = rec.get("parallel_id")
    pid = default_id if pid in (None, "") else str(pid)
    return TrainExample(parallel_id=pid, lang=lang, query=str(rec["query"]),
                        passage=str(rec["passage"]))


def iter_jsonl(path: str | Path) -> Iterator[TrainExample]:
    """Examples of a JSON-lines file, in file order.

    Raises:
        UsageError: naming the file, the line and the fault (a folder or a missing file,
            invalid JSON, a missing or non-string field, an unknown language, not UTF-8,
            a corrupt .gz/.xz).
    """
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"training file {path} is a folder; source 'jsonl' needs a "
                         ".jsonl file")
    if not path.is_file():
        raise UsageError(f"training file not found: {path}")
    stem = path.name.split(".")[0]
    for n, rec in json_lines(path):
        yield example_from_record(rec, f"{stem}:{n}", f"{path}:{n}")


def read_jsonl(path: str | Path) -> list[TrainExample]:
    """All examples of a JSON-lines file.

    Raises:
        UsageError: a bad line (see :func:`iter_jsonl`), or a file without examples.
    """
    examples = list(iter_jsonl(path))
    if not examples:
        raise UsageError(f"{path}: no training examples (the file is empty); each line needs "
                         "query, passage and lang")
    return examples


def write_jsonl(examples: Iterable[TrainExample], path: str | Path) -> Path:
    """Write examples in the format :func:`read_jsonl` reads."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps({"query": ex.query, "passage": ex.passage, "lang": ex.lang,
                                "parallel_id": ex.parallel_id}, ensure_ascii=False) + "\n")
    return path


class JsonlSource(TrainSource):
    """``path``: a ``.jsonl`` file (``.gz``/``.xz`` too)."""

    needs_path = True
    read_at_submit = True

    def read(self, section: TrainDataSection) -> tuple[list[TrainExample], str]:
        """:func:`read_jsonl` of ``section.path``."""
        return read_jsonl(section.path), self.name


JSONL = register(JsonlSource("jsonl"))
