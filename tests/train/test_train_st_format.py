"""Sentence-transformers models load as sentence-transformers itself embeds with them.

For tiny models in the shapes of LaBSE, multilingual-e5 and a last-token decoder embedder,
``Encoder.encode`` gives the vectors of ``SentenceTransformer.encode_query`` /
``encode_document`` (max abs difference ≤ 1e-5 in fp32), prompts included.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from st_models import (
    QWEN_PROMPT,
    decoder_like,
    e5_like,
    hf_folder,
    labse_like,
    sample_texts,
    st_model,
)

from xlrun.errors import SpecError
from xlrun.spec.schema import ModelSection
from xlrun.train.encoder import Encoder, load_encoder
from xlrun.train.st_format import ModelFormatError, read_folder

TOL = 1e-5


def sentence_transformer(path: Path):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(path), device="cpu")


def assert_same(enc: Encoder, st, texts: list[str], passage_prompt_name: str | None = None,
                batch_size: int = 4) -> None:
    """xlrun's query/passage vectors equal sentence-transformers' encode_query/encode_document."""
    kw = {"prompt_name": passage_prompt_name} if passage_prompt_name else {}
    for side, ref in (("query", st.encode_query(texts, batch_size=3)),
                      ("passage", st.encode_document(texts, batch_size=3, **kw))):
        got = enc.encode(texts, side, batch_size=batch_size)
        assert got.shape == ref.shape
        diff = float(np.abs(got - ref).max())
        assert diff <= TOL, f"{side}: max abs difference {diff:.2e}"


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("st")


@pytest.fixture(scope="module")
def labse(tmp: Path) -> Path:
    return labse_like(tmp)


@pytest.fixture(scope="module")
def e5(tmp: Path) -> Path:
    return e5_like(tmp)


def test_labse_shape_cls_dense_tanh_normalize(labse: Path) -> None:
    folder = read_folder(str(labse))
    assert folder.sentence_transformers and folder.pooling == "cls" and folder.normalize
    assert [(d.in_features, d.out_features, d.activation.rsplit(".", 1)[-1])
            for d in folder.dense] == [(32, 24, "Tanh")]
    enc = load_encoder(str(labse), device="cpu")
    assert enc.embedding_dim == 24
    assert enc.sources["pooling"] == "model"
    assert_same(enc, sentence_transformer(labse), sample_texts())


def test_e5_shape_prompts_lengths_and_lowercasing(e5: Path) -> None:
    """Files as older sentence-transformers wrote them (legacy pooling keys, max_seq_length,
    do_lower_case); the passage prompt is the declared ``passage`` one. (sentence-transformers
    6's ``encode_document`` tries an empty ``document`` prompt first, so it is named here.)"""
    enc = load_encoder(str(e5), device="cpu")
    c = enc.config
    assert (c.pooling, c.query_prefix, c.passage_prefix) == ("mean", "query: ", "passage: ")
    assert (c.query_max_length, c.passage_max_length) == (24, 24)
    assert enc.sources["query_prefix"] == "model (prompt 'query')"
    texts = sample_texts()
    assert any(len(ids) == 24 for ids in enc.token_ids(texts, "passage"))  # truncation happens
    assert_same(enc, sentence_transformer(e5), texts, passage_prompt_name="passage")
    # lower-casing matters for this (case-sensitive) tokenizer, and is applied
    plain = load_encoder(ModelSection(name=str(hf_folder("xlmr", e5.parent / "xlmr-plain"))),
                         device="cpu")
    for tok, lowered in ((enc.tokenizer, True), (plain.tokenizer, False)):
        same = tok("The Old Town")["input_ids"] == tok("the old town")["input_ids"]
        assert same == lowered


def test_last_token_decoder_left_and_right_padding(tmp: Path) -> None:
    path = decoder_like(tmp)
    enc = load_encoder(str(path), device="cpu")
    assert enc.tokenizer.padding_side == "left"
    assert (enc.config.pooling, enc.config.query_prefix, enc.config.passage_prefix) == (
        "lasttoken", QWEN_PROMPT, "")
    texts = sample_texts()
    st = sentence_transformer(path)
    assert_same(enc, st, texts)
    left = enc.encode(texts, "query", batch_size=4)
    enc.tokenizer.padding_side = "right"
    right = enc.encode(texts, "query", batch_size=4)
    assert float(np.abs(left - right).max()) <= TOL


@pytest.mark.parametrize("mode", ["cls", "mean", "max", "weightedmean", "lasttoken",
                                  "mean_sqrt_len_tokens"])
@pytest.mark.parametrize("kind", ["bert", "qwen2"])
def test_every_pooling_mode_without_the_prompt(tmp: Path, kind: str, mode: str) -> None:
    """``include_prompt = false``: prompt tokens are left out of pooling, with right (BERT)
    and left (decoder) padding."""
    hf = tmp / f"hf-{kind}"
    if not hf.exists():
        hf_folder(kind, hf)
    prompts = {"query": "query: the old", "document": "passage: "}
    path = st_model(hf, tmp / f"{kind}-{mode}", pooling=mode, include_prompt=False,
                    prompts=prompts, normalize=False)
    enc = load_encoder(str(path), device="cpu")
    assert enc.config.include_prompt is False and enc.prompt_length("query") > 1
    # a model without Normalize and cosine similarity: xlrun ranks by cosine (normalises)
    assert enc.config.normalize
    st = sentence_transformer(path)
    texts = sample_texts()
    for side, raw in (("query", st.encode_query(texts, batch_size=3)),
                      ("passage", st.encode_document(texts, batch_size=3))):
        ref = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        got = enc.encode(texts, side, batch_size=4)
        assert float(np.abs(got - ref).max()) <= TOL, side


def test_spec_values_override_the_model(labse: Path, e5: Path) -> None:
    enc = load_encoder(ModelSection(name=str(labse), pooling="mean", query_prefix="q: ",
                                    query_max_length=8), device="cpu")
    c = enc.config
    assert (c.pooling, c.query_prefix, c.query_max_length) == ("mean", "q: ", 8)
    assert enc.sources["pooling"] == enc.sources["query_prefix"] == "spec"
    assert enc.sources["passage_prefix"] == "model (prompt 'document')"  # saved as ""
    assert enc.config.passage_prefix == "" and len(enc.dense) == 1
    # an empty prefix in the spec switches the model's prompt off; a prompt name picks one
    enc = load_encoder(ModelSection(name=str(e5), query_prefix="",
                                    passage_prompt_name="query"), device="cpu")
    assert (enc.config.query_prefix, enc.config.passage_prefix) == ("", "query: ")
    assert enc.sources["passage_prefix"] == "spec (the model's prompt 'query')"
    with pytest.raises(SpecError, match="query_prompt_name.*no such prompt.*passage, query"):
        load_encoder(ModelSection(name=str(e5), query_prompt_name="web"), device="cpu")
    # another run's settings on the same loaded weights
    enc.configure(ModelSection(name=str(e5)))
    assert enc.config.passage_prefix == "passage: "


def test_plain_hugging_face_folder_keeps_the_defaults(tmp: Path) -> None:
    path = tmp / "hf-bert"
    if not path.exists():
        hf_folder("bert", path)
    enc = load_encoder(str(path), device="cpu")
    c = enc.config
    assert not enc.folder.sentence_transformers and not len(enc.dense)
    assert (c.pooling, c.query_prefix, c.passage_prefix, c.query_max_length,
            c.passage_max_length, c.normalize) == ("mean", "", "", 64, 256, True)
    assert set(enc.sources.values()) == {"default"}
    texts = sample_texts()
    with torch.no_grad():  # mean over the mask, normalised: what xlrun always did
        b = enc.tokenizer(texts, padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
        h = enc.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        m = b["attention_mask"].unsqueeze(-1).float()
        ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    assert float(np.abs(enc.encode(texts, "passage") - ref).max()) <= TOL


def test_modules_xlrun_cannot_reproduce_are_errors(labse: Path, tmp: Path) -> None:
    import shutil

    bad = tmp / "lstm"
    shutil.copytree(labse, bad)
    modules = json.loads((bad / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "x", "path": "x", "type": "sentence_transformers.models.LSTM"})
    (bad / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ModelFormatError, match="LSTM.*not supported"):
        load_encoder(str(bad), device="cpu")
    pooling = tmp / "two-poolings"
    shutil.copytree(labse, pooling)
    (pooling / "1_Pooling" / "config.json").write_text(json.dumps(
        {"embedding_dimension": 32, "pooling_mode": ["cls", "mean"]}))
    with pytest.raises(ModelFormatError, match="pooling.*not supported"):
        read_folder(str(pooling))


@pytest.mark.parametrize("shape", ["labse", "e5"])
def test_trained_model_saves_as_sentence_transformers(shape: str, labse: Path, e5: Path,
                                                       tmp_path: Path) -> None:
    """A few training steps move the transformer and the Dense layer; the saved folder
    loads in sentence-transformers and in xlrun with the trained model's vectors."""
    from train_helpers import toy_examples

    from xlrun.data.types import TrainCorpus
    from xlrun.spec.schema import (
        EvalSection,
        RunConfig,
        SamplingSection,
        TrainDataSection,
        TrainSection,
    )
    from xlrun.train.trainer import train

    enc = load_encoder(str(labse if shape == "labse" else e5), device="cpu")
    base = {k: v.clone() for k, v in enc.state_dict().items()}
    texts = sample_texts()
    before = enc.encode(texts, "query")
    run = RunConfig(model=ModelSection(name="x"), train_data=TrainDataSection(),
                    sampling=SamplingSection(strategy="hybrid"),
                    train=TrainSection(steps=4, batch_size=8, lr=1e-2, warmup_ratio=0.0, seed=3),
                    eval=[EvalSection(dataset="local")])
    train(run, TrainCorpus.from_examples(toy_examples(), name="toy"), enc)
    after = dict(enc.state_dict().items())
    changed = {k.split(".")[0] for k in base if not torch.equal(base[k], after[k])}
    assert changed == ({"model", "dense"} if shape == "labse" else {"model"})
    trained = enc.encode(texts, "query")
    assert float(np.abs(trained - before).max()) > 1e-3
    saved = enc.save(tmp_path / "model")
    st = sentence_transformer(saved)
    assert_same(enc, st, texts)
    again = load_encoder(str(saved), device="cpu")
    assert again.config == enc.config.__class__(**{**enc.config.__dict__, "name": str(saved)})
    np.testing.assert_allclose(again.encode(texts, "passage"), enc.encode(texts, "passage"),
                               atol=TOL)
    # restoring the base weights with load_state_dict restores the Dense layers too
    enc.load_state_dict(base)
    np.testing.assert_allclose(enc.encode(texts, "query"), before, atol=TOL)
