"""TREC run and qrels files, and xlrun's query ids in them.

A **run** line is ``qid Q0 docid rank score tag``; a **qrels** line is ``qid 0 docid grade``
(whitespace-separated, one judgement per line). These are the files trec_eval, ir_measures,
ranx and pytrec_eval read. Readers here give errors that name the file and line (a wrong
field count, a score that is not a finite number, a document listed twice for a query) —
ir_measures' own readers (``ir_measures.read_trec_run``) stop at such a line with no
position, which is why xlrun reads the files itself; writing is one formatted line each.

Scores are written in Python's shortest round-trip form (``repr``), so a score read back is
the same float: no ties appear that the ranking did not have. trec_eval ignores the rank
column and orders a query's documents by score descending, then by docno descending; xlrun
ranks equal scores the same way (:mod:`xlrun.evaluate.measures`).

**Query ids.** A question of a parallel dataset has one query id in every language, and the
same query is evaluated in several settings (``mono`` X→X, ``cross`` X→Y, ``multi`` X→the
pool of all languages), each with its own collection and relevant documents. In xlrun's TREC
files a query is therefore ``<setting>/<query_lang>/<doc_lang>/<query_id>`` (``doc_lang`` is
``all`` in ``multi``), e.g. ``cross/de/en/56be4db0acb8001400a502ec``: unique across
languages and settings within one dataset and split (one file per dataset and split). The
dataset's own query id is the part after the third ``/`` (it may itself hold ``/``).
Document ids are xlrun's (unique within a dataset: ``<lang>:<id>`` for MIRACL, MLDR and the
LAReQA sets).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from xlrun.errors import UsageError

SEPARATOR = "/"


@dataclass(frozen=True, order=True)
class QueryKey:
    """Where a query was evaluated: setting, languages and the dataset's query id."""

    setting: str
    query_lang: str
    doc_lang: str
    query_id: str

    def trec_id(self) -> str:
        """``<setting>/<query_lang>/<doc_lang>/<query_id>`` (see the module docstring)."""
        return SEPARATOR.join((self.setting, self.query_lang, self.doc_lang, self.query_id))


def parse_query_id(text: str) -> QueryKey | None:
    """The :class:`QueryKey` of an xlrun TREC query id (``None`` when ``text`` is not one)."""
    parts = text.split(SEPARATOR, 3)
    if len(parts) != 4 or not all(parts):
        return None
    return QueryKey(*parts)


def check_id(value: str, what: str) -> str:
    """``value`` if it can stand in a TREC file (non-empty, no whitespace).

    Raises:
        UsageError: naming ``what`` and the value.
    """
    if not value or any(c.isspace() for c in value):
        raise UsageError(f"{what} {value!r} cannot be written to a TREC file (TREC fields "
                         "are separated by whitespace, so ids may hold none)")
    return value


def _open(path: Path, mode: str) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, mode + "t", encoding="utf-8")  # type: ignore[return-value]
    return path.open(mode, encoding="utf-8", newline="\n" if mode == "w" else None)


def format_score(score: float) -> str:
    """A score as the shortest text that reads back as the same float."""
    return repr(float(score))


def write_run(path: str | Path, rows: Iterable[tuple[str, str, int, float]], tag: str) -> int:
    """Write ``(qid, docid, rank, score)`` rows as a TREC run (``.gz``: compressed); returns
    the number of lines. Ids are checked with :func:`check_id`."""
    check_id(tag, "run tag")
    n = 0
    with _open(Path(path), "w") as f:
        for qid, doc, rank, score in rows:
            f.write(f"{check_id(qid, 'query id')} Q0 {check_id(doc, 'document id')} "
                    f"{int(rank)} {format_score(score)} {tag}\n")
            n += 1
    return n


def write_qrels(path: str | Path, rows: Iterable[tuple[str, str, int]]) -> int:
    """Write ``(qid, docid, grade)`` rows as TREC qrels; returns the number of lines."""
    n = 0
    with _open(Path(path), "w") as f:
        for qid, doc, grade in rows:
            f.write(f"{check_id(qid, 'query id')} 0 {check_id(doc, 'document id')} "
                    f"{int(grade)}\n")
            n += 1
    return n


def _lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    n = 0
    try:
        with _open(path, "r") as f:
            for n, line in enumerate(f, 1):
                parts = line.split()
                if parts:
                    yield n, parts
    except (UnicodeDecodeError, OSError, EOFError) as e:
        raise UsageError(f"{path}:{n + 1}: cannot be read ({e})") from e


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """A TREC run as ``{qid: {docid: score}}`` (the rank and tag columns are ignored, as
    trec_eval ignores them).

    Raises:
        UsageError: naming the file and line: not 6 fields, a score that is not a finite
            number, a document twice for the same query.
    """
    p = Path(path)
    out: dict[str, dict[str, float]] = {}
    for n, parts in _lines(p):
        if len(parts) != 6:
            raise UsageError(f"{p}:{n}: expected 6 fields 'qid Q0 docid rank score tag', got "
                             f"{len(parts)}")
        qid, _, doc, _, raw, _ = parts
        try:
            score = float(raw)
        except ValueError:
            raise UsageError(f"{p}:{n}: score {raw!r} is not a number") from None
        if not math.isfinite(score):
            raise UsageError(f"{p}:{n}: score {raw!r} is not finite")
        docs = out.setdefault(qid, {})
        if doc in docs:
            raise UsageError(f"{p}:{n}: document {doc!r} appears twice for query {qid!r}")
        docs[doc] = score
    return out


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """TREC qrels as ``{qid: {docid: grade}}``.

    Raises:
        UsageError: naming the file and line: not 4 fields, a grade that is not an integer,
            a document judged twice for the same query.
    """
    p = Path(path)
    out: dict[str, dict[str, int]] = {}
    for n, parts in _lines(p):
        if len(parts) != 4:
            raise UsageError(f"{p}:{n}: expected 4 fields 'qid 0 docid grade', got "
                             f"{len(parts)}")
        qid, _, doc, raw = parts
        try:
            grade = int(raw)
        except ValueError:
            raise UsageError(f"{p}:{n}: grade {raw!r} is not an integer") from None
        docs = out.setdefault(qid, {})
        if doc in docs:
            raise UsageError(f"{p}:{n}: document {doc!r} is judged twice for query {qid!r}")
        docs[doc] = grade
    return out


def trec_order(scores: dict[str, float]) -> list[str]:
    """A query's documents in trec_eval's order: score descending, then docno descending
    (Python compares strings by code point, which is UTF-8 byte order, as trec_eval's
    ``strcmp``)."""
    return sorted(scores, key=lambda d: (scores[d], d), reverse=True)
