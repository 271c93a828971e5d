"""The tiny quickstart encoder: builds, loads offline, tokenizes every script, is reused."""

from __future__ import annotations

import os

import pytest

from xlrun.errors import UsageError
from xlrun.quickstart.corpus import LANGUAGES, eval_data
from xlrun.quickstart.tiny_model import (
    FINGERPRINT_FILE,
    build_tiny_model,
    build_vocab,
    ensure_tiny_model,
    fingerprint,
    resolve_model_name,
)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("qs-cache")


@pytest.fixture(scope="module")
def folder(cache):
    return ensure_tiny_model(cache)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_loads_with_auto_classes(folder):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder)
    assert model.config.model_type == "bert"
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size <= 128
    assert model.config.vocab_size == len(tok)
    assert 1500 <= len(tok) <= 4000
    enc = tok("In what year was Tomas Bevu born?")
    assert enc["input_ids"][0] == tok.cls_token_id and enc["input_ids"][-1] == tok.sep_token_id
    assert {tok.pad_token, tok.unk_token, tok.mask_token} == {"[PAD]", "[UNK]", "[MASK]"}
    batch = tok(["a", "Πόσο μήκος έχει ο ποταμός Ζεπου;"], padding=True, return_tensors="pt")
    out = model(**batch).last_hidden_state
    assert out.shape[:2] == batch["input_ids"].shape


def test_tokenizes_all_scripts_without_unknowns(folder):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    data = eval_data()  # entities never seen by the tokenizer
    for lang in LANGUAGES:
        texts = [q.text for q in data.queries[lang]] + [d.text for d in data.corpus[lang]]
        ids = tok(texts)["input_ids"]
        n = sum(len(x) for x in ids)
        unk = sum(x.count(tok.unk_token_id) for x in ids)
        assert unk / n < 0.01, lang
        assert max(len(x) for x in ids) <= 48, lang


def test_encoder_loads_it(folder):
    from xlrun.train.encoder import Encoder, EncoderConfig

    enc = Encoder.load(EncoderConfig(name=str(folder)), device="cpu")
    vecs = enc.encode(["Где родился Гитар Лулефос?", "Where was Gitar Lulefos born?"], "query")
    assert vecs.shape == (2, enc.model.config.hidden_size)


def test_build_is_idempotent(cache, folder):
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = ensure_tiny_model(cache)
    assert again == folder
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamp
    assert (folder / FINGERPRINT_FILE).read_text().strip() == fingerprint(0)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_stale_build_is_replaced_and_builds_are_identical(tmp_path, folder):
    out = tmp_path / "m"
    out.mkdir()
    (out / FINGERPRINT_FILE).write_text("old\n")
    (out / "junk.bin").write_text("x")
    assert build_tiny_model(out) == out
    assert not (out / "junk.bin").exists()
    assert (out / FINGERPRINT_FILE).read_text().strip() == fingerprint(0)
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert (out / name).read_bytes() == (folder / name).read_bytes(), name


def test_vocab_is_deterministic():
    assert build_vocab(0) == build_vocab(0)
    assert fingerprint(0) == fingerprint(0) != fingerprint(1)


def test_resolve_model_name(cache, folder):
    assert resolve_model_name("quickstart:tiny", cache) == str(folder)
    assert resolve_model_name("bert-base-multilingual-cased", cache) == "bert-base-multilingual-cased"
    with pytest.raises(UsageError, match="quickstart:tiny"):
        resolve_model_name("quickstart:huge", cache)
    assert os.path.isdir(resolve_model_name("quickstart:tiny", cache))
