"""Tiny sentence-transformers models built offline, in the shapes researchers use.

* :func:`labse_like`: BERT → CLS pooling → Dense (tanh) → Normalize (LaBSE);
* :func:`e5_like`: an XLM-R-style encoder with a case-sensitive Unigram tokenizer → mean
  pooling → Normalize, prompts ``query: `` / ``passage: `` written as sentence-transformers
  2.x–5.x wrote them (legacy pooling keys, ``max_seq_length``, ``do_lower_case``);
* :func:`decoder_like`: a Qwen2-style decoder, EOS appended, left padding → last-token
  pooling → Normalize, an instruction prompt for queries (Qwen3-Embedding).

Every tokenizer is trained on the toy texts of ``conftest`` (no network, no real data).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from train_helpers import make_tokenizer, toy_examples

QWEN_PROMPT = "Instruct: Given a question, retrieve passages that answer it\nQuery:"


def _texts() -> list[str]:
    return [t for ex in toy_examples() for t in (ex.query, ex.passage)]


def sample_texts() -> list[str]:
    """Short and long texts, capitalised, some beyond the models' lengths."""
    ex = toy_examples(n=6)
    out = [ex[i].query.capitalize() for i in range(0, len(ex), 3)]
    out += [ex[i].passage.upper() if i % 2 else ex[i].passage for i in range(1, len(ex), 4)]
    out += [" ".join(e.passage for e in ex[:6])]  # longer than any max length here
    out += ["x", "The Old Town Bridge"]
    return out


def _unigram_tokenizer():
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    texts = _texts()
    texts += [t.upper() for t in texts] + [t.capitalize() for t in texts]
    tok.train_from_iterator(texts, trainers.UnigramTrainer(
        vocab_size=400, unk_token="<unk>",
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   cls_token="<s>", sep_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>")


def _bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([*_texts(), QWEN_PROMPT], trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    eos = tok.token_to_id("<|endoftext|>")
    tok.post_processor = processors.TemplateProcessing(
        single="$A <|endoftext|>", special_tokens=[("<|endoftext|>", eos)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>",
                                   pad_token="<|endoftext|>", padding_side="left")


def hf_folder(kind: str, path: Path, seed: int = 0) -> Path:
    """A plain Hugging Face folder: ``bert``, ``xlmr`` or ``qwen2`` (random weights)."""
    from transformers import (
        BertConfig,
        BertModel,
        Qwen2Config,
        Qwen2Model,
        XLMRobertaConfig,
        XLMRobertaModel,
    )

    torch.manual_seed(seed)
    if kind == "bert":
        tok = make_tokenizer()
        model = BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64,
                                     max_position_embeddings=128), add_pooling_layer=False)
    elif kind == "xlmr":
        tok = _unigram_tokenizer()
        model = XLMRobertaModel(XLMRobertaConfig(
            vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=130, pad_token_id=1,
            type_vocab_size=1), add_pooling_layer=False)
    elif kind == "qwen2":
        tok = _bpe_tokenizer()
        model = Qwen2Model(Qwen2Config(
            vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
            pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    else:
        raise ValueError(kind)
    # non-zero biases and norms, so that every weight matters
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def st_modules():
    """``(Transformer, Pooling, Dense, Normalize)`` of the installed sentence-transformers."""
    try:
        from sentence_transformers.base.modules import Dense, Normalize, Transformer
        from sentence_transformers.sentence_transformer.modules import Pooling
    except ImportError:  # sentence-transformers < 6
        from sentence_transformers.models import Dense, Normalize, Pooling, Transformer
    return Transformer, Pooling, Dense, Normalize


def st_model(folder: Path, out: Path, *, pooling: str, include_prompt: bool = True,
             dense: int = 0, normalize: bool = True, prompts: dict[str, str] | None = None,
             max_seq_length: int | None = None) -> Path:
    """A sentence-transformers model over the HF ``folder``, saved (by sentence-transformers) to ``out``."""
    from sentence_transformers import SentenceTransformer

    transformer_cls, pooling_cls, dense_cls, normalize_cls = st_modules()
    kwargs: dict[str, Any] = {"max_seq_length": max_seq_length} if max_seq_length else {}
    transformer = transformer_cls(str(folder), **kwargs)
    dim = transformer.get_embedding_dimension() if hasattr(transformer, "get_embedding_dimension") \
        else transformer.get_word_embedding_dimension()
    modules = [transformer, pooling_cls(dim, pooling_mode=pooling, include_prompt=include_prompt)]
    torch.manual_seed(1)
    if dense:
        layer = dense_cls(dim, dense, activation_function=torch.nn.Tanh())
        with torch.no_grad():
            layer.linear.weight.mul_(3.0)  # a tanh that is far from linear
            layer.linear.bias.normal_(0.0, 0.3)
        modules.append(layer)
    if normalize:
        modules.append(normalize_cls())
    SentenceTransformer(modules=modules, prompts=prompts or {}, device="cpu").save(str(out))
    return out


def labse_like(tmp: Path) -> Path:
    """BERT → CLS → Dense(32→24, tanh) → Normalize, saved by sentence-transformers."""
    return st_model(hf_folder("bert", tmp / "hf-bert"), tmp / "labse", pooling="cls", dense=24)


def e5_like(tmp: Path, max_seq_length: int = 24, do_lower_case: bool = True) -> Path:
    """XLM-R-style → mean → Normalize with e5's prompts, in the files older
    sentence-transformers releases wrote (what hub models such as e5 ship)."""
    out = hf_folder("xlmr", tmp / "e5")
    dump = lambda rel, obj: (out / rel).parent.mkdir(parents=True, exist_ok=True) or (  # noqa: E731
        out / rel).write_text(json.dumps(obj, indent=2))
    dump("modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    dump("sentence_bert_config.json", {"max_seq_length": max_seq_length,
                                       "do_lower_case": do_lower_case})
    dump("1_Pooling/config.json", {
        "word_embedding_dimension": 32, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False, "include_prompt": True})
    (out / "2_Normalize").mkdir()
    dump("config_sentence_transformers.json", {
        "__version__": {"sentence_transformers": "3.0.0"},
        "prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None,
        "similarity_fn_name": "cosine"})
    return out


def decoder_like(tmp: Path, pooling: str = "lasttoken", include_prompt: bool = True) -> Path:
    """Qwen2-style decoder, left padding → last token → Normalize, with an instruction prompt."""
    return st_model(hf_folder("qwen2", tmp / "hf-qwen2"), tmp / f"qwen-{pooling}-{include_prompt}",
                    pooling=pooling, include_prompt=include_prompt,
                    prompts={"query": QWEN_PROMPT, "document": ""})
