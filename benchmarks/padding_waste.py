"""Padding waste of evaluation batches: input order vs character-length vs token-length order.

For every XQuAD-R language, the texts an evaluation encodes (questions with ``query: ``,
candidate sentences with ``passage: ``) are tokenized with the multilingual-e5-small tokenizer
and truncated to the study's lengths (64 / 256). Batches of ``--batch`` texts are padded to
their longest text; the waste is the share of pad tokens among all tokens fed to the model.

* ``input``: texts in the dataset's order;
* ``chars``: sorted by character count (what ``Encoder.encode`` did before);
* ``tokens``: sorted by token count (what it does now: every text tokenized once).

    python benchmarks/padding_waste.py --data ../shared/data/xquad-r \\
        --tokenizer ../shared/models/multilingual-e5-small [--batch 256]

Needs only the tokenizer files (no model weights). ``--smoke`` runs on generated texts and
a tokenizer trained on the fly (CI).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from xlrun.evaluate.encode import padding_waste
from xlrun.train.encoder import length_order

ORDERS = ("input", "chars", "tokens")


def _order(name: str, texts: list[str], lengths: np.ndarray) -> np.ndarray:
    if name == "input":
        return np.arange(len(texts))
    if name == "chars":
        return np.argsort([-len(t) for t in texts], kind="stable")
    return length_order(lengths)


def measure(texts_by_side: dict[str, dict[str, list[str]]], tokenizer, prefixes: dict[str, str],
            max_lengths: dict[str, int], batch: int) -> list[dict[str, object]]:
    """One row per (side, language) and an ``all`` row per side: pad share under each order."""
    rows: list[dict[str, object]] = []
    for side, by_lang in texts_by_side.items():
        sums = {o: [0, 0] for o in ORDERS}
        for lang, texts in sorted(by_lang.items()):
            ids = tokenizer([prefixes[side] + t for t in texts], truncation=True,
                            max_length=max_lengths[side])["input_ids"]
            lengths = np.asarray([len(x) for x in ids])
            row: dict[str, object] = {"side": side, "lang": lang, "texts": len(texts),
                                      "real_tokens": int(lengths.sum())}
            for o in ORDERS:
                pad, total = padding_waste(lengths, batch, _order(o, texts, lengths))
                row[o] = pad / total
                sums[o][0] += pad
                sums[o][1] += total
            rows.append(row)
        rows.append({"side": side, "lang": "all", "texts": sum(len(t) for t in by_lang.values()),
                     "real_tokens": sum(int(r["real_tokens"]) for r in rows if r["side"] == side),
                     **{o: sums[o][0] / sums[o][1] for o in ORDERS}})
    return rows


def _xquad_texts(path: str) -> dict[str, dict[str, list[str]]]:
    from xlrun.evaluate.tasks import DATASETS
    from xlrun.spec.schema import EvalSection

    data = DATASETS.get("xquad-r", "dataset").load(EvalSection(dataset="xquad-r", path=path))
    return {"query": {lang: [q.text for q in qs] for lang, qs in data.queries.items()},
            "passage": {lang: [d.text for d in docs] for lang, docs in data.corpus.items()}}


def _smoke() -> tuple[dict[str, dict[str, list[str]]], object]:
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "tests" / "train" / "train_helpers.py"
    spec = importlib.util.spec_from_file_location("xlrun_train_toys", path)
    toys = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(toys)
    make_tokenizer, toy_examples = toys.make_tokenizer, toys.toy_examples
    ex = toy_examples(n=30)
    texts = {"query": {}, "passage": {}}
    for e in ex:
        texts["query"].setdefault(e.lang, []).append(e.query)
        texts["passage"].setdefault(e.lang, []).append(e.passage * (1 + int(e.parallel_id[2:]) % 4))
    return texts, make_tokenizer()


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    """Print the table; return its rows."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/xquad-r")
    ap.add_argument("--tokenizer", default="../shared/models/multilingual-e5-small")
    ap.add_argument("--batch", type=int, default=256, help="evaluation batch size (the study's)")
    ap.add_argument("--query-len", type=int, default=64)
    ap.add_argument("--passage-len", type=int, default=256)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        texts, tok = _smoke()
        prefixes = {"query": "", "passage": ""}
    else:
        from transformers import AutoTokenizer

        texts = _xquad_texts(args.data)
        tok = AutoTokenizer.from_pretrained(args.tokenizer)
        prefixes = {"query": "query: ", "passage": "passage: "}
    t0 = time.perf_counter()
    rows = measure(texts, tok, prefixes, {"query": args.query_len, "passage": args.passage_len},
                   args.batch)
    print(f"padding share (pad tokens / tokens fed), batches of {args.batch}, "
          f"{time.perf_counter() - t0:.1f} s")
    print(f"{'side':8} {'lang':5} {'texts':>6} {'tokens':>8} " + " ".join(f"{o:>7}" for o in ORDERS)
          + "  fed (tokens vs chars)")
    for r in rows:
        fed = (1 - float(r["chars"])) / (1 - float(r["tokens"]))  # same real tokens
        print(f"{r['side']:8} {r['lang']:5} {r['texts']:>6} {r['real_tokens']:>8} "
              + " ".join(f"{100 * float(r[o]):6.1f}%" for o in ORDERS) + f"  {fed:.3f}")
    return rows


if __name__ == "__main__":
    main()
