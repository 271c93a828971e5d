"""How long a later GPU allocation takes to learn which study runs are done (issue 22).

    python benchmarks/study/resume_time.py [--runs 50] [--keep DIR]

Builds an export shaped like a first allocation's (``--runs`` done runs, half direction A —
XQuAD-R evaluation, 157,080 ``query_results`` rows each — half direction B — MLQA-R
evaluation, its rows counted from ``../shared/data/mlqa-r`` when present — with made-up metric
values), then times

* **now**: ``study.done_runs`` — the experiments and runs files of the export alone;
* **before**: ``xlrun db import`` of the whole export into a fresh database, which is what
  ``study.py run`` did before its lanes could start.

Prints one JSON line. CPU only; a few minutes on the 2-core development machine (most of it
building the export).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

XQUADR = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
MLQAR = ("ar", "de", "en", "es", "hi", "vi", "zh")


def mlqa_queries(shared: Path) -> dict[str, int]:
    """Questions per MLQA-R language (1,000 each when the data is absent)."""
    folder = shared / "data" / "mlqa-r"
    if not folder.is_dir():
        return dict.fromkeys(MLQAR, 1000)
    from xlrun.data.lareqa import read_language

    return {lang: len(read_language(folder, lang).questions) for lang in MLQAR}


def frame(langs: tuple[str, ...], per_lang: dict[str, int], dataset: str,
          rng: np.random.Generator) -> pa.Table:
    """``query_results`` rows of one run: every query against each language and the pool."""
    cols: dict[str, list] = {k: [] for k in ("dataset", "split", "setting", "query_id",
                                             "query_lang", "doc_lang", "n_relevant")}
    for q in langs:
        for i in range(per_lang[q]):
            for d in (*langs, "all"):
                cols["dataset"].append(dataset)
                cols["split"].append("test")
                cols["setting"].append("multi" if d == "all" else "mono" if d == q else "cross")
                cols["query_id"].append(f"{q}-{i}")
                cols["query_lang"].append(q)
                cols["doc_lang"].append(d)
                cols["n_relevant"].append(len(langs) if d == "all" else 1)
    n = len(cols["dataset"])
    rank = rng.geometric(0.3, n).astype(np.int64)
    ap = 1.0 / rank
    return pa.table({**cols, "ap": ap, "ndcg_at_10": np.where(rank <= 10, 1 / np.log2(rank + 1), 0),
                     "mrr_at_10": np.where(rank <= 10, ap, 0.0),
                     "recall_at_100": (rank <= 100).astype(float), "first_relevant_rank": rank})


def build(work: Path, runs: int) -> Path:
    """The export of ``runs`` done runs (half A, half B); its folder."""
    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import export_database
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec

    rng = np.random.default_rng(0)
    shapes = {"lareqa-a": frame(XQUADR, dict.fromkeys(XQUADR, 1190), "xquad-r", rng),
              "lareqa-b": frame(MLQAR, mlqa_queries(ROOT.parent / "shared"), "mlqa-r", rng)}
    engine = get_engine(f"sqlite:///{work / 'gpu.db'}")
    for name, rows in shapes.items():
        text = (f'[experiment]\nname = "{name}"\n[model]\nname = "m"\n[train]\nsteps = 0\n'
                '[[eval]]\ndataset = "quickstart"\n[grid]\n"eval.top_k" = '
                f"{list(range(1, runs // 2 + 1))}\n")
        compiled = compile_spec(parse_spec(text, base_dir=work))
        for rid in store.submit_runs(engine, name, text, compiled).run_ids:
            store.claim_run(engine, "bench", [rid])
            store.write_results(engine, rid, str(rows["dataset"][0]), "test",
                                {"query_results": rows})
            store.finish_run(engine, rid, "done", worker="bench")
    export_database(engine, work / "export" / "alloc-1" / "part-001", done_only=True)
    engine.dispose()
    return work / "export"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--keep", type=Path, help="work in DIR (kept) instead of a temporary folder")
    args = ap.parse_args(argv)
    import study

    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import import_database, table_counts

    work = args.keep or Path(tempfile.mkdtemp(prefix="xlrun-resume-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        export = build(work, args.runs)
        built = time.perf_counter() - t0
        t0 = time.perf_counter()
        done = study.done_runs(export)
        now = time.perf_counter() - t0
        t0 = time.perf_counter()
        engine = get_engine(f"sqlite:///{work / 'resume.db'}")
        import_database(engine, export / "alloc-1" / "part-001")
        before = time.perf_counter() - t0
        rows = table_counts(engine)["query_results"]
        engine.dispose()
        size = sum(f.stat().st_size for f in export.rglob("*") if f.is_file())
        print(json.dumps({"runs": len(done), "query_rows": rows, "export_mb": round(size / 1e6, 2),
                          "build_s": round(built, 1), "resume_now_s": round(now, 3),
                          "resume_before_s": round(before, 1)}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
