"""Few shapes (issue 22): batches pad to a multiple of a few tokens, capped at the longest
truncation length; embeddings, losses and gradients do not change (CPU, fp32); the distinct
input shapes are counted."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import toy_examples

from xlrun.spec.schema import TrainSection
from xlrun.train.encoder import PAD_MULTIPLE_CUDA, ShapeCounter, padded_width
from xlrun.train.samplers import PairRef
from xlrun.train.trainer import ContrastiveStep

TEXTS = [ex.passage for ex in toy_examples(12)] + ["a", "the cat sat on the old mat " * 6]


def test_padded_width_rounds_up_within_the_cap() -> None:
    assert [padded_width(n, 32, 256) for n in (1, 31, 32, 33, 250, 256)] == \
        [32, 32, 32, 64, 256, 256]
    assert padded_width(50, 32, 48) == 50  # never below the longest sequence
    assert padded_width(40, 32, 48) == 48  # nor above the cap when the longest fits it
    assert [padded_width(n, 1, 256) for n in (1, 17, 255)] == [1, 17, 255]
    assert PAD_MULTIPLE_CUDA == 32


def test_the_default_pads_only_on_an_accelerator(make_encoder) -> None:
    enc = make_encoder()
    assert enc.pad_multiple == 1  # CPU: every pad token costs compute, a shape nothing
    enc.pad_to_multiple_of = 32
    assert enc.pad_multiple == 32


@pytest.mark.parametrize("pooling, multiple", [("mean", 32), ("mean", 8), ("cls", 8),
                                               ("max", 8), ("weightedmean", 8),
                                               ("lasttoken", 8)])
def test_encode_is_unchanged_by_padding(make_encoder, multiple: int, pooling: str) -> None:
    plain = make_encoder(seed=1, pooling=pooling)
    padded = make_encoder(seed=1, pooling=pooling)
    padded.pad_to_multiple_of = multiple
    for side in ("query", "passage"):
        a = plain.encode(TEXTS, side, batch_size=5)
        b = padded.encode(TEXTS, side, batch_size=5)
        assert np.abs(a - b).max() <= 1e-6, (side, np.abs(a - b).max())
    # every padded width is a multiple (or the cap); the plain widths are each batch's longest
    widths_plain = {w for _, w in plain.shapes.seen}
    widths_padded = {w for _, w in padded.shapes.seen}
    assert len(widths_padded) < len(widths_plain)
    cap = max(padded.config.query_max_length, padded.config.passage_max_length)
    assert all(w % multiple == 0 or w == cap for w in widths_padded)


ITEMS = [PairRef(f"id{i}", "en", "de") for i in range(4)] + \
    [PairRef(f"id{i}", "es", "fr") for i in range(4, 8)]


@pytest.mark.parametrize("joint", [False, True])
def test_a_training_step_is_unchanged_by_padding(toy_corpus, make_encoder, joint: bool) -> None:
    cfg = TrainSection(hard_negatives=1)
    negs = [[("de", f"id{(i + 9) % 24}")] for i in range(len(ITEMS))]
    results = []
    for multiple in (1, 32):
        enc = make_encoder(seed=4, dropout=0.0)
        enc.pad_to_multiple_of = multiple
        loss = ContrastiveStep(enc, toy_corpus, cfg, joint=joint)(ITEMS, negs)
        grads = {n: p.grad.clone() for n, p in enc.model.named_parameters() if p.grad is not None}
        results.append((loss.item(), grads, enc.shapes.take()))
    (loss1, g1, shapes1), (loss32, g32, shapes32) = results
    assert loss32 == pytest.approx(loss1, abs=1e-6)
    for name in g1:  # summed in another order over other shapes: fp32 rounding only
        scale = float(g1[name].abs().max())
        torch.testing.assert_close(g32[name], g1[name], rtol=1e-4, atol=1e-4 * scale + 1e-9)
    assert shapes32[0] <= shapes1[0]


def test_shape_counter_counts_distinct_and_new() -> None:
    c = ShapeCounter()
    for shape in ((4, 32), (4, 32), (4, 64)):
        c.add(*shape)
    assert c.take() == (2, 2)
    c.add(4, 32)
    c.add(2, 32)
    assert c.take() == (2, 1)  # (4, 32) was fed before in this process
    assert c.take() == (0, 0)
