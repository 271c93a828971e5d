"""``mmarco``: mMARCO (MS MARCO passage ranking translated into 13 languages, plus English),
read from its TSV files: parallel across languages by query and passage id.

The hub repository ``unicamp-dl/mmarco`` is a loading-script dataset that ``datasets`` ≥ 4
refuses to run; xlrun reads the files the script would read, through
:mod:`xlrun.evaluate.tasks.hub_files` (only the selected languages' files, at
``train_data.revision``, default ``main``; cached in the hub cache and read offline from
there), or from ``path`` = a local folder in the same layout::

    data/google/collections/<language>_collection.tsv        passage_id <TAB> passage
    data/google/queries/train/<language>_queries.train.tsv   query_id <TAB> query
    data/triples.train.ids.small.tsv                         query_id <TAB> positive_id <TAB> negative_id

``<language>`` is the English name (``arabic chinese dutch english french german hindi
indonesian italian japanese portuguese russian spanish vietnamese``; the translations of
mMARCO v2, folder ``google``). Ids are MS MARCO's integers, the same in every language.

**What a run reads.** ``max_per_language`` (required) is the number of training queries per
language: the queries with a positive in the triples file are ranked by a hash of their id
(the ranking of :func:`xlrun.data.train_sources.base.select`, the same in every language),
the first N are kept, and each becomes one example per language: the query and its first
positive passage (in the triples file's order), with ``parallel_id`` = the query id, so the
samplers pair a query in X with its passage in Y. ``negatives = K`` adds each query's first K
distinct negative passages from the triples file (mined by BM25 in MS MARCO), for
``train.hard_negatives``. A query missing from a language's query file is missing from that
language only.

**Never all in memory.** A collection (≈ 8.8 M passages, ≈ 3 GB per language) is read through
an index of byte offsets by passage id (:class:`CollectionIndex`: two int64 columns on disk,
memory-mapped), built once per file with one streaming pass and cached under
``$XLRUN_CACHE/mmarco`` (default ``~/.cache/xlrun/mmarco``), keyed by the file's path, size
and modification time; a run then seeks to the few passages it needs. The triples file (≈ 40 M
lines) is reduced once to each query's first positive and first :data:`MAX_NEGATIVES`
negatives, cached the same way. Query files are streamed, keeping only the chosen ids.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlrun.data.train_sources.base import TrainSource, parallel_rank, register
from xlrun.data.types import TrainExample
from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.tasks import hub_files
from xlrun.files import atomic_write
from xlrun.spec.schema import TrainDataSection

MMARCO_REPO = "unicamp-dl/mmarco"
MMARCO_REVISION = "main"
"""Default hub revision; pin one with ``train_data.revision`` (a commit hash)."""
LANGUAGES: dict[str, str] = {
    "ar": "arabic", "de": "german", "en": "english", "es": "spanish", "fr": "french",
    "hi": "hindi", "id": "indonesian", "it": "italian", "ja": "japanese", "nl": "dutch",
    "pt": "portuguese", "ru": "russian", "vi": "vietnamese", "zh": "chinese",
}
"""xlrun code → the language name in mMARCO's file names."""
TRIPLES = "data/triples.train.ids.small.tsv"
MAX_NEGATIVES = 32
"""The most mined negatives per query kept from the triples file (``train_data.negatives``)."""
MAX_ID = 1 << 27
"""Ids in the triples file are MS MARCO's (queries below 1.2 M, passages below 8.9 M); the
reduction indexes arrays by query id, so larger ids are refused."""
_CHUNK = 64 << 20


def collection_file(lang: str) -> str:
    """Repository path of a language's passages."""
    return f"data/google/collections/{LANGUAGES[lang]}_collection.tsv"


def queries_file(lang: str) -> str:
    """Repository path of a language's training queries."""
    return f"data/google/queries/train/{LANGUAGES[lang]}_queries.train.tsv"


def cache_root() -> Path:
    """Where the indexes go: ``$XLRUN_CACHE/mmarco`` (default ``~/.cache/xlrun/mmarco``)."""
    root = os.environ.get("XLRUN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "xlrun")
    return Path(root) / "mmarco"


def _cache_key(path: Path, what: str) -> Path:
    """The cache file of ``what`` built from ``path`` (its real path, size, mtime)."""
    real = path.resolve()
    st = real.stat()
    raw = f"{what}\t{real}\t{st.st_size}\t{st.st_mtime_ns}".encode()
    return cache_root() / f"{what}-{hashlib.sha256(raw).hexdigest()[:20]}.npy"


def _blocks(path: Path, size: int = 0) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, block)`` of whole lines, about ``size`` bytes each (default
    :data:`_CHUNK`)."""
    offset = 0
    rest = b""
    with open(path, "rb") as f:
        while True:
            raw = f.read(size or _CHUNK)
            if not raw:
                break
            data = rest + raw
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            yield offset, data[:cut]
            offset += cut
            rest = data[cut:]
    if rest:
        yield offset, rest + b"\n"


def _line_of(path: Path, byte: int) -> int:
    """The 1-based line number of byte ``byte`` of ``path`` (for error messages)."""
    n = 1
    with open(path, "rb") as f:
        while byte > 0:
            chunk = f.read(min(byte, _CHUNK))
            if not chunk:
                break
            n += chunk.count(b"\n")
            byte -= len(chunk)
    return n


def _leading_ids(path: Path, offset: int, block: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The integer before the first tab of every line of ``block`` and each line's offset.

    Raises:
        UsageError: a line without a tab or whose id is not a non-negative integer.
    """
    buf = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], ends[:-1] + 1))
    tabs = np.flatnonzero(buf == 9)
    first_tab = np.searchsorted(tabs, starts)
    bad = first_tab >= len(tabs)
    if not bad.any():
        tab_at = tabs[first_tab]
        bad = (tab_at > ends) | (tab_at == starts) | (tab_at - starts > 18)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise UsageError(f"{path}:{_line_of(path, offset + int(starts[i]))}: expected "
                         "'id<TAB>text'")
    width = tab_at - starts
    ids = np.zeros(len(starts), dtype=np.int64)
    for k in range(int(width.max())):
        live = width > k
        digit = buf[starts[live] + k].astype(np.int64) - 48
        if ((digit < 0) | (digit > 9)).any():
            i = int(np.flatnonzero(live)[np.flatnonzero((digit < 0) | (digit > 9))[0]])
            raise UsageError(f"{path}:{_line_of(path, offset + int(starts[i]))}: the id is "
                             "not a non-negative integer")
        ids[live] = ids[live] * 10 + digit
    return ids, starts.astype(np.int64) + offset


class CollectionIndex:
    """Byte offsets of every passage of a collection TSV by passage id, on disk.

    :meth:`open` builds the index with one streaming pass the first time (a few seconds per
    million passages, memory bounded by one block and the two id/offset columns) and
    memory-maps it afterwards; :meth:`texts` seeks to the passages asked for.
    """

    def __init__(self, path: Path, table: np.ndarray) -> None:
        self.path = path
        self.ids = table[0]
        self.offsets = table[1]

    @classmethod
    def open(cls, path: Path) -> CollectionIndex:
        """The index of ``path`` (built and cached if needed).

        Raises:
            UsageError: a malformed line (named by its number) or a repeated passage id.
        """
        cache = _cache_key(path, "collection")
        if not cache.is_file():
            parts = [_leading_ids(path, off, block) for off, block in _blocks(path)]
            ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
            offs = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
            del parts
            order = np.argsort(ids, kind="stable")
            table = np.empty((2, len(ids)), dtype=np.int64)
            np.take(ids, order, out=table[0])
            del ids
            np.take(offs, order, out=table[1])
            del offs, order
            dup = np.flatnonzero(table[0][1:] == table[0][:-1])
            if dup.size:
                raise UsageError(f"{path}:{_line_of(path, int(table[1][dup[0] + 1]))}: passage "
                                 f"id {int(table[0][dup[0]])} appears twice")
            atomic_write(cache, lambda tmp: np.save(tmp, table))
        return cls(path, np.load(cache, mmap_mode="r"))

    def __len__(self) -> int:
        return len(self.ids)

    def texts(self, pids: Iterable[int]) -> dict[int, str]:
        """The passages with ids ``pids`` (ids the collection lacks are left out)."""
        want = np.unique(np.fromiter(pids, dtype=np.int64))
        pos = np.searchsorted(self.ids, want)
        ok = pos < len(self.ids)
        ok[ok] = np.asarray(self.ids[pos[ok]]) == want[ok]
        found = pos[ok]
        out: dict[int, str] = {}
        offsets = np.asarray(self.offsets[found])
        order = np.argsort(offsets)
        with open(self.path, "rb") as f:
            for i in order:
                f.seek(int(offsets[i]))
                line = f.readline().rstrip(b"\r\n")
                pid, _, text = line.partition(b"\t")
                try:
                    out[int(pid)] = text.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UsageError(f"{self.path}: passage {int(pid)} is not UTF-8") from e
        return out


@dataclass(frozen=True)
class Triples:
    """Each query's first positive and first :data:`MAX_NEGATIVES` distinct negatives (in
    the triples file's order): ``qids`` sorted, ``negatives[i]`` padded with -1."""

    qids: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray

    @classmethod
    def open(cls, path: Path) -> Triples:
        """The reduction of ``path`` (built once and cached).

        Raises:
            UsageError: a line that is not three integers.
        """
        cache = _cache_key(path, "triples")
        if not cache.is_file():
            atomic_write(cache, lambda tmp: np.save(tmp, cls._reduce(path)))
        table = np.load(cache)
        return cls(table[:, 0], table[:, 1], table[:, 2:])

    @staticmethod
    def _reduce(path: Path) -> np.ndarray:
        """One streaming pass, block by block, into arrays indexed by query id (memory: the
        block and :data:`MAX_NEGATIVES` int32 per query id up to the largest)."""
        first_pos = np.full(0, -1, dtype=np.int64)
        negs = np.full((0, MAX_NEGATIVES), -1, dtype=np.int32)
        count = np.zeros(0, dtype=np.int64)
        for offset, block in _blocks(path, max(1, _CHUNK // 4)):  # bounds negs[q] below
            text = block.decode("ascii", errors="replace")
            vals = np.fromstring(text, dtype=np.int64, sep=" ")
            bad = vals.size != 3 * text.count("\n") or bool((vals < 0).any())
            if bad or (vals.size and int(vals.max()) >= MAX_ID):
                for n, line in enumerate(text.splitlines()):
                    parts = line.split("\t")
                    if (len(parts) != 3 or not all(x.strip().isdigit() for x in parts)
                            or any(int(x) >= MAX_ID for x in parts)):
                        raise UsageError(f"{path}:{_line_of(path, offset) + n}: expected "
                                         "'query_id<TAB>positive_id<TAB>negative_id' (MS "
                                         f"MARCO's integer ids, below {MAX_ID:,})")
            q, p, n = vals.reshape(-1, 3).T
            if not q.size:
                continue
            top = int(q.max()) + 1
            if top > len(first_pos):
                grow = max(top, int(len(first_pos) * 1.5))
                first_pos = np.concatenate([first_pos, np.full(grow - len(first_pos), -1)])
                negs = np.concatenate([negs, np.full((grow - len(negs), MAX_NEGATIVES), -1,
                                                     dtype=np.int32)])
                count = np.concatenate([count, np.zeros(grow - len(count), dtype=np.int64)])
            uq, first = np.unique(q, return_index=True)
            new = first_pos[uq] < 0
            first_pos[uq[new]] = p[first[new]]
            live = count[q] < MAX_NEGATIVES
            q2, n2 = q[live], n[live]
            _, keep = np.unique(q2 * MAX_ID + n2, return_index=True)
            keep.sort()
            q2, n2 = q2[keep], n2[keep]
            stored = (negs[q2] == n2[:, None]).any(axis=1)
            q2, n2 = q2[~stored], n2[~stored]
            order = np.argsort(q2, kind="stable")
            qs, ns = q2[order], n2[order]
            if not qs.size:
                continue
            starts = np.flatnonzero(np.concatenate(([True], qs[1:] != qs[:-1])))
            group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(qs))))
            slot = count[qs] + np.arange(len(qs)) - starts[group]
            ok = slot < MAX_NEGATIVES
            negs[qs[ok], slot[ok]] = ns[ok]
            np.add.at(count, qs[ok], 1)
        qids = np.flatnonzero(first_pos >= 0)
        out = np.full((len(qids), 2 + MAX_NEGATIVES), -1, dtype=np.int64)
        out[:, 0], out[:, 1], out[:, 2:] = qids, first_pos[qids], negs[qids]
        return out

    def choose(self, n: int) -> np.ndarray:
        """The ``n`` query ids ranked first by
        :func:`~xlrun.data.train_sources.base.parallel_rank` (as ``max_per_language`` ranks)."""
        ranked = sorted(self.qids.tolist(), key=lambda q: parallel_rank(str(q)))
        return np.array(ranked[:n], dtype=np.int64)

    def rows(self, qids: np.ndarray) -> np.ndarray:
        """Positions of ``qids`` (all present) in :attr:`qids`."""
        return np.searchsorted(self.qids, qids)


def local_languages(root: Path) -> list[str]:
    """The languages of a local tree that have both a collection and training queries."""
    return sorted(lang for lang in LANGUAGES
                  if (root / collection_file(lang)).is_file()
                  and (root / queries_file(lang)).is_file())


def read_queries(path: Path, wanted: set[int]) -> dict[int, str]:
    """The queries of ``path`` whose ids are in ``wanted`` (streamed).

    Raises:
        UsageError: a line that is not ``id<TAB>text`` with an integer id.
    """
    out: dict[int, str] = {}
    with open(path, encoding="utf-8", newline="") as f:
        for n, line in enumerate(f, 1):
            qid, sep, text = line.rstrip("\r\n").partition("\t")
            if not sep or not qid.isdigit():
                if not line.strip():
                    continue
                raise UsageError(f"{path}:{n}: expected 'query_id<TAB>query'")
            if int(qid) in wanted:
                out[int(qid)] = text.strip()
    return out


def read_mmarco(root: Path, langs: list[str], per_language: int, negatives: int,
                where: str) -> list[TrainExample]:
    """Examples of ``langs`` from an mMARCO tree at ``root`` (see the module docstring)."""
    files = [TRIPLES] + [p for lang in langs for p in (collection_file(lang), queries_file(lang))]
    for rel in files:
        if not (root / rel).is_file():
            raise UsageError(f"{where} has no file {rel} (mMARCO layout: see "
                             "xlrun.data.train_sources.mmarco)")
    triples = Triples.open(root / TRIPLES)
    chosen = triples.choose(per_language)
    rows = triples.rows(chosen)
    positives = triples.positives[rows]
    mined = triples.negatives[rows, :negatives] if negatives else None
    examples: list[TrainExample] = []
    for lang in langs:
        queries = read_queries(root / queries_file(lang), set(chosen.tolist()))
        want = positives.tolist() + ([int(x) for x in mined.ravel() if x >= 0]
                                     if mined is not None else [])
        passages = CollectionIndex.open(root / collection_file(lang)).texts(want)
        for i, qid in enumerate(chosen.tolist()):
            pos = int(positives[i])
            if qid not in queries or pos not in passages:
                continue
            negs = (tuple(passages[int(x)] for x in mined[i] if x >= 0 and int(x) in passages)
                    if mined is not None else ())
            examples.append(TrainExample(str(qid), lang, queries[qid], passages[pos], negs))
    return examples


class MmarcoSource(TrainSource):
    """mMARCO from the hub (no ``path``) or a local folder in its layout."""

    takes_revision = True
    read_at_submit = True
    max_negatives = MAX_NEGATIVES

    def validate(self, section: TrainDataSection, key_path: str) -> None:
        """A folder when ``path`` is set, its languages, and a number of queries."""
        super().validate(section, key_path)
        if section.path and ("://" in section.path or not Path(section.path).is_dir()):
            raise SpecError(f"{key_path}.path", "source 'mmarco' reads a local folder in "
                            "mMARCO's layout (or the hub, without a path)", value=section.path,
                            allowed="a folder holding data/google/collections/... (see "
                                    "xlrun.data.train_sources.mmarco)")
        for j, lang in enumerate(section.languages):
            if lang not in LANGUAGES:
                raise SpecError(f"{key_path}.languages[{j}]", "mMARCO has no such language",
                                value=lang, allowed=sorted(LANGUAGES))
        if section.max_per_language <= 0:
            raise SpecError(f"{key_path}.max_per_language", "mMARCO needs the number of "
                            "training queries per language (it has ≈ 400,000 with a "
                            "positive: all of them in 14 languages do not fit in memory as "
                            "one corpus)", value=section.max_per_language,
                            allowed="e.g. 50000")

    def read_offline(self, section: TrainDataSection) -> bool:
        """``xlrun submit`` reads a local folder, never the hub (gigabytes per language)."""
        return bool(section.path) and "://" not in section.path

    def read(self, section: TrainDataSection) -> tuple[list[TrainExample], str]:
        """``max_per_language`` queries in each of the section's languages (when empty: all
        14 from the hub, those a local folder has), with their positives and ``negatives``
        mined negatives."""
        langs = list(section.languages) or sorted(LANGUAGES)
        if section.path:
            root = Path(section.path)
            where, name = str(root), self.name
            langs = list(section.languages) or local_languages(root)
            if not langs:
                raise UsageError(f"{root} holds no mMARCO language (a collection and a "
                                 "training query file, e.g. "
                                 f"{collection_file('en')} and {queries_file('en')})")
        else:
            revision = section.revision or MMARCO_REVISION
            patterns = [TRIPLES] + [p for lang in langs
                                    for p in (collection_file(lang), queries_file(lang))]
            root = hub_files.fetch(MMARCO_REPO, patterns, revision,
                                   revision_key="train_data.revision")
            commit = hub_files.resolved_revision(root) or revision
            where, name = f"{MMARCO_REPO} at revision {revision!r}", f"{self.name}@{commit}"
        examples = read_mmarco(root, langs, section.max_per_language, section.negatives, where)
        return examples, name


MMARCO = register(MmarcoSource("mmarco"))
