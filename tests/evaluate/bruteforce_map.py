"""A brute-force reference for LAReQA (XQuAD-R) retrieval mAP, independent of xlrun.

Nothing here imports xlrun: the files are read with ``lzma`` + ``json``, the candidate
rule is re-implemented, texts are encoded with plain ``transformers`` and every setting is
scored from its full score matrix with numpy. The rules (from the LAReQA task definition):

- the candidates of a language are the unique sentence texts of its paragraphs, in file
  order (first occurrence); a sentence text repeated within a language is one candidate;
- a question's answer is the sentence whose ``sentence_breaks`` span ``[start, end)`` holds
  its ``answer_start``; the question is relevant to that sentence's candidate in *every*
  language where the question id exists (translations share ids);
- ``max_queries_per_language = n`` keeps, per language, the ``n`` question ids that come
  first when sorted by the SHA-1 hex digest of the id (all of them when there are ≤ n);
- settings: ``mono`` X→X, ``cross`` X→Y for every ordered pair X ≠ Y, ``multi`` X→the pool
  of all languages' candidates (``doc_lang = "all"``; languages in sorted order). A
  question with no relevant candidate in the searched collection is skipped there;
- ranking: score (cosine) descending, ties by candidate position ascending (a stable sort);
  AP averages ``i / rank_i`` over *all* relevant candidates; the rank distance (multi) is
  ``max rank - min rank`` over a question's relevant candidates.
"""

from __future__ import annotations

import hashlib
import json
import lzma
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

POOL = "all"


@dataclass(frozen=True)
class Language:
    """One language's candidates and (kept) questions."""

    lang: str
    candidates: list[str]  # unique sentence texts, first-occurrence order
    answer_of: dict[str, int]  # every question id of the file -> its answer candidate
    query_ids: list[str]  # the kept questions (after the cap), file order
    query_texts: list[str]


@dataclass(frozen=True)
class PairResult:
    """Per-query reference values of one (setting, query_lang, doc_lang)."""

    query_ids: list[str]
    ap: np.ndarray
    rank_distance: np.ndarray | None  # multi only


def read_file(folder: Path, lang: str) -> dict:
    """The decoded JSON of ``<lang>.json.xz`` (or ``<lang>.json``)."""
    xz, plain = folder / f"{lang}.json.xz", folder / f"{lang}.json"
    if xz.is_file():
        with lzma.open(xz, "rt", encoding="utf-8") as f:
            return json.load(f)
    with open(plain, encoding="utf-8") as f:
        return json.load(f)


def hash_cap(ids: Sequence[str], n: int) -> set[str]:
    """The ids kept by ``max_queries_per_language = n`` (0 = all)."""
    if n <= 0 or len(ids) <= n:
        return set(ids)
    by_hash = sorted(ids, key=lambda i: hashlib.sha1(i.encode("utf-8")).hexdigest())
    return set(by_hash[:n])


def parse_language(obj: dict, lang: str, max_queries: int = 0) -> Language:
    """Candidates, answers and kept questions of one decoded LAReQA file."""
    candidates: list[str] = []
    index_of_text: dict[str, int] = {}
    answer_of: dict[str, int] = {}
    questions: list[tuple[str, str]] = []
    for article in obj["data"]:
        for par in article["paragraphs"]:
            sentence_ids = []
            for text in par["sentences"]:
                if text not in index_of_text:
                    index_of_text[text] = len(candidates)
                    candidates.append(text)
                sentence_ids.append(index_of_text[text])
            for qa in par["qas"]:
                start = qa["answers"][0]["answer_start"]
                holding = [k for k, (a, b) in enumerate(par["sentence_breaks"]) if a <= start < b]
                if len(holding) != 1:
                    raise ValueError(f"{lang} {qa['id']}: {len(holding)} sentences hold "
                                     f"answer_start {start}")
                answer_of[qa["id"]] = sentence_ids[holding[0]]
                questions.append((qa["id"], qa["question"]))
    keep = hash_cap([q for q, _ in questions], max_queries)
    kept = [(q, t) for q, t in questions if q in keep]
    return Language(lang, candidates, answer_of, [q for q, _ in kept], [t for _, t in kept])


def load(folder: Path, languages: Sequence[str], max_queries: int = 0) -> dict[str, Language]:
    """Parse every language (sorted) of an XQuAD-R / MLQA-R folder."""
    return {lang: parse_language(read_file(folder, lang), lang, max_queries)
            for lang in sorted(languages)}


def load_model(model_dir: str | Path, device: str = "cpu") -> tuple[Any, Any]:
    """``(tokenizer, model)`` with plain transformers; fp32 weights whatever the file's dtype."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False)
    return tok, model.float().to(device).eval()


def encode(tok: Any, model: Any, texts: Sequence[str], prefix: str, *, max_length: int = 512,
           batch_size: int = 64, bf16: bool = False,
           progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings (float32, input order).

    Texts go in batches sorted by length (less padding). ``bf16`` runs the forward pass
    under CUDA bf16 autocast, the precision the product's encoder uses on CUDA.
    """
    import contextlib

    import torch

    device = next(model.parameters()).device
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), model.config.hidden_size), dtype=np.float32)
    cast = (torch.autocast("cuda", dtype=torch.bfloat16) if bf16
            else contextlib.nullcontext())
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = tok([prefix + texts[i] for i in idx], padding=True, truncation=True,
                        max_length=max_length, return_tensors="pt")
            ids = batch["input_ids"].to(device)
            mask = batch["attention_mask"].to(device)
            with cast:
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
            m = mask.unsqueeze(-1).to(hidden.dtype)
            mean = ((hidden * m).sum(1) / m.sum(1)).float()
            out[idx] = torch.nn.functional.normalize(mean, dim=-1).cpu().numpy()
            if progress is not None:
                progress(len(idx))
    return out


def ranks_of(scores: np.ndarray, relevant: Sequence[int]) -> np.ndarray:
    """1-based ranks of the relevant candidates: score descending, ties by position."""
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(len(scores), dtype=np.int64)
    rank[order] = np.arange(1, len(scores) + 1)
    return np.sort(rank[list(relevant)])


def average_precision(ranks: np.ndarray) -> float:
    """Mean over the R relevant candidates of (i / rank_i), ranks ascending."""
    i = np.arange(1, len(ranks) + 1)
    return float(np.mean(i / ranks))


def evaluate(langs: dict[str, Language], q_vecs: dict[str, np.ndarray],
             c_vecs: dict[str, np.ndarray], settings: Sequence[str] = ("mono", "cross", "multi"),
             ) -> dict[tuple[str, str, str], PairResult]:
    """Per-query AP (and rank distance in the pool) for every setting and language pair."""
    names = sorted(langs)
    pool = np.concatenate([c_vecs[x] for x in names])  # the sorted languages, concatenated

    def relevant(qid: str, doc_langs: Sequence[str]) -> list[int]:
        """Indices of ``qid``'s answers in the collection made of ``doc_langs`` (in order)."""
        out, offset = [], 0
        for y in doc_langs:
            if qid in langs[y].answer_of:
                out.append(offset + langs[y].answer_of[qid])
            offset += len(langs[y].candidates)
        return out

    targets: list[tuple[str, str, str, list[str]]] = []
    for x in names:
        if "mono" in settings:
            targets.append(("mono", x, x, [x]))
        if "cross" in settings:
            targets.extend(("cross", x, y, [y]) for y in names if y != x)
        if "multi" in settings:
            targets.append(("multi", x, POOL, names))
    results: dict[tuple[str, str, str], PairResult] = {}
    for setting, x, y, doc_langs in targets:
        docs = pool if y == POOL else c_vecs[y]
        scores = q_vecs[x] @ docs.T  # (queries, candidates) float32
        kept, aps, dists = [], [], []
        for row, qid in enumerate(langs[x].query_ids):
            rel = relevant(qid, doc_langs)
            if not rel:
                continue
            r = ranks_of(scores[row], rel)
            kept.append(qid)
            aps.append(average_precision(r))
            dists.append(float(r[-1] - r[0]))
        results[(setting, x, y)] = PairResult(
            kept, np.array(aps), np.array(dists) if setting == "multi" else None)
    return results


def reference(folder: Path, model_dir: str | Path, languages: Sequence[str], *,
              max_queries: int = 0, query_prefix: str = "query: ",
              passage_prefix: str = "passage: ", max_length: int = 512, batch_size: int = 64,
              device: str = "cpu", bf16: bool = False,
              settings: Sequence[str] = ("mono", "cross", "multi"),
              ) -> dict[tuple[str, str, str], PairResult]:
    """Load, encode and score: the whole reference computation."""
    langs = load(folder, languages, max_queries)
    tok, model = load_model(model_dir, device)
    kw: dict[str, Any] = {"max_length": max_length, "batch_size": batch_size, "bf16": bf16}
    q_vecs = {x: encode(tok, model, lg.query_texts, query_prefix, **kw)
              for x, lg in langs.items()}
    c_vecs = {x: encode(tok, model, lg.candidates, passage_prefix, **kw)
              for x, lg in langs.items()}
    return evaluate(langs, q_vecs, c_vecs, settings)
