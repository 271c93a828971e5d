"""Calibration of ``xlrun report --regress --term distance_to_training`` through the database
and the CLI (issue 27).

Each draw is a simulated study written with SQL ``INSERT`` statements by
``report_calibration.write_studies`` (8 languages on a line, two arms × 3 seeds, every ordered
cross pair, questions, seeds, symmetric pair offsets and query-/document-language effects:
``tests/report/sim_study.py``), in its own experiment. Every run trained on the four languages
at the near end of the line (``batch_languages`` rows), so the other four are unseen and each
language's distance to training is its distance to the nearest of en, fr, de, ru. The
language effects are random and unrelated to that distance (the null), or a planted slope
``gamma`` × the query language's distance to training is added to every value (``b_gamma`` to
arm b's only). One ``xlrun report --regress --term distance_to_training --format json`` per
draw; at α = 0.05 a calibrated term rejects its true value in about 5 % of the draws and its
95 % interval covers it in about 95 %.

    python benchmarks/training_distance_calibration.py              # every case
    python benchmarks/training_distance_calibration.py --draws 100  # fewer draws
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import report_calibration as bench  # the simulator and the CLI runner of issue 23

sim = bench.sim
TRAINED: tuple[str, ...] = ("en", "fr", "de", "ru")
LANGS: tuple[str, ...] = sim.LANGS8
"""en fr de ru (trained) and ar fi tr sw (unseen, 0.15–0.55 from the nearest trained one)."""
TERMS: tuple[str, ...] = ("distance_to_training[query]", "distance_to_training[doc]",
                          "arm[b]:distance_to_training[query]",
                          "arm[b]:distance_to_training[doc]")


def distance_to_training(lang: str) -> float:
    """The distance of ``lang`` to the nearest trained language on the simulator's line."""
    return min(abs(sim.POSITION[lang] - sim.POSITION[t]) for t in TRAINED)


@dataclass(frozen=True)
class Case:
    """A null or planted study; ``truth`` per checked term; ``ci`` draws in the test suite."""

    name: str
    scenario: sim.Scenario
    gamma: float = 0.0
    b_gamma: float = 0.0
    draws: int = 400
    ci: int = 0
    truth: dict[str, float] = field(default_factory=dict)

    def true_value(self, term: str) -> float:
        """The planted coefficient of ``term`` (0 unless planted)."""
        return {"distance_to_training[query]": self.gamma,
                "arm[b]:distance_to_training[query]": self.b_gamma}.get(term, 0.0)


_NULL = sim.Scenario("dtt", langs=LANGS, seed_sd=0.01, sym_pair_sd=0.05, qlang_sd=0.05,
                     dlang_sd=0.05, n_questions=20)
CASES: tuple[Case, ...] = (
    Case("null: language effects SD 0.05, symmetric pair offsets SD 0.05", _NULL, ci=200),
    Case("null: language effects SD 0.10", sim.with_(_NULL, qlang_sd=0.10, dlang_sd=0.10)),
    Case("planted: gamma 0.5 (query side, both arms), b_gamma 0.3", _NULL, gamma=0.5,
         b_gamma=0.3, draws=200),
)


def write(url: str, case: Case, draws: int, rng_seed: int) -> None:
    """The case's studies, one experiment each, with the runs' training languages and the
    planted slopes."""
    bench.write_studies(url, case.scenario, draws, rng_seed, per_experiment=True)
    engine = bench._engine(url)
    with engine.begin() as conn:
        runs = [r[0] for r in conn.exec_driver_sql("SELECT id FROM runs").all()]
        pairs = [(q, d) for q in TRAINED for d in TRAINED]
        conn.exec_driver_sql(
            "INSERT INTO batch_languages (run_id, step, batch_kind, query_lang, doc_lang, "
            "pairs) VALUES (?, ?, ?, ?, ?, 4)",
            [(r, i + 1, "mono" if q == d else "cross", q, d) for r in runs
             for i, (q, d) in enumerate(pairs)])
        for lang in LANGS:
            conn.exec_driver_sql("UPDATE query_results SET ap = ap + ? WHERE query_lang = ?",
                                 (case.gamma * distance_to_training(lang), lang))
            conn.exec_driver_sql(
                "UPDATE query_results SET ap = ap + ? WHERE query_lang = ? AND run_id IN "
                "(SELECT id FROM runs WHERE language_sampling = 'b')",
                (case.b_gamma * distance_to_training(lang), lang))
    engine.dispose()


def run_case(case: Case, workdir: Path, draws: int | None = None) -> bench.Rates:
    """Write the case's database under ``workdir`` and measure its rates through the CLI."""
    n = draws or case.draws
    url = f"sqlite:///{workdir / (''.join(c if c.isalnum() else '_' for c in case.name) + '.db')}"
    write(url, case, n, 2700 + CASES.index(case))
    rates = bench.Rates()
    start = time.perf_counter()
    for k in range(n):
        doc, err = bench.report_json(url, [
            "--regress", "--term", "distance_to_training", "--compare", "language_sampling",
            "--baseline", "a", "--experiment", f"sim{k:04d}", "--setting", "cross"])
        if k == 0:
            rates.notes.update(line for line in err.splitlines() if line.startswith("note:"))
        got = {r["term"]: r for r in doc["rows"]}
        for term in TERMS:
            r = got.get(term, {})
            rates.add(term, r.get("p"), r.get("ci_low"), r.get("ci_high"),
                      case.true_value(term))
    rates.seconds = time.perf_counter() - start
    return rates


def main() -> int:
    """Run every case and print a Markdown table of rejection and coverage rates."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--draws", type=int, default=None)
    args = ap.parse_args()
    print("| case | term | draws | rejects | covers | refused | s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in CASES:
            rates = run_case(case, Path(tmp), args.draws)
            for term, r in rates.summary().items():
                print(f"| {case.name} | {term} | {r['n']} | {r['reject']:.1%} | "
                      f"{r['cover']:.1%} | {r['refused']} | {rates.seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
