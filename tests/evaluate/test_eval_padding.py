"""Padding waste: the measure, and that token-length order beats character-length order."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from xlrun.evaluate.encode import padding_waste
from xlrun.train.encoder import length_order

REPO = Path(__file__).resolve().parents[2]


def test_padding_waste_counts_pad_tokens_per_batch() -> None:
    lengths = [5, 1, 4, 2]
    # batches [5, 1] and [4, 2]: widths 5 and 4 → 18 fed, 12 real
    assert padding_waste(lengths, 2) == (6, 18)
    # sorted: [5, 4] and [2, 1] → 14 fed, 12 real
    assert padding_waste(lengths, 2, length_order(lengths)) == (2, 14)
    assert padding_waste(lengths, 10) == (8, 20)
    assert list(length_order([3, 7, 3, 7])) == [1, 3, 0, 2]  # ties keep input order


def test_token_order_pads_less_than_character_order() -> None:
    """Scripts where one character is several tokens mislead a character sort."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from padding_waste import _order

    texts = ["abcdefghij", "ĀĒĪŌŪĀĒĪŌ", "abcdefgh", "ĀĒĪŌŪĀĒ"]  # characters: 10, 9, 8, 7
    lengths = np.array([3, 11, 3, 11])                         # tokens
    by_chars = padding_waste(lengths, 2, _order("chars", texts, lengths))
    by_tokens = padding_waste(lengths, 2, _order("tokens", texts, lengths))
    assert by_chars == (16, 44) and by_tokens == (0, 28)


def test_benchmark_smoke_mode_runs() -> None:
    sys.path.insert(0, str(REPO / "benchmarks"))
    from padding_waste import main

    rows = main(["--smoke", "--batch", "8"])
    total = [r for r in rows if r["lang"] == "all"]
    assert {r["side"] for r in total} == {"query", "passage"}
    for r in total:
        assert 0.0 <= float(r["tokens"]) <= float(r["chars"]) <= 1.0
        assert float(r["tokens"]) < float(r["input"])
