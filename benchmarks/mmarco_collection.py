"""Opening one mMARCO language's collection: time and peak memory of building its index by
passage id, of opening it again from the cache, and of fetching passages by id; with
``--triples N``, also of reducing a generated triples file of N lines (mMARCO's has ~40 M) to
each query's first positive and negatives.

A generated collection TSV (``--passages`` lines ``<id>\\t<text>``, ids shuffled, texts of
``--words`` random words: MS MARCO passages average ~56 words, ~330 characters) is written
to a temporary folder; each stage runs in a fresh subprocess so that its peak resident
memory (``ru_maxrss``) is its own.

    python benchmarks/mmarco_collection.py                 # 1,000,000 passages (~0.4 GB)
    python benchmarks/mmarco_collection.py --passages 20000   # the smoke size of the tests
    python benchmarks/mmarco_collection.py --passages 100000 --triples 40000000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORDS = (
    "river", "bridge", "market", "winter", "station", "garden", "library", "teacher",
    "number", "water", "paper", "city", "light", "music", "system", "school", "history",
    "science", "kitchen", "island", "summer", "language", "report", "window", "doctor",
    "engine", "street", "forest", "price", "coffee", "travel", "animal"
)


def generate(path: Path, n: int, words: int, seed: int = 0) -> int:
    """Write ``n`` passages with shuffled ids; returns the file size in bytes."""
    rng = random.Random(seed)
    ids = list(range(n))
    rng.shuffle(ids)
    with open(path, "w", encoding="utf-8") as f:
        for pid in ids:
            f.write(f"{pid}\t{' '.join(rng.choices(WORDS, k=words))}.\n")
    return path.stat().st_size


def generate_triples(path: Path, n: int, queries: int = 400_000, seed: int = 0) -> int:
    """Write ``n`` shuffled triples over ``queries`` query ids (ids as in MS MARCO)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "w", encoding="ascii") as f:
        for start in range(0, n, 1_000_000):
            k = min(1_000_000, n - start)
            q = rng.integers(0, queries, k) * 3 + 1
            pos = q * 7 % 8_841_823
            neg = rng.integers(0, 8_841_823, k)
            f.write("".join(f"{a}\t{b}\t{c}\n" for a, b, c in zip(q.tolist(), pos.tolist(),
                                                                  neg.tolist(), strict=True)))
    return path.stat().st_size


def stage(what: str, path: str, lookups: int) -> dict[str, float]:
    """One stage in this process: ``build`` or ``open`` (then ``lookups`` random fetches), or
    ``triples`` (reduce a triples file)."""
    import resource

    import numpy as np

    from xlrun.data.train_sources.mmarco import CollectionIndex, Triples

    if what == "triples":
        t0 = time.perf_counter()
        t = Triples.open(Path(path))
        return {"seconds": time.perf_counter() - t0, "queries": float(len(t.qids)),
                "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    t0 = time.perf_counter()
    index = CollectionIndex.open(Path(path))
    opened = time.perf_counter() - t0
    out = {"seconds": opened, "passages": float(len(index))}
    if lookups:
        rng = np.random.default_rng(0)
        want = rng.choice(len(index), size=min(lookups, len(index)), replace=False).tolist()
        t1 = time.perf_counter()
        texts = index.texts(want)
        out["lookup_seconds"] = time.perf_counter() - t1
        out["found"] = float(len(texts))
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--words", type=int, default=56)
    ap.add_argument("--lookups", type=int, default=50_000)
    ap.add_argument("--triples", type=int, default=0)
    ap.add_argument("--stage", choices=["build", "open", "triples"], default=None,
                    help=argparse.SUPPRESS)
    ap.add_argument("--path", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, args.path, args.lookups if args.stage == "open"
                               else 0)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "english_collection.tsv"
        t0 = time.perf_counter()
        size = generate(path, args.passages, args.words)
        gen = time.perf_counter() - t0
        env = dict(os.environ, XLRUN_CACHE=str(Path(tmp) / "cache"))
        results = {}
        for what in ("build", "open"):
            proc = subprocess.run([sys.executable, __file__, "--stage", what, "--path", str(path),
                                   "--lookups", str(args.lookups)], env=env, check=True,
                                  capture_output=True, text=True)
            results[what] = json.loads(proc.stdout.strip().splitlines()[-1])
        index_mb = sum(f.stat().st_size for f in (Path(tmp) / "cache").rglob("*.npy")) / 2**20
        if args.triples:
            tpath = Path(tmp) / "triples.train.ids.small.tsv"
            t1 = time.perf_counter()
            tsize = generate_triples(tpath, args.triples)
            tgen = time.perf_counter() - t1
            proc = subprocess.run([sys.executable, __file__, "--stage", "triples", "--path",
                                   str(tpath)], env=env, check=True, capture_output=True,
                                  text=True)
            results["triples"] = json.loads(proc.stdout.strip().splitlines()[-1])
    b, o = results["build"], results["open"]
    print(f"collection: {args.passages:,} passages, {size / 2**20:.0f} MB (generated in "
          f"{gen:.1f} s); index on disk {index_mb:.1f} MB")
    print(f"first open (build the index): {b['seconds']:.2f} s, peak RSS {b['max_rss_mb']:.0f} MB")
    print(f"second open (cached index):   {o['seconds']:.3f} s; {args.lookups:,} random passages "
          f"fetched in {o.get('lookup_seconds', 0):.2f} s; peak RSS {o['max_rss_mb']:.0f} MB")
    if args.triples:
        t = results["triples"]
        print(f"triples: {args.triples:,} lines, {tsize / 2**20:.0f} MB (generated in "
              f"{tgen:.0f} s), {t['queries']:,.0f} queries: reduced in {t['seconds']:.1f} s, "
              f"peak RSS {t['max_rss_mb']:.0f} MB")


if __name__ == "__main__":
    main()
