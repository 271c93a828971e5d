"""End to end with the real multilingual-e5-small on a subset of XQuAD-R (slow; needs ../shared)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from xlrun.data.lareqa import LareqaLanguage, read_language
from xlrun.evaluate.runner import evaluate_dataset
from xlrun.evaluate.tasks.common import subsample
from xlrun.evaluate.tasks.lareqa import build
from xlrun.evaluate.types import Query
from xlrun.spec.schema import EvalSection

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
DATA = SHARED / "data" / "xquad-r"


pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared XQuAD-R not available")


def _subset(lang: str, n: int) -> LareqaLanguage:
    """``n`` questions (hash-chosen, the same ids in every language) and their paragraphs."""
    full = read_language(DATA, lang)
    keep_ids = {q.id for q in subsample([Query(q.id, lang, q.text) for q in full.questions], n)}
    qs = [q for q in full.questions if q.id in keep_ids]
    pars = sorted({q.paragraph for q in qs})
    new_index = {p: i for i, p in enumerate(pars)}
    return LareqaLanguage(lang, tuple(full.paragraphs[p] for p in pars),
                          tuple(replace(q, paragraph=new_index[q.paragraph]) for q in qs))


@pytest.mark.slow
def test_e5_scores_far_above_chance(e5_dir: Path) -> None:
    from xlrun.train.encoder import Encoder, EncoderConfig

    enc = Encoder.load(EncoderConfig(str(e5_dir), pooling="mean", query_prefix="query: ",
                                     passage_prefix="passage: "), device="cpu")
    data = build("xquad-r", {lang: _subset(lang, 60) for lang in ("en", "de")}, "test", "text")
    out = evaluate_dataset(enc, data, EvalSection("xquad-r", top_k=10, batch_size=64))
    n_docs = min(len(d) for d in data.corpus.values())
    chance = 5.0 / n_docs  # generous: AP of a random ranking is about ln(n)/n
    mono, cross, multi = (out.metric(s, "map") for s in ("mono", "cross", "multi"))
    print(f"e5 subset: {n_docs} docs, mAP mono {mono:.3f} cross {cross:.3f} multi {multi:.3f}")
    assert mono > 0.6 and mono > 20 * chance, mono
    assert cross > 0.35, cross
    assert multi > 0.2, multi
    assert out.metric("multi", "recall@100") > 0.8
