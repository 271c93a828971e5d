"""The throughput benchmarks within a deadline: step 6 of ``gpu_study.sh``, or a call of its own.

    python benchmarks/study/throughput.py OUT.json [--device cuda] [--deadline EPOCH_S] [--tiny]

Runs, in one process and in this order, each only if the deadline leaves it its budget:

1. ``train_throughput.py``: xlrun's trainer vs sentence-transformers (MultipleNegativesRanking
   loss) on xlm-roberta-base (random init), batch 128, queries 64 / passages 256 tokens, bf16;
   the issue's targets: ≥ 1.3× sentence-transformers' pairs/s and ≥ 40 % MFU;
2. ``encode_throughput.py``: ``Encoder.encode`` vs ``SentenceTransformer.encode`` on a random
   BGE-M3-shaped model (XLM-R large, 8,194 positions) at 512 and 8,192 tokens; target ≥ 1.5×
   at 8,192 with no out-of-memory.

Random weights need no network and cost what trained ones cost. The MFU uses the H200's dense
bf16 peak (989 TFLOP/s, as the H100 SXM; ``--peak-tflops``). Writes one JSON file: each
benchmark's report or its error, the seconds it took, and what was skipped for lack of time.
``--tiny`` runs both on toy models (seconds; the CPU rehearsal).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

BUDGET_S = {"train": 50.0, "encode": 70.0}
"""Seconds each benchmark needs on the H200 (with margin); a benchmark starts only if the
deadline leaves it this much."""


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str))


def _run(name: str, fn: Any, argv: list[str], report: dict[str, Any], deadline: float,
         budget: float) -> None:
    left = deadline - time.time()
    if left < budget:
        report["skipped"].append(f"{name}: {left:.0f}s left, needs {budget:.0f}s")
        return
    t0 = time.monotonic()
    try:
        report[name] = fn(argv)
    except Exception as e:  # noqa: BLE001 - one failing benchmark must not lose the other
        report[name] = {"error": f"{type(e).__name__}: {e}",
                        "traceback": traceback.format_exc()[-2000:]}
    report["seconds"][name] = round(time.monotonic() - t0, 1)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmarks that fit before the deadline; write and return the report."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="the JSON file to write")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--deadline", type=float, default=0.0,
                    help="epoch seconds; 0 = no deadline")
    ap.add_argument("--tiny", action="store_true", help="toy models (CPU rehearsal)")
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    args = ap.parse_args(argv)
    # deferred on purpose: torch and the benchmarks (found through sys.path above) load only
    # after the arguments parsed
    import encode_throughput
    import torch
    import train_throughput

    deadline = args.deadline or time.time() + 10**6
    report: dict[str, Any] = {"device": args.device, "tiny": args.tiny, "skipped": [],
                              "seconds": {}, "torch": torch.__version__}
    if args.device.startswith("cuda") and torch.cuda.is_available():
        report["card"] = torch.cuda.get_device_name()
    scale = 0.1 if args.tiny else 1.0
    train_argv = ["--device", args.device, "--peak-tflops", str(args.peak_tflops)]
    _run("train", train_throughput.main, train_argv + (["--tiny"] if args.tiny else []),
         report, deadline, BUDGET_S["train"] * scale)
    _write(args.out, report)  # kept if the encoding benchmark is cut off
    encode_argv = (["--tiny", "--device", args.device, "--json"] if args.tiny else
                   ["--random", "bge-m3", "--device", args.device, "--n-docs", "128",
                    "--max-batch", "128", "--json"])
    _run("encode", encode_throughput.main, encode_argv, report, deadline,
         BUDGET_S["encode"] * scale)
    summary: dict[str, Any] = {}
    train = report.get("train")
    if isinstance(train, dict) and "results" in train:
        summary["train_ratio"] = train.get("ratio_pairs_per_s")
        summary["train_mfu"] = train["results"][0]["mfu"]
    encode = report.get("encode")
    if isinstance(encode, list):
        by = {(r["impl"], r["length"]): r["docs_per_s"] for r in encode}
        for length in sorted({r["length"] for r in encode}):
            st = by.get(("sentence-transformers", length))
            if st:
                summary[f"encode_ratio_{length}"] = round(by[("xlrun", length)] / st, 3)
    report["summary"] = summary
    _write(args.out, report)
    print("throughput: " + json.dumps(summary) + (f"; skipped {report['skipped']}"
                                                   if report["skipped"] else ""))
    return report


if __name__ == "__main__":
    main()
