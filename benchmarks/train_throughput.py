"""Training throughput: xlrun's trainer vs sentence-transformers MultipleNegativesRankingLoss.

Both sides train the same randomly initialised architecture (xlm-roberta-base by default) on
the same synthetic pairs, in one process, one after the other:

* batch of ``--batch`` pairs, queries of exactly ``--query-len`` tokens and passages
  truncated to ``--passage-len`` tokens (a word-level tokenizer: one word = one token, so both
  sides see identical token counts and no side pays for extra padding);
* bf16 autocast on CUDA (fp32 master weights), fp32 on CPU; AdamW, warmup + linear decay,
  gradient clipping at 1.0 on both sides;
* the first ``--warmup`` optimizer steps are not timed (CUDA init, allocator, autotuning).

Reported per side: pairs/s, tokens/s (query + passage tokens), peak GPU memory, and the MFU of
the encoder matmuls. FLOP formula (training = forward + backward = 3 × forward), per sequence
of ``s`` tokens through ``L`` layers of width ``h`` and feed-forward width ``f``::

    forward = L * (2*s*(4*h*h + 2*h*f)     # Q, K, V, O projections and the two FFN matmuls
                   + 2*2*s*s*h)            # attention scores QK^T and the weighted sum AV
    train   = 3 * forward                  # embeddings, norms, softmax, loss: not counted

    MFU = train FLOPs per second / peak bf16 dense FLOP/s of the GPU (``--peak-tflops``,
          default 989 for an H100 SXM; pass the number of your card).

sentence-transformers is imported lazily; when it is not installed its side is skipped.
``--device cpu --tiny`` runs a 2-layer toy configuration in seconds (for CI).

Usage::

    python benchmarks/train_throughput.py                      # GPU, xlm-roberta-base
    python benchmarks/train_throughput.py --device cpu --tiny  # smoke test
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.spec.schema import (
    ModelSection,
    RunConfig,
    SamplingSection,
    TrainDataSection,
    TrainSection,
)
from xlrun.train.encoder import Encoder, EncoderConfig
from xlrun.train.trainer import TrainHooks, train

N_WORDS = 30000


def model_config(tiny: bool):
    """xlm-roberta-base (random init) or a 2-layer toy with the same structure."""
    from transformers import XLMRobertaConfig

    if tiny:
        return XLMRobertaConfig(vocab_size=N_WORDS + 4, hidden_size=64, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=128,
                                max_position_embeddings=514)
    return XLMRobertaConfig()  # the xlm-roberta-base architecture, vocab 250002


def make_tokenizer():
    """A word-level tokenizer (one word = one token) with XLM-R's special-token ids."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    vocab.update({f"w{i}": i + 4 for i in range(N_WORDS)})
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", unk_token="<unk>", cls_token="<s>",
                                   sep_token="</s>")


def make_pairs(n: int, query_len: int, passage_len: int, seed: int = 0
               ) -> tuple[list[str], list[str]]:
    """``n`` queries of exactly ``query_len`` tokens and passages longer than ``passage_len``."""
    rng = np.random.default_rng(seed)
    words = np.array([f"w{i}" for i in range(N_WORDS)])
    q = [" ".join(words[rng.integers(N_WORDS, size=query_len - 2)]) for _ in range(n)]
    p = [" ".join(words[rng.integers(N_WORDS, size=passage_len + 8)]) for _ in range(n)]
    return q, p


def train_flops_per_pair(cfg, query_len: int, passage_len: int) -> float:
    """Matmul FLOPs of one training step per pair (see module docstring)."""
    h, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers

    def fwd(s: int) -> float:
        return layers * (2 * s * (4 * h * h + 2 * h * f) + 4 * s * s * h)

    return 3.0 * (fwd(query_len) + fwd(passage_len))


def _random_model(cfg, seed: int, device: torch.device):
    from transformers import XLMRobertaModel

    torch.manual_seed(seed)
    return XLMRobertaModel(cfg, add_pooling_layer=False).to(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def bench_xlrun(args, cfg, tok, queries, passages, device) -> dict:
    """Time xlrun's ``train()`` (hybrid sampling over two parallel 'languages')."""
    examples = []
    for lang in ("de", "en"):
        examples += [TrainExample(f"id{i}", lang, q, p)
                     for i, (q, p) in enumerate(zip(queries, passages, strict=True))]
    corpus = TrainCorpus.from_examples(examples)
    enc = Encoder(EncoderConfig(name="random-xlmr", query_max_length=args.query_len,
                                passage_max_length=args.passage_len),
                  _random_model(cfg, args.seed, device), tok, device)
    window = args.steps
    total = args.warmup + window
    run = RunConfig(model=ModelSection(name="random-xlmr"), train_data=TrainDataSection(),
                    sampling=SamplingSection(strategy="hybrid", language_sampling="uniform"),
                    train=TrainSection(steps=total, batch_size=args.batch, lr=2e-5,
                                       warmup_ratio=0.1, log_every=max(1, args.warmup),
                                       grad_cache_chunk=args.grad_cache_chunk, seed=args.seed),
                    eval=[])
    marks: list[tuple[int, float]] = []

    def on_log(step: int, loss: float, lr: float, rate: float) -> None:
        marks.append((step, time.perf_counter()))  # on_log follows a device sync

    _reset_peak(device)
    if args.warmup == 0:
        _sync(device)
        marks.append((0, time.perf_counter()))
    train(run, corpus, enc, None, TrainHooks(on_log=on_log))
    _sync(device)
    marks.append((total, time.perf_counter()))
    start = next(m for m in marks if m[0] >= args.warmup)
    steps = total - start[0]
    seconds = marks[-1][1] - start[1]
    return {"steps": steps, "seconds": seconds, "peak_gib": _peak_gib(device)}


def _st_model(args, cfg, tok, device):
    """The random model as a sentence-transformers model (Transformer → mean pooling)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models

    tmp = Path(tempfile.mkdtemp(prefix="xlrun-bench-"))
    _random_model(cfg, args.seed, torch.device("cpu")).save_pretrained(tmp / "model")
    tok.save_pretrained(tmp / "model")
    transformer = st_models.Transformer(str(tmp / "model"), max_seq_length=args.passage_len)
    pooling = st_models.Pooling(cfg.hidden_size, pooling_mode="mean")
    return SentenceTransformer(modules=[transformer, pooling], device=str(device)), tmp


def bench_st_loop(args, cfg, tok, queries, passages, device) -> dict:
    """Time sentence-transformers' modules and MultipleNegativesRankingLoss in a plain loop.

    For machines without ``datasets``/``accelerate`` (which SentenceTransformerTrainer needs):
    the same model, loss, batches, bf16 autocast, AdamW (fused on CUDA, as the trainer's
    default), warmup + linear decay and clipping, without the trainer's data loader.
    """
    from sentence_transformers import losses

    st, _ = _st_model(args, cfg, tok, device)
    loss_fn = losses.MultipleNegativesRankingLoss(st)
    total = args.warmup + args.steps
    opt = torch.optim.AdamW(st.parameters(), lr=2e-5,
                            **({"fused": True} if device.type == "cuda" else {}))
    warm = max(1, int(0.1 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warm, max(0.0, (total - i) / max(1, total - warm))))
    st.train()
    _reset_peak(device)
    start = time.perf_counter()
    for step in range(total):
        if step == args.warmup:
            _sync(device)
            start = time.perf_counter()
        lo = (step * args.batch) % (len(queries) - args.batch + 1)
        feats = []
        for texts in (queries[lo:lo + args.batch], passages[lo:lo + args.batch]):
            f = st.tokenize(texts)
            feats.append({k: v.to(device) if hasattr(v, "to") else v for k, v in f.items()})
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(feats, None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
    _sync(device)
    return {"steps": args.steps, "seconds": time.perf_counter() - start,
            "peak_gib": _peak_gib(device), "how": "plain loop (no datasets/accelerate)"}


def _st_trainer() -> tuple | None:
    """What SentenceTransformerTrainer needs, or None where ``datasets``/``accelerate`` are
    missing (the GPU image)."""
    try:
        import accelerate  # noqa: F401
        from datasets import Dataset
        from sentence_transformers import (
            SentenceTransformerTrainer,
            SentenceTransformerTrainingArguments,
            losses,
        )
        from transformers import TrainerCallback
    except ImportError as e:
        print(f"SentenceTransformerTrainer unavailable ({e}): timing sentence-transformers' "
              "modules and loss in a plain loop", file=sys.stderr)
        return None
    return (Dataset, SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses,
            TrainerCallback)


def bench_st(args, cfg, tok, queries, passages, device) -> dict | None:
    """Time SentenceTransformerTrainer + MultipleNegativesRankingLoss; without
    ``datasets``/``accelerate``, :func:`bench_st_loop`; None without sentence-transformers."""
    try:
        import sentence_transformers  # noqa: F401
    except ImportError as e:
        print(f"sentence-transformers side skipped: {e}", file=sys.stderr)
        return None
    trainer_parts = _st_trainer()
    if trainer_parts is None:
        return bench_st_loop(args, cfg, tok, queries, passages, device)
    Dataset, SentenceTransformerTrainer, SentenceTransformerTrainingArguments, losses, \
        TrainerCallback = trainer_parts

    st, tmp = _st_model(args, cfg, tok, device)
    total = args.warmup + args.steps
    marks: dict[str, float] = {}

    class Timer(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            if state.global_step == args.warmup:
                _sync(device)
                marks["start"] = time.perf_counter()

    ds = Dataset.from_dict({"anchor": queries, "positive": passages})
    targs = SentenceTransformerTrainingArguments(
        output_dir=str(tmp / "out"), per_device_train_batch_size=args.batch, max_steps=total,
        learning_rate=2e-5, warmup_ratio=0.1, bf16=device.type == "cuda",
        use_cpu=device.type != "cuda", logging_steps=10**9, save_strategy="no", report_to=[],
        dataloader_drop_last=True, seed=args.seed, max_grad_norm=1.0,
    )
    trainer = SentenceTransformerTrainer(model=st, args=targs, train_dataset=ds,
                                         loss=losses.MultipleNegativesRankingLoss(st),
                                         callbacks=[Timer()])
    _reset_peak(device)
    if args.warmup == 0:
        _sync(device)
        marks["start"] = time.perf_counter()
    trainer.train()
    _sync(device)
    return {"steps": args.steps, "seconds": time.perf_counter() - marks["start"],
            "peak_gib": _peak_gib(device), "how": "SentenceTransformerTrainer"}


def summarise(name: str, res: dict, args, flops_per_pair: float) -> dict:
    pairs = res["steps"] * args.batch
    pairs_s = pairs / max(res["seconds"], 1e-9)
    return {
        "side": name, "steps": res["steps"], "seconds": round(res["seconds"], 3),
        "pairs_per_s": round(pairs_s, 2),
        "tokens_per_s": round(pairs_s * (args.query_len + args.passage_len), 1),
        "tflops": round(pairs_s * flops_per_pair / 1e12, 3),
        "mfu": round(pairs_s * flops_per_pair / (args.peak_tflops * 1e12), 4),
        "peak_gpu_gib": None if res["peak_gib"] is None else round(res["peak_gib"], 2),
        **({"how": res["how"]} if "how" in res else {}),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cuda, cpu")
    ap.add_argument("--tiny", action="store_true", help="2-layer toy model, few short steps")
    ap.add_argument("--batch", type=int, default=None, help="pairs per batch (128; tiny 8)")
    ap.add_argument("--query-len", type=int, default=None, help="query tokens (64; tiny 16)")
    ap.add_argument("--passage-len", type=int, default=None, help="passage tokens (256; tiny 32)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (30; tiny 3)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (5; tiny 1)")
    ap.add_argument("--grad-cache-chunk", type=int, default=0)
    ap.add_argument("--peak-tflops", type=float, default=989.0,
                    help="peak dense bf16 TFLOP/s of the GPU (H100 SXM: 989)")
    ap.add_argument("--skip-st", action="store_true", help="only time xlrun")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    d = (8, 16, 32, 3, 1) if args.tiny else (128, 64, 256, 30, 5)
    for key, default in zip(("batch", "query_len", "passage_len", "steps", "warmup"), d,
                            strict=True):
        if getattr(args, key) is None:
            setattr(args, key, default)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    cfg = model_config(args.tiny)
    tok = make_tokenizer()
    n = max(4 * args.batch, args.batch * (args.warmup + args.steps) // 2)
    queries, passages = make_pairs(n, args.query_len, args.passage_len, args.seed)
    fpp = train_flops_per_pair(cfg, args.query_len, args.passage_len)

    results = [summarise("xlrun", bench_xlrun(args, cfg, tok, queries, passages, device),
                         args, fpp)]
    if not args.skip_st:
        st = bench_st(args, cfg, tok, queries, passages, device)
        if st is not None:
            results.append(summarise("sentence-transformers", st, args, fpp))
    report = {"device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(),
              "config": {k: v for k, v in vars(args).items() if k != "json"}
              | {"model": "tiny" if args.tiny else "xlm-roberta-base (random init)",
                 "train_flops_per_pair": fpp},
              "results": results}
    if len(results) == 2:
        report["ratio_pairs_per_s"] = round(results[0]["pairs_per_s"]
                                            / max(results[1]["pairs_per_s"], 1e-9), 3)
    report["config"] = {k: (str(v) if isinstance(v, Path) else v)
                        for k, v in report["config"].items()}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return report


if __name__ == "__main__":
    main()
