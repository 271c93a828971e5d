"""``xlrun report --regress --term distance_to_training``: each language's distance to the
nearest trained language as a language-level term (query side and document side, random
language effects), through the database and the CLI: its values, calibration under simulated
nulls and a planted slope (the cases of ``benchmarks/training_distance_calibration.py``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from seen_db import EVAL, SOURCE, TRAINED, write_seen_db

import xlrun
from xlrun.cli import main
from xlrun.errors import UsageError
from xlrun.langsim.distances import distance_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import training_distance_calibration as bench  # a benchmark script, found through sys.path

MAX_REJECT = 0.08


@pytest.fixture
def db(sqlite_url: str) -> str:
    """The database of :func:`seen_db.write_seen_db`."""
    return write_seen_db(sqlite_url)
COVERAGE = (0.92, 0.98)


def test_values_are_the_distance_to_the_nearest_trained_language(db: str) -> None:
    """The seen/unseen database of ``test_report_seen``: trained en, de (both sides), fr
    (passages only); sw unseen; ber unseen and without URIEL data."""
    result = CliRunner().invoke(main, ["report", "--db", db, "--regress", "--term",
                                       "distance_to_training", "--compare", "arm",
                                       "--baseline", "hybrid/size", "--setting", "cross",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    rep = json.loads(result.stdout)
    meta = rep["meta"]
    assert meta["trained_languages"] == sorted(TRAINED)
    dm = distance_matrix(SOURCE, ["de", "en", "fr", "sw"])
    want = {lang: min(dm.get(lang, t) for t in TRAINED) for lang in ("de", "en", "fr", "sw")}
    assert set(meta["distance_to_training"]) == set(want)  # ber: no URIEL data
    for lang, value in want.items():
        assert meta["distance_to_training"][lang] == pytest.approx(value)
    notes = " | ".join(meta["notes"])
    assert "no uriel:syntax_knn distance from ber to the trained languages" in notes
    assert "computed from the source" in notes  # sw's pairs: no run stored them
    terms = meta["terms"] + meta["dropped_terms"]  # four query languages: few are testable
    assert {"distance_to_training[query]", "distance_to_training[doc]"} <= set(terms)
    assert set(EVAL) >= set(want)


def test_a_term_needs_the_regression(db: str) -> None:
    result = CliRunner().invoke(main, ["report", "--db", db, "--term", "distance_to_training"])
    assert result.exit_code == 2 and "add --regress" in result.output
    with xlrun.connect(db) as res, pytest.raises(UsageError, match="add --regress"):
        res.report(terms=["distance_to_training"])


def test_the_notebook_api_takes_the_term(db: str) -> None:
    """``report(regress=True, terms=[...])`` is ``--regress --term ...``: the same table,
    notes and meta as the CLI's JSON."""
    result = CliRunner().invoke(main, ["report", "--db", db, "--regress", "--term",
                                       "distance_to_training", "--compare", "arm",
                                       "--baseline", "hybrid/size", "--setting", "cross",
                                       "--format", "json"])
    assert result.exit_code == 0, result.output
    cli = json.loads(result.stdout)
    with xlrun.connect(db) as res:
        rep = res.report(regress=True, terms=["distance_to_training"], compare="arm",
                         baseline="hybrid/size", setting="cross")
    assert rep.table.to_dicts() == cli["rows"] and rep.meta == cli["meta"]
    terms = rep.meta["terms"] + rep.meta["dropped_terms"]
    assert {"distance_to_training[query]", "distance_to_training[doc]"} <= set(terms)


def test_calibrated_under_the_null_through_sql_and_the_cli(tmp_path: Path,
                                                           record_property) -> None:
    case = next(c for c in bench.CASES if c.ci)
    rates = bench.run_case(case, tmp_path, case.ci)
    summary = rates.summary()
    assert set(summary) == set(bench.TERMS)
    for term, r in summary.items():
        line = (f"{case.name} / {term}: reject {r['reject']:.1%}, cover {r['cover']:.1%} "
                f"({r['n']} tests, {r['refused']} refused, {rates.seconds:.0f} s)")
        print(f"\ncalibration (CLI): {line}")
        record_property(term, line)
        assert r["refused"] == 0 and r["n"] == case.ci, term
        assert r["reject"] <= MAX_REJECT, term
        assert COVERAGE[0] <= r["cover"] <= COVERAGE[1], term


def test_a_planted_slope_is_found(tmp_path: Path) -> None:
    case = next(c for c in bench.CASES if c.gamma)
    summary = bench.run_case(case, tmp_path, 30).summary()
    assert summary["distance_to_training[query]"]["reject"] >= 0.9
    assert summary["arm[b]:distance_to_training[query]"]["reject"] >= 0.9
    assert summary["distance_to_training[query]"]["cover"] >= 0.8
