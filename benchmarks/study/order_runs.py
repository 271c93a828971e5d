"""Print the study's runs in seed-major order, one line per (spec, seed) group:

    SPEC RUN_KEY [RUN_KEY ...]

so that `xlrun submit SPEC --only KEY ...` can run them group by group: whenever the GPU time
runs out, every arm has the same number of seeds (the untrained references come first).

    python benchmarks/study/order_runs.py experiments/lareqa_study*.toml [--count]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from xlrun.spec import compile_spec, load_spec


def groups(specs: list[str]) -> list[tuple[str, int, list[str]]]:
    """``(spec, seed, run_keys)`` groups: seed 0 (untrained) first, then by seed, then spec."""
    out: dict[tuple[int, int], list[str]] = defaultdict(list)
    for i, spec in enumerate(specs):
        for run in compile_spec(load_spec(spec)):
            out[(run.seed, i)].append(run.run_key)
    return [(specs[i], seed, keys) for (seed, i), keys in sorted(out.items())]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("specs", nargs="+")
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
