#!/usr/bin/env python3
"""Encoding throughput: xlrun's ``Encoder.encode`` beside sentence-transformers ``encode``.

Both encode the same synthetic documents with the same model (mean pooling, normalised),
at each requested length (default 512 and 8192 tokens; lengths above the model's position
limit are skipped). The batch size is found automatically: start at ``--max-batch`` and
halve on CUDA out-of-memory. Prints docs/s and tokens/s (non-padding tokens) per length.

    python benchmarks/encode_throughput.py --model /tmp/me5 --device cuda
    python benchmarks/encode_throughput.py --model BAAI/bge-m3 --lengths 512 8192
    python benchmarks/encode_throughput.py --device cpu --tiny      # seconds; for CI

``--tiny`` builds a small random BertModel and a word-level tokenizer from scratch (no
downloads) and uses short lengths. ``--random bge-m3`` (or ``xlmr-base``) builds that
architecture with random weights (BGE-M3: XLM-R large, 8,194 positions) and the word-level
tokenizer — the throughput of a random model is the trained model's, and it needs no network
(the GPU allocation has none). sentence-transformers is optional: without it, xlrun is
reported alone.

    python benchmarks/encode_throughput.py --random bge-m3 --device cuda --n-docs 128
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlrun.train.encoder import Encoder, EncoderConfig, resolve_device

WORDS = ("river", "stone", "light", "window", "garden", "paper", "music", "winter", "forest",
         "market", "silver", "table", "engine", "planet", "letter", "bridge", "cloud",
         "harbour", "mountain", "island")


def word_tokenizer(special_ids: tuple[str, ...], max_length: int, **token_names: str) -> Any:
    """A word-level tokenizer: one word of :data:`WORDS` = one token, between ``cls_token``
    and ``sep_token``. ``special_ids``: the special tokens in the order of their ids (0, 1,
    …); ``token_names``: ``pad_token``, ``unk_token``, ``cls_token``, ``sep_token`` (and
    ``bos_token``/``eos_token``) as ``PreTrainedTokenizerFast`` takes them."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {name: i for i, name in enumerate(special_ids)}
    for w in WORDS:
        vocab[w] = len(vocab)
    cls, sep = token_names["cls_token"], token_names["sep_token"]
    tok = Tokenizer(models.WordLevel(vocab, unk_token=token_names["unk_token"]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, vocab[cls]), (sep, vocab[sep])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=max_length,
                                   **token_names)


def build_tiny_model(out: Path, max_positions: int = 1024) -> Path:
    """Save a random 2-layer BertModel and a word-level tokenizer to ``out``."""
    from transformers import BertConfig, BertModel

    fast = word_tokenizer(("[PAD]", "[UNK]", "[CLS]", "[SEP]"), max_positions, pad_token="[PAD]",
                          unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=len(fast), hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=2, intermediate_size=64,
                                 max_position_embeddings=max_positions),
                      add_pooling_layer=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


RANDOM_ARCHS: dict[str, dict[str, int]] = {
    "bge-m3": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
               "intermediate_size": 4096, "max_position_embeddings": 8194},
    "xlmr-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                  "intermediate_size": 3072, "max_position_embeddings": 514},
}
"""Architectures ``--random`` builds (XLM-R family, vocabulary 250,002 as in the real models)."""


def build_random_model(out: Path, arch: str, device: str | torch.device = "cpu") -> Path:
    """Save ``arch`` (:data:`RANDOM_ARCHS`) with random weights and a word-level tokenizer
    (one word of :data:`WORDS` = one token, XLM-R's special-token ids) to ``out``."""
    from transformers import XLMRobertaConfig, XLMRobertaModel

    dims = RANDOM_ARCHS[arch]
    positions = dims["max_position_embeddings"] - 2  # XLM-R offsets positions by pad id + 1
    fast = word_tokenizer(("<s>", "<pad>", "</s>", "<unk>"), positions, bos_token="<s>",
                          eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                          cls_token="<s>", sep_token="</s>")
    torch.manual_seed(0)
    cfg = XLMRobertaConfig(vocab_size=250002, type_vocab_size=1, pad_token_id=1, **dims)
    with torch.device(device):  # initialising 568M weights is much faster on a GPU
        model = XLMRobertaModel(cfg, add_pooling_layer=False)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    del model
    return out


def make_docs(n: int, n_words: int, seed: int = 0) -> list[str]:
    """``n`` documents of about ``n_words`` words (lengths vary ±25%)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=max(1, int(n_words * rng.uniform(0.75, 1.0)))))
            for _ in range(n)]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


def find_batch_size(run: Callable[[list[str], int], object], docs: list[str], start: int) -> int:
    """The largest power-of-two batch ≤ ``start`` that encodes the longest docs without OOM."""
    longest = sorted(docs, key=len, reverse=True)
    bs = start
    while bs >= 1:
        try:
            run(longest[:bs], bs)
            return bs
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            if not _is_oom(exc):
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            bs //= 2
    raise RuntimeError("even batch size 1 runs out of memory")


def _timed(run: Callable[[list[str], int], object], docs: list[str], bs: int) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    run(docs, bs)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="", help="hub id or local folder (not with --tiny)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--tiny", action="store_true", help="random tiny model, short docs")
    ap.add_argument("--random", choices=sorted(RANDOM_ARCHS), default="",
                    help="a random model of this architecture (no download)")
    ap.add_argument("--lengths", type=int, nargs="+", default=None,
                    help="document lengths in tokens (default 512 8192; tiny: 64 256)")
    ap.add_argument("--n-docs", type=int, default=0, help="docs per length (default 256; tiny 32)")
    ap.add_argument("--max-batch", type=int, default=256)
    ap.add_argument("--prefix", default="", help="passage prefix (e.g. 'passage: ' for E5)")
    ap.add_argument("--json", action="store_true", help="print results as JSON lines")
    args = ap.parse_args(argv)

    tmp = tempfile.TemporaryDirectory()
    if args.tiny:
        model_path = str(build_tiny_model(Path(tmp.name) / "tiny"))
        lengths = args.lengths or [64, 256]
        n_docs = args.n_docs or 32
    else:
        if bool(args.model) == bool(args.random):
            ap.error("give --model or --random (or --tiny)")
        model_path = args.model or str(build_random_model(
            Path(tmp.name) / args.random, args.random, resolve_device(args.device)))
        lengths = args.lengths or [512, 8192]
        n_docs = args.n_docs or 256
    device = resolve_device(args.device)
    results: list[dict[str, object]] = []
    base = EncoderConfig(model_path, pooling="mean", passage_prefix=args.prefix)
    enc = Encoder.load(base, device=device)
    max_pos = int(getattr(enc.model.config, "max_position_embeddings", 0) or 10**9)
    try:
        from sentence_transformers import SentenceTransformer, models
    except ImportError:
        SentenceTransformer = None
    for length in lengths:
        if length > max_pos:
            print(f"skip length {length}: the model has {max_pos} positions")
            continue
        docs = make_docs(n_docs, length)
        enc.config = EncoderConfig(model_path, pooling="mean", passage_prefix=args.prefix,
                                   passage_max_length=length)
        n_tokens = sum(min(length, len(ids)) for ids in enc.tokenizer(
            [args.prefix + d for d in docs], add_special_tokens=True)["input_ids"])

        def run_xlrun(texts: list[str], bs: int) -> np.ndarray:
            return enc.encode(texts, "passage", batch_size=bs)

        runners: list[tuple[str, Callable[[list[str], int], object]]] = [("xlrun", run_xlrun)]
        if SentenceTransformer is not None:
            word = models.Transformer(model_path, max_seq_length=length)
            dim = (word.get_embedding_dimension() if hasattr(word, "get_embedding_dimension")
                   else word.get_word_embedding_dimension())
            pool = models.Pooling(dim, pooling_mode="mean")
            st = SentenceTransformer(modules=[word, pool], device=str(device))
            if device.type == "cuda":
                st = st.to(torch.bfloat16)

            def run_st(texts: list[str], bs: int, st=st) -> np.ndarray:
                return st.encode([args.prefix + t for t in texts], batch_size=bs,
                                 normalize_embeddings=True, convert_to_numpy=True)

            runners.append(("sentence-transformers", run_st))
        for name, run in runners:
            bs = find_batch_size(run, docs, min(args.max_batch, n_docs))
            secs = _timed(run, docs, bs)
            row = {"impl": name, "length": length, "batch_size": bs, "docs": n_docs,
                   "seconds": round(secs, 4), "docs_per_s": round(n_docs / secs, 2),
                   "tokens_per_s": round(n_tokens / secs, 1), "device": str(device)}
            results.append(row)
            print(json.dumps(row) if args.json else
                  f"{name:>22}  len={length:<5} bs={bs:<4} {row['docs_per_s']:>9} docs/s "
                  f"{row['tokens_per_s']:>11} tok/s  ({device})")
    tmp.cleanup()
    return results


if __name__ == "__main__":
    main()
