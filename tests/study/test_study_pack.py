"""The model pack that travels to the GPU: Q4 round trip, and the vocabulary restricted to the
study's texts leaves every study text's tokenisation and a sample's embeddings unchanged."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO / "benchmarks" / "study"))

import pack as packlib  # noqa: E402
import prepare  # noqa: E402


def test_q4_quantize_round_trip() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((5, 64)).astype(np.float32)
    q4, scale = packlib.quantize(w)
    assert q4.shape == (5, 32) and scale.shape == (5, 2)
    back = packlib.dequantize(q4, scale)
    assert np.abs(back - w).max() <= np.abs(w).max() / 7  # half a step at most, with margin
    # an already quantized matrix survives another round exactly
    q4b, scaleb = packlib.quantize(back)
    assert np.array_equal(packlib.dequantize(q4b, scaleb), back)


@pytest.mark.slow
def test_restricted_pack_tokenises_and_embeds_every_study_text_the_same(tmp_path: Path) -> None:
    full, data = SHARED / "models" / "multilingual-e5-small", SHARED / "data"
    if not (full.is_dir() and data.is_dir()):
        pytest.skip(f"{SHARED} is absent")
    texts = prepare.study_texts(data)
    assert len(texts) > 100_000  # every question and sentence of both datasets, two prefixes
    counts = packlib.restrict(full, tmp_path / "small", texts)
    assert counts["kept"] < counts["vocab_before"]
    assert packlib.check_restricted(full, tmp_path / "small", texts) == len(texts)
    sample = texts[:: len(texts) // 12][:12]
    diff = prepare.compare_embeddings(full, tmp_path / "small", sample, tmp_path / "hf")
    assert diff == 0.0
    # the check can fail: a word whose best segmentation uses a piece that was dropped
    import json

    from tokenizers import Tokenizer

    kept = set(json.loads((tmp_path / "small" / "kept_ids.json").read_text()))
    tok = Tokenizer.from_file(str(full / "tokenizer.json"))
    vocab = json.loads((full / "tokenizer.json").read_text())["model"]["vocab"]
    for i, (piece, _score) in enumerate(vocab):
        if i not in kept and piece.startswith("\u2581") and len(piece) > 4:
            word = "passage: " + piece[1:]
            if i in tok.encode(word).ids:
                break
    with pytest.raises(AssertionError, match="tokenisation differs"):
        packlib.check_restricted(full, tmp_path / "small", [word])
