"""Print the study's runs in seed-major order, one line per (spec, seed) group:

    SPEC RUN_KEY [RUN_KEY ...]

so that `xlrun submit SPEC --only KEY ...` can run them group by group: whenever the GPU time
runs out, every arm has the same number of seeds (the untrained references come first, then
seed 1 of every arm of direction A, seed 1 of direction B, seed 2 of A, ...).

    python benchmarks/study/order_runs.py [SPEC ...] [--count]

Without SPEC: the two study specs, experiments/lareqa_study.toml (A) and
experiments/lareqa_study_b.toml (B), 36 runs each.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

from xlrun.spec import compile_spec, load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = ("experiments/lareqa_study.toml", "experiments/lareqa_study_b.toml")


def groups(specs: list[str]) -> list[tuple[str, int, list[str]]]:
    """``(spec, seed, run_keys)`` groups: seed 0 (untrained) first, then by seed, then spec."""
    out: dict[tuple[int, int], list[str]] = defaultdict(list)
    for i, spec in enumerate(specs):
        for run in compile_spec(load_spec(spec)):
            out[(run.seed, i)].append(run.run_key)
    return [(specs[i], seed, keys) for (seed, i), keys in sorted(out.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="*",
                    default=[os.path.relpath(ROOT / s) for s in SPECS],
                    help="spec files (default: the two study specs)")
    ap.add_argument("--count", action="store_true", help="print run counts only")
    args = ap.parse_args()
    found = groups(args.specs)
    if args.count:
        for spec in args.specs:
            print(f"{spec}: {sum(len(k) for s, _, k in found if s == spec)} runs")
        print(f"total: {sum(len(k) for _, _, k in found)} runs")
        return
    for spec, _seed, keys in found:
        print(spec, *keys)


if __name__ == "__main__":
    main()
