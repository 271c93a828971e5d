"""Check that every `xlrun report|sql|status|db import` command in docs/results.md runs.

Builds a small synthetic results database from the REAL study specs (their experiment names,
run keys, arms, languages and datasets; made-up metric values), writes it through the same
store functions a worker uses (submit_runs, claim_run, write_train_log,
write_batch_languages, write_languages, write_results, finish_run), exports it with
`xlrun db export --done-only` as the GPU machine does, then runs the document's commands in
a temporary folder (the import into study.db first, as the document says) and fails if any
exits non-zero or prints nothing. Nothing is written in the repository.

    python benchmarks/study/check_results_doc.py [--queries 4] [--keep DIR] [-v]
    python benchmarks/study/check_results_doc.py --export study-export.tar [--in-process]

With ``--export`` (a folder or ``.tar`` made by `xlrun db export`, e.g. the one
``gpu_study.sh`` writes) the commands run on that export instead of the synthetic one (the
CPU rehearsal of the study does this). ``--in-process`` runs each `xlrun` command through
click in this process instead of a new one (same commands, seconds instead of minutes).

Only the `xlrun` commands whose subcommand is report, sql, status or `db import` (and
`mkdir -p docs/figures`) are run; submit, export and the device scripts need a GPU and are not.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPECS = ("experiments/lareqa_study.toml", "experiments/lareqa_study_b.toml")
DOC = ROOT / "docs" / "results.md"
LANGS = {"xquad-r": ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh"),
         "mlqa-r": ("ar", "de", "en", "es", "hi", "vi", "zh")}
RUNNABLE = re.compile(r"^(xlrun (report|sql|status|db import)\b|mkdir -p docs/figures$|"
                      r"for p in study-export/part-\*; do xlrun db import \"\$p\"; done\b)")
LOOP = re.compile(r'^for (\w+) in (\S+); do (.*); done$')


def doc_commands(text: str) -> list[str]:
    """The shell commands of the ```bash blocks, continuation lines and multi-line quoted
    strings joined, comments dropped; only those matching :data:`RUNNABLE`."""
    out: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        pending, sep = "", ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += sep + line
            if pending.endswith("\\"):  # a continuation line: joined with a space
                pending, sep = pending[:-1].rstrip(), " "
                continue
            sep = "\n"  # inside an open quote the newline belongs to the string
            try:
                shlex.split(pending, comments=True)
            except ValueError:  # an open quote: the command goes on on the next line
                continue
            out.append(pending)
            pending, sep = "", ""
    return [c.split(" #")[0].rstrip() if not c.startswith("xlrun sql") else c
            for c in out if RUNNABLE.match(c.strip())]


def _synth_query_rows(dataset: str, arm_effect: float, rng: random.Random,
                      n_queries: int) -> tuple[list[dict], list[dict]]:
    langs = LANGS[dataset]
    rows: list[dict] = []
    for q in langs:
        for i in range(n_queries):
            difficulty = rng.gauss(0.45, 0.1)
            for d in (*langs, "all"):
                setting = "multi" if d == "all" else ("mono" if d == q else "cross")
                v = min(1.0, max(0.0, difficulty + arm_effect + rng.gauss(0, 0.05)
                                 - (0.1 if setting == "cross" else 0.0)))
                rows.append({
                    "dataset": dataset, "split": "test", "setting": setting,
                    "query_lang": q, "doc_lang": d, "query_id": f"{q}-{i}",
                    "n_relevant": len(langs) if d == "all" else 1, "ap": v,
                    "ndcg_at_10": v, "mrr_at_10": v, "recall_at_100": min(1.0, v + 0.3),
                    "first_relevant_rank": 1 + int((1 - v) * 20),
                    "rank_distance": rng.uniform(50, 1500) * (1 - v) if d == "all" else None,
                    "same_lang_at_10": rng.uniform(0.1, 0.6) if d == "all" else None,
                    "same_lang_expected": 1 / len(langs) if d == "all" else None,
                })
    metrics = [{"dataset": dataset, "split": "test", "setting": s, "query_lang": "all",
                "doc_lang": "all", "metric": "map",
                "value": sum(r["ap"] for r in rows if r["setting"] == s)
                / max(1, sum(r["setting"] == s for r in rows))}
               for s in ("mono", "cross", "multi")]
    return rows, metrics


def build_db(url: str, n_queries: int) -> int:
    """Write the synthetic study into ``url``; the number of runs."""
    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import load_spec

    engine = get_engine(url)
    rng = random.Random(0)
    n = 0
    for spec_path in SPECS:
        spec = load_spec(ROOT / spec_path)
        runs = compile_spec(spec)
        name = spec.experiment.name
        res = store.submit_runs(engine, name, (ROOT / spec_path).read_text(), runs)
        for run, run_id in zip(runs, res.run_ids, strict=True):
            assert store.claim_run(engine, "synthetic", [run_id]) == run_id
            cfg = run.config
            s = cfg.sampling
            # direction A trains on MLQA-R and evaluates on XQuAD-R, B the other way round
            train_langs = LANGS["mlqa-r" if cfg.eval[0].dataset == "xquad-r" else "xquad-r"]
            if cfg.train.steps > 0:
                store.write_train_log(engine, run_id, [
                    {"step": k, "loss": 3.0 / k ** 0.3, "lr": 2e-5, "examples_per_s": 500.0}
                    for k in range(10, cfg.train.steps + 1, 10)])
                store.write_batch_languages(engine, run_id, [
                    {"step": k, "batch_kind": kind, "query_lang": a, "doc_lang": b, "pairs": 8}
                    for k in range(1, 4) for kind, a, b in
                    (("mono", train_langs[k], train_langs[k]),
                     ("cross", train_langs[0], train_langs[k]))])
            if s.language_sampling == "clustered" and cfg.train.steps > 0:
                k = s.n_clusters
                clusters = [list(train_langs[i::k]) for i in range(k)]
                store.write_languages(engine, run_id, clusters, [
                    {"source": s.similarity, "lang_a": a, "lang_b": b,
                     "distance": round(rng.uniform(0.1, 1.0), 3)}
                    for i, a in enumerate(train_langs) for b in train_langs[i + 1:]])
            effect = {"none": -0.2, "monolingual": -0.05, "cross_lingual": 0.0}.get(
                cfg.sampler, 0.02 if s.language_sampling == "clustered" else 0.0)
            for ev in cfg.eval:
                rows, metrics = _synth_query_rows(ev.dataset, effect, rng, n_queries)
                store.write_results(engine, run_id, ev.dataset, ev.split,
                                    {"query_results": rows, "run_metrics": metrics})
            assert store.finish_run(engine, run_id, "done", worker="synthetic")
            n += 1
    engine.dispose()
    return n


def _subprocess(cmd: str, work: Path, env: dict[str, str]) -> tuple[int, str, str]:
    p = subprocess.run(["bash", "-c", cmd], cwd=work, env=env, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def _in_process(cmd: str, work: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """One documented command through click (``mkdir -p`` and ``for … in GLOB; do …; done``
    by hand), in ``work``."""
    loop = LOOP.match(cmd)
    if loop:
        var, pattern, body = loop.groups()
        paths = sorted(work.glob(pattern)) or [Path(pattern)]
        rc, outs, errs = 0, [], []
        for path in paths:
            r = _in_process(body.replace(f'"${var}"', shlex.quote(str(path.relative_to(work))
                                                                   if path.is_absolute()
                                                                   else str(path))),
                            work, env)
            rc = rc or r[0]
            outs.append(r[1])
            errs.append(r[2])
        return rc, "".join(outs), "".join(errs)
    args = shlex.split(cmd, comments=True)
    old = os.getcwd()
    os.chdir(work)
    try:
        if args[:2] == ["mkdir", "-p"]:
            for d in args[2:]:
                Path(d).mkdir(parents=True, exist_ok=True)
            return 0, "", ""
        from click.testing import CliRunner

        from xlrun.cli import main as cli

        r = CliRunner().invoke(cli, args[1:], env={"XLRUN_DB": env["XLRUN_DB"]})
        err = r.stderr if r.stderr_bytes is not None else ""
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            import traceback

            err += "".join(traceback.format_exception(r.exception))
        return r.exit_code, r.stdout, err
    finally:
        os.chdir(old)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=4, help="synthetic queries per language")
    ap.add_argument("--keep", type=Path, help="work in DIR (kept) instead of a temporary folder")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each command's output")
    ap.add_argument("--export", type=Path, help="an export (folder or .tar) to use instead of "
                                                 "the synthetic database")
    ap.add_argument("--in-process", action="store_true",
                    help="run the xlrun commands in this process")
    args = ap.parse_args()
    commands = doc_commands(DOC.read_text())
    work = args.keep or Path(tempfile.mkdtemp(prefix="xlrun-results-doc-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, XLRUN_DB=f"sqlite:///{work / 'study.db'}")
    try:
        # the study's layout: study-export/part-NNN/, one export each (gpu_study.sh's tar)
        if args.export:
            target = work / "study-export"
            if args.export.is_dir():
                single = (args.export / "manifest.json").is_file()
                shutil.copytree(args.export, target / "part-001" if single else target)
            else:
                import tarfile

                target.mkdir()
                with tarfile.open(args.export) as tar:
                    tar.extractall(target, filter="data")
            print(f"export {args.export}; {len(commands)} commands from {DOC.name}")
        else:
            gpu = work / "gpu.db"
            n = build_db(f"sqlite:///{gpu}", args.queries)
            subprocess.run([sys.executable, "-m", "xlrun", "db", "export",
                            str(work / "study-export" / "part-001"), "--done-only", "--db",
                            f"sqlite:///{gpu}"], check=True, env=env, stdout=subprocess.DEVNULL)
            print(f"synthetic database: {n} runs, exported; {len(commands)} commands from "
                  f"{DOC.name}")
        failed = 0
        for cmd in commands:
            t0 = time.monotonic()
            rc, out, err = (_in_process(cmd, work, env) if args.in_process else
                            _subprocess(cmd, work, env))
            out = out.strip()
            wrote = re.search(r"--out (\S+)", cmd)
            ok = rc == 0 and (bool(out) or cmd.startswith("mkdir")
                              or bool(wrote and (work / wrote.group(1)).is_file()))
            failed += not ok
            head = " ".join(cmd.split())[:150]
            print(f"{'ok  ' if ok else 'FAIL'} rc={rc} {time.monotonic() - t0:5.1f}s  {head}")
            if not ok or args.verbose:
                print(out[-3000:], err[-3000:], sep="\n")
        print(f"{len(commands) - failed}/{len(commands)} commands ok")
        return 1 if failed else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
