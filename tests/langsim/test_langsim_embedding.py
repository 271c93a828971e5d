"""The embedding source with a fake, deterministic encoder (no model, no network)."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from xlrun.errors import UsageError
from xlrun.langsim import SimilarityContext, distance_matrix
from xlrun.langsim.embedding import aligned_texts, read_parallel_jsonl

# Invented sentences; the "translation" of sentence i in language L is "L: sentence i".
SENTENCES = ["the cat sleeps", "rain is coming", "we cook dinner", "a red bicycle"]
LANG_SHIFT = {"en": 0.0, "de": 0.1, "nl": 0.15, "zh": 2.0}


def _vec(text: str) -> np.ndarray:
    lang, _, body = text.partition(": ")
    seed = int(hashlib.sha256(body.encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).normal(size=16)
    v[0] += 4 * LANG_SHIFT[lang]  # a language-specific direction, bigger for 'zh'
    return v / np.linalg.norm(v)


class FakeEncoder:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.vstack([_vec(t) for t in texts])


def _texts(langs=("en", "de", "nl", "zh")) -> dict[str, list[str]]:
    return {lang: [f"{lang}: {s}" for s in SENTENCES] for lang in langs}


def test_mean_and_parallel_variants() -> None:
    enc = FakeEncoder()
    ctx = SimilarityContext(encode=enc, texts=_texts(), model_id="fake")
    langs = ["en", "de", "nl", "zh"]
    for src in ("embedding", "embedding:parallel"):
        dm = distance_matrix(src, langs, context=ctx)
        assert np.allclose(dm.values, dm.values.T) and np.all(np.diag(dm.values) == 0)
        assert dm.get("en", "de") < dm.get("en", "zh")
        assert dm.get("de", "nl") < dm.get("de", "zh")
    # parallel variant by hand: 1 - mean cosine of aligned rows
    en = np.vstack([_vec(t) for t in _texts()["en"]])
    zh = np.vstack([_vec(t) for t in _texts()["zh"]])
    par = distance_matrix("embedding:parallel", ["en", "zh"], context=ctx)
    assert par.get("en", "zh") == pytest.approx(1 - np.mean(np.sum(en * zh, axis=1)))
    mean = distance_matrix("embedding:mean", ["en", "zh"], context=ctx)
    me, mz = en.mean(0), zh.mean(0)
    assert mean.get("en", "zh") == pytest.approx(
        1 - me @ mz / (np.linalg.norm(me) * np.linalg.norm(mz)))


def test_disk_cache(tmp_path) -> None:
    enc = FakeEncoder()
    ctx = SimilarityContext(encode=enc, texts=_texts(), model_id="fake", cache_dir=tmp_path)
    first = distance_matrix("embedding:parallel", ["en", "de", "zh"], context=ctx)
    calls = enc.calls
    assert calls == 3 and len(list(tmp_path.glob("langsim-embedding-*.json"))) == 1
    second = distance_matrix("embedding:parallel", ["en", "de", "zh"], context=ctx)
    assert enc.calls == calls  # served from the cache
    assert np.allclose(first.values, second.values)
    # another model id, other texts or another variant → a new cache entry
    distance_matrix("embedding:parallel", ["en", "de", "zh"],
                    context=SimilarityContext(encode=enc, texts=_texts(), model_id="other",
                                              cache_dir=tmp_path))
    changed = _texts()
    changed["de"][0] = "de: a different sentence"
    distance_matrix("embedding:parallel", ["en", "de", "zh"],
                    context=SimilarityContext(encode=enc, texts=changed, model_id="fake",
                                              cache_dir=tmp_path))
    distance_matrix("embedding:mean", ["en", "de", "zh"], context=ctx)
    assert enc.calls == calls + 9
    assert len(list(tmp_path.glob("langsim-embedding-*.json"))) == 4
    # a corrupt entry is recomputed, not fatal
    for f in tmp_path.glob("langsim-embedding-*.json"):
        f.write_text("{not json")
    again = distance_matrix("embedding:parallel", ["en", "de", "zh"], context=ctx)
    assert np.allclose(again.values, first.values)


def test_alignment_by_parallel_id_and_errors(tmp_path) -> None:
    by_id = {"en": {"p1": "en: the cat sleeps", "p2": "en: rain is coming", "p9": "en: x"},
             "deu": {"p2": "de: rain is coming", "p1": "de: the cat sleeps"}}
    assert aligned_texts(by_id, ["en", "de"]) == {
        "en": ["en: the cat sleeps", "en: rain is coming"],
        "de": ["de: the cat sleeps", "de: rain is coming"]}
    enc = FakeEncoder()
    with pytest.raises(UsageError, match="no parallel texts for: zh"):
        distance_matrix("embedding", ["en", "zh"],
                        context=SimilarityContext(encode=enc, texts=_texts(("en", "de"))))
    with pytest.raises(UsageError, match="--model"):
        distance_matrix("embedding", ["en", "de"])
    bad = {"en": ["en: a", "en: b"], "de": ["de: a"]}
    with pytest.raises(UsageError, match="differ in length"):
        aligned_texts(bad, ["en", "de"])
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(json.dumps({"lang": lang, "parallel_id": f"p{i}", "text": t})
                              for lang, ts in _texts(("en", "deu")).items()
                              for i, t in enumerate(ts)) + "\n")
    parsed = read_parallel_jsonl(path)
    assert sorted(parsed) == ["de", "en"] and parsed["de"]["p0"] == "deu: the cat sleeps"
    path.write_text('{"lang": "en"}\n')
    with pytest.raises(UsageError, match="parallel_id"):
        read_parallel_jsonl(path)


def test_max_texts_limits_encoded_texts() -> None:
    seen: list[int] = []

    def enc(texts: list[str]) -> np.ndarray:
        seen.append(len(texts))
        return np.vstack([_vec(t) for t in texts])

    ctx = SimilarityContext(encode=enc, texts=_texts(("en", "de")), max_texts=2)
    distance_matrix("embedding", ["en", "de"], context=ctx)
    assert seen == [2, 2]


def test_combination_with_embedding() -> None:
    ctx = SimilarityContext(encode=FakeEncoder(), texts=_texts(), model_id="fake")
    emb = distance_matrix("embedding", ["en", "zh"], context=ctx)
    both = distance_matrix("0.5*embedding+0.5*script", ["en", "zh"], context=ctx)
    assert both.get("en", "zh") == pytest.approx(0.5 * emb.get("en", "zh") + 0.5)


def test_context_from_corpus_encodes_lazily() -> None:
    from xlrun.data.types import TrainCorpus, TrainExample

    corpus = TrainCorpus.from_examples(
        TrainExample(parallel_id=f"q{i}", lang=lang, query=f"{lang}: {s}", passage=f"p {s}")
        for lang in ("en", "de", "zh") for i, s in enumerate(SENTENCES))

    class Enc:
        def __init__(self) -> None:
            self.sides: list[str] = []

        def encode(self, texts, side):
            self.sides.append(side)
            return np.vstack([_vec(t) for t in texts])

    enc = Enc()
    ctx = SimilarityContext.from_corpus(corpus, enc, model_id="fake", min_shared=4)
    assert enc.sides == []  # nothing encoded until an embedding source runs
    dm = distance_matrix("embedding:parallel", ["en", "de", "zh"], context=ctx)
    assert enc.sides == ["query"] * 3
    assert dm.get("en", "de") < dm.get("en", "zh")


def test_similarity_is_encoded_in_full_precision_on_every_device() -> None:
    """The clusters a spec trains with must not depend on where the distances were computed:
    a CUDA encoder autocasts to bf16, which moved the study's e5 distances by up to 2e-4
    (gaps between merges in direction B: 3e-4). Similarity encoding asks for fp32."""
    import contextlib

    from xlrun.data.types import TrainCorpus, TrainExample

    corpus = TrainCorpus.from_examples(
        TrainExample(parallel_id=f"q{i}", lang=lang, query=f"{lang}: {s}", passage=f"p {s}")
        for lang in ("en", "de") for i, s in enumerate(SENTENCES))

    class Enc:
        def __init__(self) -> None:
            self.full = False
            self.seen: list[bool] = []

        @contextlib.contextmanager
        def full_precision(self):
            self.full = True
            yield
            self.full = False

        def encode(self, texts, side):
            self.seen.append(self.full)
            return np.vstack([_vec(t) for t in texts])

    enc = Enc()
    ctx = SimilarityContext.from_corpus(corpus, enc, model_id="fake", min_shared=4)
    distance_matrix("embedding:parallel", ["en", "de"], context=ctx)
    assert enc.seen == [True, True]


def test_encoder_full_precision_turns_cuda_autocast_off(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import torch
    from transformers import BertConfig, BertModel

    from xlrun.train.encoder import Encoder, EncoderConfig

    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32),
                      add_pooling_layer=False)
    enc = Encoder(EncoderConfig(name="tiny"), model, object(), "cpu")
    assert isinstance(enc.autocast(), contextlib.nullcontext)  # CPU: fp32 anyway
    monkeypatch.setattr(Encoder, "device", property(lambda self: torch.device("cuda")))
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        assert isinstance(enc.autocast(), torch.autocast)
    with enc.full_precision():
        assert isinstance(enc.autocast(), contextlib.nullcontext)
        with enc.full_precision():
            pass
        assert isinstance(enc.autocast(), contextlib.nullcontext)  # nested blocks restore
    with pytest.warns(UserWarning) if not torch.cuda.is_available() else contextlib.nullcontext():
        assert isinstance(enc.autocast(), torch.autocast)
