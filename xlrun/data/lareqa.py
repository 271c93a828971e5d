"""LAReQA data (XQuAD-R, MLQA-R): SQuAD-style JSON with sentence-split paragraphs.

One file per language, ``<lang>.json`` or ``<lang>.json.xz``, in a folder (or under a URL
base, downloaded once to a cache). Each paragraph carries ``sentences`` and
``sentence_breaks`` (their ``[start, end)`` character spans in ``context``); each question
has one answer whose ``answer_start`` falls in one sentence: that sentence is the
question's answer (its retrieval target, and its training passage). Question ids are shared
by a question's translations.

Evaluation (:mod:`xlrun.evaluate.tasks.lareqa`) and training (:func:`train_examples`) both
read files through :func:`read_language`.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import lzma
import os
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.errors import UsageError
from xlrun.files import atomic_write_bytes, read_text

XQUAD_R_LANGUAGES = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQA_R_LANGUAGES = ("ar", "de", "en", "es", "hi", "vi", "zh")
XQUAD_R_URL = "https://raw.githubusercontent.com/google-research-datasets/lareqa/master/xquad-r"
MLQA_R_URL = "https://raw.githubusercontent.com/google-research-datasets/lareqa/354d67d/mlqa-r"
"""MLQA-R was removed from the repository after commit 354d67d."""


@dataclass(frozen=True)
class Paragraph:
    """One paragraph: its sentences and their character spans in the context."""

    sentences: tuple[str, ...]
    breaks: tuple[tuple[int, int], ...]

    def sentence_at(self, char: int) -> int:
        """Index of the sentence holding character ``char`` (the last one starting at or before it)."""
        starts = [b[0] for b in self.breaks]
        return max(0, bisect.bisect_right(starts, char) - 1)


@dataclass(frozen=True)
class Question:
    """One question; its answer is sentence ``sentence`` of paragraph ``paragraph``."""

    id: str
    text: str
    paragraph: int
    sentence: int
    answer_start: int


@dataclass(frozen=True)
class LareqaLanguage:
    """A parsed LAReQA file: all paragraphs and questions of one language, in file order."""

    lang: str
    paragraphs: tuple[Paragraph, ...]
    questions: tuple[Question, ...]

    def answer(self, question: Question) -> str:
        """The text of the sentence that answers ``question``."""
        return self.paragraphs[question.paragraph].sentences[question.sentence]

    def sentence_positions(self) -> list[tuple[int, int]]:
        """Every ``(paragraph, sentence)`` position, in file order."""
        return [(p, s) for p, par in enumerate(self.paragraphs) for s in range(len(par.sentences))]


def parse(obj: dict[str, Any], lang: str, source: str | None = None) -> LareqaLanguage:
    """Parse the decoded JSON of one LAReQA file.

    Raises:
        UsageError: the JSON is not LAReQA data; the message names ``source`` (the file),
            the record (``data[i].paragraphs[j]``) and what is wrong.
    """
    where = source or f"LAReQA {lang}"
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise UsageError(f"{where}: not LAReQA data (expected a JSON object with a 'data' "
                         f"list of articles, got {type(obj).__name__})")
    paragraphs: list[Paragraph] = []
    questions: list[Question] = []
    for ai, article in enumerate(obj["data"]):
        pars = article.get("paragraphs", []) if isinstance(article, dict) else None
        if not isinstance(pars, list):
            raise UsageError(f"{where}: data[{ai}] is not an article with a 'paragraphs' list")
        for pj, par in enumerate(pars):
            rec = f"{where}: data[{ai}].paragraphs[{pj}]"
            try:
                sentences = tuple(_text(s) for s in par["sentences"])
                breaks = tuple((int(b[0]), int(b[1])) for b in par["sentence_breaks"])
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise UsageError(f"{rec}: needs 'sentences' (strings) and 'sentence_breaks' "
                                 f"([start, end] pairs) ({type(e).__name__}: {e})") from e
            if len(sentences) != len(breaks):
                raise UsageError(f"{rec}: {len(sentences)} sentences but {len(breaks)} "
                                 "sentence_breaks")
            p = Paragraph(sentences, breaks)
            pi = len(paragraphs)
            paragraphs.append(p)
            for qk, qa in enumerate(par.get("qas", [])):
                try:
                    answers = qa.get("answers") or []
                    if not answers or not sentences:
                        continue
                    start = int(answers[0]["answer_start"])
                    questions.append(Question(_text(qa["id"], ids=True), _text(qa["question"]),
                                              pi, p.sentence_at(start), start))
                except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                    raise UsageError(f"{rec}.qas[{qk}]: needs 'id', 'question' and 'answers' "
                                     f"with 'answer_start' ({type(e).__name__}: {e})") from e
    return LareqaLanguage(lang, tuple(paragraphs), tuple(questions))


def _text(value: Any, ids: bool = False) -> str:
    if isinstance(value, str) or (ids and isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _cache_dir() -> Path:
    root = os.environ.get("XLRUN_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "xlrun")
    return Path(root) / "lareqa"


def _download(base: str, lang: str) -> Path:
    """Download ``<base>/<lang>.json`` once into the cache and return the local file."""
    key = hashlib.sha1(base.rstrip("/").encode()).hexdigest()[:12]
    target = _cache_dir() / key / f"{lang}.json"
    if target.exists():
        return target
    url = f"{base.rstrip('/')}/{lang}.json"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            data = resp.read()
    except OSError as exc:
        raise UsageError(f"cannot download LAReQA file {url}: {exc}") from exc

    return atomic_write_bytes(target, data)


def language_file(source: str | Path, lang: str) -> Path:
    """The local file for ``lang``: ``<lang>.json`` or ``<lang>.json.xz`` in a folder, or a download."""
    if isinstance(source, str) and _is_url(source):
        return _download(source, lang)
    folder = Path(source)
    for name in (f"{lang}.json", f"{lang}.json.xz"):
        if (folder / name).is_file():
            return folder / name
    found = available_languages(folder) if folder.is_dir() else []
    raise UsageError(f"no LAReQA file for language {lang!r} in {folder}"
                     + (f"; languages there: {', '.join(found)}" if found else
                        " (expected <lang>.json or <lang>.json.xz)"))


def available_languages(source: str | Path) -> list[str]:
    """Languages with a ``<lang>.json[.xz]`` file in a folder, sorted (URLs: unknown → [])."""
    if isinstance(source, str) and _is_url(source):
        return []
    folder = Path(source)
    if not folder.is_dir():
        raise UsageError(f"LAReQA data folder not found: {folder}")
    langs = {p.name.split(".", 1)[0] for p in folder.iterdir()
             if p.name.endswith((".json", ".json.xz"))}
    return sorted(langs)


def read_language(source: str | Path, lang: str) -> LareqaLanguage:
    """Read and parse one language's file from a folder or URL base.

    Raises:
        UsageError: no file, or one that cannot be read (a truncated or corrupt ``.xz``, not
            UTF-8, invalid JSON, not LAReQA data, no questions); the message names the file.
    """
    path = language_file(source, lang)
    try:
        text = read_text(path)  # an .xz is checked while it streams (size, ratio)
    except (EOFError, lzma.LZMAError) as e:
        raise UsageError(f"{path}: truncated or corrupt .xz file ({e}); download it again"
                         ) from e
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e})") from e
    except OSError as e:
        raise UsageError(f"{path}: cannot be read ({e})") from e
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise UsageError(f"{path}: not valid JSON at line {e.lineno}, column {e.colno} "
                         f"({e.msg})") from e
    except RecursionError as e:
        raise UsageError(f"{path}: JSON nested too deeply (not LAReQA data)") from e
    data = parse(obj, lang, str(path))
    if not data.questions:
        raise UsageError(f"{path}: holds no questions (an empty LAReQA file?)")
    return data


def train_examples(source: str | Path, languages: Sequence[str] | None = None,
                   max_per_language: int = 0) -> list[TrainExample]:
    """Training pairs: each question with its answer sentence, ``parallel_id`` = question id.

    Args:
        source: a folder with ``<lang>.json[.xz]`` files, or a URL base.
        languages: languages to read (default: every file in the folder).
        max_per_language: keep the first N questions per language (file order); 0 = all.
    """
    langs = list(languages) if languages else available_languages(source)
    if not langs:
        raise UsageError(f"no LAReQA languages given or found at {source}")
    out: list[TrainExample] = []
    for lang in langs:
        data = read_language(source, lang)
        qs: Iterable[Question] = data.questions
        if max_per_language > 0:
            qs = data.questions[:max_per_language]
        out.extend(TrainExample(q.id, lang, q.text, data.answer(q)) for q in qs)
    return out


def train_corpus(source: str | Path, languages: Sequence[str] | None = None,
                 max_per_language: int = 0, name: str = "lareqa") -> TrainCorpus:
    """:func:`train_examples` as a :class:`~xlrun.data.types.TrainCorpus`."""
    return TrainCorpus.from_examples(train_examples(source, languages, max_per_language), name)
