"""Encoder.encode: input order, batching invariance and out-of-memory backoff."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import tiny_encoder, toy_examples

from xlrun.train.encoder import Encoder


def _texts() -> list[str]:
    ex = toy_examples(n=12)
    # lengths that differ a lot, as in a long-document corpus
    return [" ".join(e.passage.split()[:1 + i % 9]) * (1 + i % 3) for i, e in enumerate(ex)]


def test_encode_keeps_input_order_and_ignores_batch_size() -> None:
    enc = tiny_encoder()
    texts = _texts()
    a = enc.encode(texts, "passage", batch_size=64)
    b = enc.encode(texts, "passage", batch_size=3)
    assert a.shape == (len(texts), enc.model.config.hidden_size)
    np.testing.assert_allclose(a, b, atol=1e-5)
    one = enc.encode([texts[7]], "passage", batch_size=1)
    np.testing.assert_allclose(one[0], a[7], atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def _oom_above(enc: Encoder, max_tokens: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make ``enc.embed_tokens`` fail like a full GPU when a batch pads beyond ``max_tokens``."""
    sizes: list[int] = []
    real = enc.embed_tokens

    def embed_tokens(batch, side="passage"):
        n, width = batch["input_ids"].shape
        sizes.append(n)
        if n * width > max_tokens:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return real(batch, side)

    monkeypatch.setattr(enc, "embed_tokens", embed_tokens)
    return sizes


def test_out_of_memory_halves_the_batch_and_grows_back(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = tiny_encoder()
    texts = _texts()
    expected = enc.encode(texts, "passage", batch_size=64)
    longest = max(len(ids) for ids in enc.token_ids(texts, "passage"))
    sizes = _oom_above(enc, 4 * longest, monkeypatch)
    got = enc.encode(texts, "passage", batch_size=32)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert sizes[0] == 32 and 4 in sizes          # 32 → 16 → 8 → 4 fits the longest texts
    assert max(sizes[sizes.index(4):]) > 4        # shorter texts get larger batches again


def test_out_of_memory_at_batch_one_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = tiny_encoder()
    _oom_above(enc, 0, monkeypatch)
    with pytest.raises(torch.OutOfMemoryError):
        enc.encode(_texts(), "passage", batch_size=8)


def test_encode_tokenizes_once_and_batches_by_token_count(monkeypatch: pytest.MonkeyPatch) -> None:
    enc = tiny_encoder()
    texts = _texts()
    calls: list[int] = []

    class Counting:
        """The tokenizer, counting calls."""

        def __init__(self, tok) -> None:
            self.tok = tok

        def __call__(self, *a, **k):
            calls.append(1)
            return self.tok(*a, **k)

        def __getattr__(self, name: str):
            return getattr(self.tok, name)

    expected = enc.encode(texts, "passage", batch_size=4)
    enc.tokenizer = Counting(enc.tokenizer)
    batches: list[list[int]] = []
    real = enc.embed_tokens

    def embed_tokens(batch, side="passage"):
        batches.append(batch["attention_mask"].sum(1).tolist())
        assert batch["input_ids"].shape[1] == max(batches[-1])  # padded to its own longest
        return real(batch, side)

    monkeypatch.setattr(enc, "embed_tokens", embed_tokens)
    got = enc.encode(texts, "passage", batch_size=4)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert len(calls) == 1                                  # every text tokenized once
    flat = [n for b in batches for n in b]
    assert flat == sorted(flat, reverse=True)               # by decreasing token count
    assert sorted(flat) == sorted(len(x) for x in enc.token_ids(texts, "passage"))


def test_encoder_config_is_the_model_section_resolved() -> None:
    """EncoderConfig extends ModelSection: every [model] field is there, and every field that
    is a setting (not a model or prompt choice) is resolved to a value, with its source."""
    from dataclasses import fields

    from xlrun.spec.schema import ModelSection
    from xlrun.train.encoder import SELECTORS, SETTINGS, EncoderConfig, resolve_config
    from xlrun.train.st_format import ModelFolder

    assert issubclass(EncoderConfig, ModelSection)
    spec_fields = {f.name for f in fields(ModelSection)}
    assert set(SETTINGS) == (spec_fields - set(SELECTORS)) | {"normalize"}
    cfg, sources = resolve_config(ModelFolder(name="plain", transformer="plain"),
                                  ModelSection(name="plain", query_max_length=12))
    for key in SETTINGS:
        assert getattr(cfg, key) is not None and key in sources, key
    assert cfg.query_max_length == 12 and sources["query_max_length"] == "spec"
    assert cfg.passage_max_length == 256 and sources["passage_max_length"] == "default"
