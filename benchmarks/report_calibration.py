"""Calibration of ``xlrun report`` through the database and the CLI (issue 23).

Every case writes simulated studies under a planted null (or a planted effect) into a fresh
SQLite database with plain SQL ``INSERT`` statements, runs ``xlrun report … --format json``
in-process through the CLI entry point (click's runner) and counts, at α = 0.05, how often the
test rejects and how often the 95 % interval covers the true value. The simulator is
``tests/report/sim_study.py`` (see its docstring for the model).

* ``--compare`` cases put each draw in its own ``dataset`` (own runs, own questions): the report
  keeps datasets apart, so one CLI call tests every draw.
* ``--regress`` cases put each draw in its own experiment and run one CLI call per draw
  (``--experiment``), because a regression pools the datasets it is given.

Whichever xlrun is first on ``PYTHONPATH`` is measured, so the same script gives the rates of
an older checkout (``PYTHONPATH=/path/to/old python benchmarks/report_calibration.py``).
``tests/report/test_report_calibration_cli.py`` runs the cases marked ``ci`` on every test
run; the whole grid is run here and its results are written down in ``benchmarks/README.md``.

Usage::

    python benchmarks/report_calibration.py                  # every case, default draws
    python benchmarks/report_calibration.py --cases regress  # cases whose name contains it
    python benchmarks/report_calibration.py --draws 200 --json rates.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "report"))
import sim_study as sim  # the simulator lives beside the tests that use it

ALPHA = 0.05
"""The level of every test."""

DISTANCE_SOURCE = "line"


@dataclass(frozen=True)
class Case:
    """One simulated null (or planted effect) and the report that must stay calibrated on it.

    ``view`` is ``compare`` (one ``--by`` cell per draw and setting) or ``regress``;
    ``terms`` the regression terms checked, with the scenario field that holds each one's true
    value (``None``: 0); ``ci`` marks the cases the test suite runs on every run."""

    name: str
    view: str
    scenario: sim.Scenario
    by: str = "setting"
    draws: int = 200
    terms: dict[str, str | None] = field(default_factory=dict)
    power: bool = False
    ci: int = 0
    """Draws of the case in the test suite (0: only here)."""


REGRESS_TERMS: dict[str, str | None] = {"distance": "slope", "same_cluster": None,
                                        "arm[b]": "effect", "arm[b]:distance": "b_slope"}

_BASE5 = sim.Scenario("regress", langs=sim.LANGS5, seed_sd=0.01)
REGRESS_DRAWS = 400
"""Regressions per ``--regress`` case (one CLI call each). 200 are too few for an 8 % bound
over ~50 checks: the exact 4-df t-test of ``arm[b]:distance`` rejects 2–9 % in blocks of 200
draws of the same stream."""

CASES: tuple[Case, ...] = (
    # --compare: the nulls of issue 13 (sim_study.NULLS), by language pair and by setting
    *(Case(f"compare by language-pair, {s.name}: {key[2:]}", "compare", s, by="language-pair",
           draws=200)
      for key, s in sim.NULLS.items()),
    *(Case(f"compare by setting, {s.name}: {key[2:]}", "compare", sim.with_(s, langs=("en", "fi")),
           draws=1000, ci=1000 if key.startswith("a_") else 0)
      for key, s in sim.NULLS.items()),
    # issue 23 item 2: arm b lacks 8 of 20 pairs in every run; pair offsets shared by the arms
    Case("compare by setting, arm b lacks 8 of 20 pairs, pair SD 0.05", "compare",
         sim.Scenario("missing", langs=sim.LANGS5, seed_sd=0.01, pair_sd=0.05, missing_b=8,
                      n_questions=20), draws=1000),
    Case("compare by setting, arm b lacks 8 of 20 pairs, pair SD 0.20", "compare",
         sim.Scenario("missing", langs=sim.LANGS5, seed_sd=0.01, pair_sd=0.20, missing_b=8,
                      n_questions=20), draws=1000, ci=300),
    # issue 23 item 3: 3 seeds per arm, one baseline run missing → 2 paired seeds
    Case("compare by setting, 2 paired seeds (+1 run of b), seed SD 0.01, arm × question 0.04",
         "compare", sim.Scenario("2 seeds", langs=("en", "fi"), seeds_a=(1, 2),
                                 seeds_b=(1, 2, 3), seed_sd=0.01, qa_sd=0.04), draws=1000),
    Case("compare by setting, 2 paired seeds (+1 run of b), seed SD 0.02, arm × question 0.04",
         "compare", sim.Scenario("2 seeds", langs=("en", "fi"), seeds_a=(1, 2),
                                 seeds_b=(1, 2, 3), seed_sd=0.02, qa_sd=0.04), draws=1000,
         ci=1000),
    Case("compare by setting, 2 paired seeds (+1 run of b), seed SD 0.01, no interaction",
         "compare", sim.Scenario("2 seeds", langs=("en", "fi"), seeds_a=(1, 2),
                                 seeds_b=(1, 2, 3), seed_sd=0.01), draws=1000),
    Case("compare by setting, 2 seeds each, seed SD 0.02, arm × question 0.04", "compare",
         sim.Scenario("2 seeds", langs=("en", "fi"), seeds_a=(1, 2), seeds_b=(1, 2),
                      seed_sd=0.02, qa_sd=0.04), draws=1000),
    Case("compare by language-pair, 2 seeds each, seed SD 0.02", "compare",
         sim.with_(sim.Scenario("2 seeds"), seed_sd=0.02, seeds_a=(1, 2), seeds_b=(1, 2)),
         by="language-pair", draws=100),
    Case("compare power: 0.01, seed SD 0.003, 5 seeds, 1,000 questions", "compare", sim.POWER,
         by="language-pair", draws=200, power=True),
    # --regress (issue 23 item 1): 5 languages = 20 ordered cross pairs, 10 unordered
    Case("regress, symmetric pair offsets SD 0.05", "regress",
         sim.with_(_BASE5, sym_pair_sd=0.05), terms=REGRESS_TERMS, draws=REGRESS_DRAWS),
    Case("regress, symmetric pair offsets SD 0.10", "regress",
         sim.with_(_BASE5, sym_pair_sd=0.10), terms=REGRESS_TERMS, draws=REGRESS_DRAWS),
    Case("regress, half of the pair variance symmetric (0.05 + 0.05)", "regress",
         sim.with_(_BASE5, sym_pair_sd=0.05, pair_sd=0.05), terms=REGRESS_TERMS,
         draws=REGRESS_DRAWS),
    Case("regress, query- and document-language effects SD 0.05", "regress",
         sim.with_(_BASE5, qlang_sd=0.05, dlang_sd=0.05), terms=REGRESS_TERMS,
         draws=REGRESS_DRAWS),
    Case("regress, symmetric 0.10 + query/doc-language 0.05", "regress",
         sim.with_(_BASE5, sym_pair_sd=0.10, qlang_sd=0.05, dlang_sd=0.05),
         terms=REGRESS_TERMS, draws=REGRESS_DRAWS, ci=400),
    Case("regress, 8 languages, symmetric pair offsets SD 0.10", "regress",
         sim.with_(_BASE5, langs=sim.LANGS8, sym_pair_sd=0.10), terms=REGRESS_TERMS,
         draws=REGRESS_DRAWS),
    Case("regress, arm × symmetric pair SD 0.05", "regress",
         sim.with_(_BASE5, arm_sym_pair_sd=0.05), terms=REGRESS_TERMS, draws=REGRESS_DRAWS),
    *(Case(f"regress, {s.name}: {key[2:]}", "regress", sim.with_(s, langs=sim.LANGS5),
           terms=REGRESS_TERMS, draws=REGRESS_DRAWS) for key, s in sim.NULLS.items()),
)
"""The grid (``ci`` cases also run in ``tests/report/test_report_calibration_cli.py``)."""


# ----------------------------------------------------------------------- writing through SQL

_RUN_SQL = ("INSERT INTO runs (id, experiment_id, run_key, status, config_json, model, sampler, "
            "language_sampling, clustering, seed, attempts, created_at) "
            "VALUES (?, ?, ?, 'done', ?, 'm', 'hybrid', ?, ?, ?, 1, '2024-01-01 00:00:00')")
_ROW_SQL = ("INSERT INTO query_results (run_id, dataset, split, setting, query_lang, doc_lang, "
            "query_id, n_relevant, ap, ndcg_at_10, mrr_at_10, recall_at_100, "
            "first_relevant_rank) VALUES (?, ?, 'test', ?, ?, ?, ?, 1, ?, ?, ?, ?, 1)")


def _engine(url: str) -> Any:
    from xlrun.db.engine import get_engine  # the xlrun on PYTHONPATH (old or new)

    return get_engine(url)


def write_studies(url: str, s: sim.Scenario, draws: int, rng_seed: int,
                  per_experiment: bool) -> None:
    """Write ``draws`` simulated studies of ``s`` with SQL ``INSERT`` statements: each draw in
    its own dataset (``sim0000``, …) of one experiment, or with ``per_experiment`` in its own
    experiment (``sim0000``, …, dataset ``sim``). Arm b's runs store the languages' distances
    and clusters (``language_distances``/``language_clusters``, as a clustered arm does)."""
    rng = np.random.default_rng(rng_seed)
    pairs = s.pairs()
    n_q = s.n_questions
    qids = [f"q{i}" for i in range(n_q)]
    dist_rows = [(a, b, s.distance(a, b)) for i, a in enumerate(s.langs)
                 for b in s.langs[i + 1:]]
    engine = _engine(url)
    run_id = 0
    with engine.begin() as conn:
        if not per_experiment:
            conn.exec_driver_sql("INSERT INTO experiments (id, name, spec_toml, created_at) "
                                 "VALUES (1, 'sim', '', '2024-01-01 00:00:00')")
        for k in range(draws):
            exp = k + 1 if per_experiment else 1
            if per_experiment:
                conn.exec_driver_sql(
                    "INSERT INTO experiments (id, name, spec_toml, created_at) "
                    "VALUES (?, ?, '', '2024-01-01 00:00:00')", (exp, f"sim{k:04d}"))
            dataset = "sim" if per_experiment else f"sim{k:04d}"
            vals = sim.values(s, rng)
            have = sim.present(s, rng) if s.missing_b else np.ones((2, len(pairs)), bool)
            rows: list[tuple[Any, ...]] = []
            for arm, seeds in ((0, s.seeds_a), (1, s.seeds_b)):
                for j, seed in enumerate(seeds):
                    run_id += 1
                    label = "ab"[arm]
                    conn.exec_driver_sql(_RUN_SQL, (
                        run_id, exp, f"{dataset}-{label}-{seed}",
                        json.dumps({"train": {"seed": seed}}), label,
                        "line/within" if arm else None, seed))
                    if arm:
                        conn.exec_driver_sql(
                            "INSERT INTO language_distances (run_id, source, lang_a, lang_b, "
                            "distance) VALUES (?, ?, ?, ?, ?)",
                            [(run_id, DISTANCE_SOURCE, a, b, d) for a, b, d in dist_rows])
                        conn.exec_driver_sql(
                            "INSERT INTO language_clusters (run_id, lang, cluster) "
                            "VALUES (?, ?, ?)",
                            [(run_id, lang, sim.cluster_of(lang)) for lang in s.langs])
                    for p, (q, d) in enumerate(pairs):
                        if not have[arm, p]:
                            continue
                        setting = "mono" if q == d else "cross"
                        v = vals[arm, j, p].tolist()
                        rows += zip(repeat(run_id), repeat(dataset), repeat(setting),
                                    repeat(q), repeat(d), qids, v, v, v, v)
            conn.exec_driver_sql(_ROW_SQL, rows)
    engine.dispose()


# ----------------------------------------------------------------------- running the CLI


def report_json(url: str, args: Sequence[str]) -> tuple[dict[str, Any], str]:
    """``xlrun report ARGS --format json --db URL`` in-process: the parsed JSON and stderr."""
    from click.testing import CliRunner

    from xlrun.cli.report import report_command

    res = CliRunner().invoke(report_command, [*args, "--format", "json", "--db", url],
                             catch_exceptions=False)
    if res.exit_code != 0:
        raise RuntimeError(f"xlrun report {' '.join(args)} exited {res.exit_code}: "
                           f"{res.output}")
    return json.loads(res.stdout), res.stderr


@dataclass
class Rates:
    """What a case measured: per checked term, ``[rejected, covered]`` per test; draws whose
    test was refused (no p) and the seconds the case took."""

    tests: dict[str, list[tuple[bool, bool]]] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    notes: set[str] = field(default_factory=set)

    def add(self, term: str, p: float | None, lo: float | None, hi: float | None,
            truth: float) -> None:
        if p is None or lo is None or hi is None:
            self.refused[term] = self.refused.get(term, 0) + 1
            return
        self.tests.setdefault(term, []).append((p < ALPHA, lo <= truth <= hi))

    def summary(self) -> dict[str, dict[str, float]]:
        """Per term: ``reject``, ``cover``, ``n`` tests and ``refused``."""
        out = {}
        for term in sorted(set(self.tests) | set(self.refused)):
            t = np.array(self.tests.get(term, []), dtype=float).reshape(-1, 2)
            out[term] = {"reject": float(t[:, 0].mean()) if len(t) else float("nan"),
                         "cover": float(t[:, 1].mean()) if len(t) else float("nan"),
                         "n": len(t), "refused": self.refused.get(term, 0)}
        return out


def run_case(case: Case, workdir: Path, draws: int | None = None,
             rng_seed: int | None = None) -> Rates:
    """Write the case's database under ``workdir`` and measure its rates through the CLI
    (each case draws from its own random stream unless ``rng_seed`` is given)."""
    n = draws or case.draws
    if rng_seed is None:
        rng_seed = 2300 + CASES.index(case)
    url = f"sqlite:///{workdir / (''.join(c if c.isalnum() else '_' for c in case.name) + '.db')}"
    s = case.scenario
    rates = Rates()
    start = time.perf_counter()
    if case.view == "compare":
        write_studies(url, s, n, rng_seed, per_experiment=False)
        doc, err = report_json(url, ["--by", case.by, "--compare", "language_sampling",
                                     "--baseline", "a"])
        rates.notes.update(line for line in err.splitlines() if line.startswith("note:"))
        for r in doc["rows"]:
            if r["arm"] == "b":
                rates.add("delta", r["p"], r["ci_low"], r["ci_high"], s.effect)
    else:
        write_studies(url, s, n, rng_seed, per_experiment=True)
        setting = ["--setting", "cross"] if s.cross_only else []
        for k in range(n):
            doc, err = report_json(url, ["--regress", "--compare", "language_sampling",
                                         "--baseline", "a", "--experiment", f"sim{k:04d}",
                                         *setting])
            if k == 0:
                rates.notes.update(line for line in err.splitlines()
                                   if line.startswith("note:"))
            got = {r["term"]: r for r in doc["rows"]}
            for term, truth_field in case.terms.items():
                r = got.get(term, {})
                truth = getattr(s, truth_field) if truth_field else 0.0
                rates.add(term, r.get("p"), r.get("ci_low"), r.get("ci_high"), truth)
    rates.seconds = time.perf_counter() - start
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    """Run the grid (or the cases whose name contains ``--cases``) and print a Markdown
    table of rejection and coverage rates."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="", help="run only cases whose name contains this")
    ap.add_argument("--draws", type=int, default=None, help="draws per case (default: each "
                    "case's own)")
    ap.add_argument("--ci", action="store_true", help="only the cases the tests run, with "
                    "their draws")
    ap.add_argument("--json", default=None, help="also write the rates to this file")
    args = ap.parse_args(argv)
    import xlrun

    print(f"xlrun from {Path(xlrun.__file__).parent}", file=sys.stderr)
    chosen = [c for c in CASES if args.cases in c.name and (c.ci or not args.ci)]
    results = {}
    print("| case | term | draws | rejects | covers | refused | s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in chosen:
            rates = run_case(case, Path(tmp), args.draws or (case.ci if args.ci else None))
            summary = rates.summary()
            results[case.name] = {"terms": summary, "seconds": rates.seconds,
                                  "notes": sorted(rates.notes)}
            for term, r in summary.items():
                print(f"| {case.name} | {term} | {r['n']} | {r['reject']:.1%} | "
                      f"{r['cover']:.1%} | {r['refused']} | {rates.seconds:.0f} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
