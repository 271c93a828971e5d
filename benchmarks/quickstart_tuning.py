"""Tune the quickstart: train the tiny model on the generated corpus and evaluate it.

A minimal stand-in for the real trainer: InfoNCE with in-batch negatives over batches that
are monolingual (queries and passages in one language X), cross-lingual (queries in X,
passages in Y != X) or hybrid (each batch is one or the other with probability 1/2), then
zero-shot mean average precision on the evaluation split in the mono (X→X), cross (X→Y,
X != Y) and multi (X → pool of all languages) settings.

    python benchmarks/quickstart_tuning.py --steps 150 --batch-size 32 --lr 1e-3 --seeds 0 1
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from xlrun.evaluate.types import EvalData
from xlrun.quickstart.corpus import eval_data, train_corpus
from xlrun.quickstart.tiny_model import ensure_tiny_model
from xlrun.train.encoder import Encoder, EncoderConfig


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """AP of each row of ``scores`` (queries × docs) given a boolean relevance matrix."""
    order = np.argsort(-scores, axis=1, kind="stable")
    rel = np.take_along_axis(relevant, order, axis=1).astype(np.float64)
    hits = np.cumsum(rel, axis=1)
    prec = hits / np.arange(1, rel.shape[1] + 1)
    return (prec * rel).sum(1) / np.maximum(rel.sum(1), 1)


def evaluate(enc: Encoder, data: EvalData, pairs: dict[str, float] | None = None
             ) -> dict[str, float]:
    """Mean AP in the mono, cross and multi settings (per ``X>Y`` pair into ``pairs``)."""
    langs = data.languages
    q = {x: enc.encode([t.text for t in data.queries[x]], "query", batch_size=256) for x in langs}
    d = {y: enc.encode([t.text for t in data.corpus[y]], "passage", batch_size=256) for y in langs}
    doc_ids = {y: [t.id for t in data.corpus[y]] for y in langs}
    mono, cross, multi = [], [], []
    pool_vecs = np.concatenate([d[y] for y in langs])
    pool_ids = [i for y in langs for i in doc_ids[y]]
    for x in langs:
        rels = [data.relevant(t) for t in data.queries[x]]
        for y in langs:
            relm = np.array([[i in r for i in doc_ids[y]] for r in rels])
            ap = average_precision(q[x] @ d[y].T, relm)
            (mono if x == y else cross).append(ap.mean())
            if pairs is not None:
                pairs[f"{x}>{y}"] = float(ap.mean())
        relm = np.array([[i in r for i in pool_ids] for r in rels])
        multi.append(average_precision(q[x] @ pool_vecs.T, relm).mean())
    return {"mono": float(np.mean(mono)), "cross": float(np.mean(cross)),
            "multi": float(np.mean(multi))}


def train(enc: Encoder, strategy: str, steps: int, batch_size: int, lr: float,
          temperature: float, seed: int) -> None:
    """InfoNCE with in-batch negatives; ``strategy`` in mono/cross/hybrid."""
    corpus = train_corpus()
    langs = corpus.languages
    rng = random.Random(seed)
    opt = torch.optim.AdamW(enc.parameters(), lr=lr, weight_decay=0.01)
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    enc.train()
    for _ in range(steps):
        kind = strategy if strategy != "hybrid" else rng.choice(["mono", "cross"])
        x = rng.choice(langs)
        y = x if kind == "mono" else rng.choice([lang for lang in langs if lang != x])
        ids = rng.sample(corpus.shared_ids(x, y), batch_size)
        qv = enc.embed([corpus.get(x, i).query for i in ids], "query")
        pv = enc.embed([corpus.get(y, i).passage for i in ids], "passage")
        loss = F.cross_entropy(qv @ pv.T / temperature, torch.arange(len(ids)))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()
        sched.step()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--temperature", type=float, default=0.05)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--arms", nargs="+", default=["none", "mono", "cross", "hybrid"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--pairs", action="store_true", help="print AP per query>doc language")
    ap.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "xlrun-quickstart"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    folder = ensure_tiny_model(args.cache)
    data = eval_data()
    print(f"model ready in {time.perf_counter() - t0:.1f}s: {folder}")
    cfg = EncoderConfig(name=str(folder), pooling="mean", query_max_length=32,
                        passage_max_length=48)
    for seed in args.seeds:
        for arm in args.arms:
            torch.manual_seed(seed)
            enc = Encoder.load(cfg, device="cpu")
            t = time.perf_counter()
            if arm != "none":
                train(enc, arm, args.steps, args.batch_size, args.lr, args.temperature, seed)
            t_train = time.perf_counter() - t
            t = time.perf_counter()
            pairs: dict[str, float] = {}
            m = evaluate(enc, data, pairs)
            t_eval = time.perf_counter() - t
            print(f"seed={seed} arm={arm:6s} mono={m['mono']:.3f} cross={m['cross']:.3f} "
                  f"multi={m['multi']:.3f} train={t_train:.1f}s eval={t_eval:.1f}s", flush=True)
            if args.pairs:
                langs = data.languages
                print("      " + " ".join(f"{y:>5s}" for y in langs))
                for x in langs:
                    print(f"  {x:>3s} " + " ".join(f"{pairs[f'{x}>{y}']:5.2f}" for y in langs))
    print(f"total {time.perf_counter() - t0:.1f}s")


if __name__ == "__main__":
    main()
