"""How many distinct input shapes one study run feeds the model, before and after padding to a
multiple of 32 tokens (issue 22).

    python benchmarks/study/shapes.py [--shared ../shared] [--steps 200]

For one run of each direction (``hybrid/size``, seed 1, the study specs' own settings: 200
steps of 64 pairs, queries ≤ 64 / passages ≤ 256 tokens, evaluation batches of 256, the real
multilingual-e5-small tokenizer with its ``query: ``/``passage: `` prefixes), every batch the
trainer and the evaluation would feed the model is collated through ``Encoder.collate`` —
training as on CUDA (queries and passages of a step in one forward pass), evaluation through
the real ``evaluate_dataset`` — with a stand-in transformer that returns zeros, so nothing
but the shapes is computed. Counted with ``pad_to_multiple_of`` = 1 (before: each batch
padded to its longest text) and 32 (now, on CUDA). Prints one JSON line. CPU, no model
weights needed; about a minute.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


class ZeroTransformer(torch.nn.Module):
    """Returns zero hidden states of the input's shape: shapes without compute."""

    def __init__(self, hidden: int = 8) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(hidden_size=hidden)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> SimpleNamespace:
        b, n = input_ids.shape
        return SimpleNamespace(last_hidden_state=torch.zeros(b, n, self.config.hidden_size))


def count(spec_path: Path, shared: Path, pad: int, steps: int) -> dict[str, int]:
    """Distinct (rows, width) shapes of training and of evaluation for the spec's
    hybrid/size seed-1 run with batches padded to a multiple of ``pad``."""
    from transformers import AutoTokenizer

    from xlrun.data.train_sources import load_train_corpus
    from xlrun.evaluate.runner import evaluate_dataset
    from xlrun.evaluate.tasks import DATASETS
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import load_spec
    from xlrun.train.encoder import Encoder, EncoderConfig
    from xlrun.train.samplers import make_sampler
    from xlrun.train.trainer import ContrastiveStep

    run = next(r for r in compile_spec(load_spec(spec_path))
               if r.config.arm == "hybrid/size" and r.seed == 1)
    cfg = run.config
    m = cfg.model
    tok = AutoTokenizer.from_pretrained(shared / "models" / "multilingual-e5-small")
    enc = Encoder(EncoderConfig(name="zeros", query_prefix=m.query_prefix,
                                passage_prefix=m.passage_prefix,
                                query_max_length=m.query_max_length,
                                passage_max_length=m.passage_max_length), ZeroTransformer(), tok)
    enc.pad_to_multiple_of = pad
    corpus = load_train_corpus(cfg.train_data)
    sampler = make_sampler(cfg.sampling, corpus, cfg.train.batch_size, cfg.train.seed,
                           total_batches=steps)
    stepper = ContrastiveStep(enc, corpus, dataclasses.replace(cfg.train, steps=steps),
                              joint=True)
    for _ in range(steps):
        groups = stepper.sequences(sampler.next_batch().items, None)
        enc.collate([s for g in groups for s in g])
    train, _ = enc.shapes.take()
    ev = cfg.eval[0]
    evaluate_dataset(enc, DATASETS.get(ev.dataset, "eval").load(ev), ev)
    encode, _ = enc.shapes.take()
    return {"train": train, "encode": encode, "run": len(enc.shapes.seen)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args(argv)
    os.environ.setdefault("XLRUN_MLQAR", str(args.shared / "data" / "mlqa-r"))
    os.environ.setdefault("XLRUN_XQUADR", str(args.shared / "data" / "xquad-r"))
    out = {}
    for name, spec in (("A", "lareqa_study.toml"), ("B", "lareqa_study_b.toml")):
        for pad in (1, 32):
            out[f"{name}_pad{pad}"] = count(ROOT / "experiments" / spec, args.shared, pad,
                                            args.steps)
            print(name, pad, out[f"{name}_pad{pad}"], file=sys.stderr, flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
