"""Tiny random BERT encoders and a toy parallel corpus for trainer tests (no network): helpers
imported by the test modules (a module name of its own, so that ``conftest`` of another test
folder never shadows it)."""

from __future__ import annotations

import torch

from xlrun.data.types import TrainExample
from xlrun.train.encoder import Encoder, EncoderConfig

WORDS = {
    "en": ["the", "cat", "sat", "on", "a", "mat", "while", "rain", "fell", "over", "old", "town", "bridge"],
    "de": ["die", "katze", "sass", "auf", "einer", "matte", "waehrend", "regen", "fiel", "ueber", "alte", "stadt", "bruecke"],
    "es": ["el", "gato", "se", "sento", "en", "una", "alfombra", "mientras", "lluvia", "caia", "sobre", "viejo", "puente"],
    "fr": ["le", "chat", "assis", "sur", "un", "tapis", "pendant", "pluie", "tombait", "sur", "vieux", "pont", "ville"],
}


def toy_examples(n: int = 24, langs: tuple[str, ...] = ("en", "de", "es", "fr")) -> list[TrainExample]:
    """``n`` parallel ids per language; texts are word salads written here (no real data)."""
    out = []
    for lang in langs:
        w = WORDS[lang]
        for i in range(n):
            q = " ".join(w[(i + j) % len(w)] for j in range(3 + i % 4))
            p = " ".join(w[(i * 3 + j) % len(w)] for j in range(6 + i % 7))
            out.append(TrainExample(f"id{i}", lang, f"{q} {i}?", f"{p} {i}."))
    return out


def make_tokenizer():
    """A WordPiece tokenizer trained on the toy texts, wrapped for transformers."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=300, special_tokens=[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    texts = [t for ex in toy_examples() for t in (ex.query, ex.passage)]
    tok.train_from_iterator(texts, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


_TOKENIZER = None


def tiny_encoder(seed: int = 0, dropout: float = 0.1, pooling: str = "mean",
                 dense: int = 0) -> Encoder:
    """A 2-layer, 32-wide random BERT (same weights for the same seed); ``dense > 0`` adds a
    sentence-transformers Dense layer (32 → ``dense``, tanh) after pooling, as LaBSE has."""
    from transformers import BertConfig, BertModel

    from xlrun.train.encoder import Dense
    from xlrun.train.st_format import DenseLayer

    global _TOKENIZER
    if _TOKENIZER is None:
        _TOKENIZER = make_tokenizer()
    cfg = BertConfig(vocab_size=len(_TOKENIZER), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                     hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    torch.manual_seed(seed)
    model = BertModel(cfg, add_pooling_layer=False)
    layers = [Dense(DenseLayer(path="", in_features=32, out_features=dense))] if dense else []
    return Encoder(EncoderConfig(name="tiny-bert", pooling=pooling, query_max_length=16,
                                 passage_max_length=32), model, _TOKENIZER, "cpu", dense=layers)
