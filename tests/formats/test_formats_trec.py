"""TREC run and qrels files: xlrun's query ids, full-precision scores, readable errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from xlrun.errors import UsageError
from xlrun.formats import trec


def test_query_ids_round_trip_and_keep_slashes_of_the_dataset_id() -> None:
    key = trec.QueryKey("cross", "de", "en", "a/b")
    assert key.trec_id() == "cross/de/en/a/b"
    assert trec.parse_query_id("cross/de/en/a/b") == key
    assert trec.parse_query_id("q17") is None
    assert trec.parse_query_id("mono//de/q1") is None


def test_runs_and_qrels_round_trip_at_full_precision(tmp_path: Path) -> None:
    scores = [0.1 + 0.2, 2e-5, 1 / 3, -0.0, 1e300, 0.6314795613288879]
    rows = [("mono/en/en/q1", f"en:{i}", i + 1, s) for i, s in enumerate(scores)]
    for name in ("r.run", "r.run.gz"):
        assert trec.write_run(tmp_path / name, rows, "tag") == len(rows)
        back = trec.read_run(tmp_path / name)
        assert back == {"mono/en/en/q1": {f"en:{i}": s for i, s in enumerate(scores)}}
    assert "2e-05" in (tmp_path / "r.run").read_text()
    trec.write_qrels(tmp_path / "q", [("mono/en/en/q1", "en:1", 2), ("mono/en/en/q1", "en:3", 1)])
    assert trec.read_qrels(tmp_path / "q") == {"mono/en/en/q1": {"en:1": 2, "en:3": 1}}


def test_the_files_read_with_ir_measures(tmp_path: Path) -> None:
    ir_measures = pytest.importorskip("ir_measures")
    trec.write_run(tmp_path / "r", [("q", "a", 1, 0.5), ("q", "b", 2, 0.5)], "t")
    trec.write_qrels(tmp_path / "q", [("q", "a", 1)])
    run = list(ir_measures.read_trec_run(str(tmp_path / "r")))
    qrels = list(ir_measures.read_trec_qrels(str(tmp_path / "q")))
    # a tie: trec_eval ranks b (the larger docno) first, so a is at rank 2
    assert ir_measures.calc_aggregate([ir_measures.RR], qrels, run)[ir_measures.RR] == 0.5


@pytest.mark.parametrize("line, needle", [
    ("q Q0 d 1 0.5", ":1: expected 6 fields"),
    ("q Q0 d 1 high t", ":1: score 'high' is not a number"),
    ("q Q0 d 1 nan t", ":1: score 'nan' is not finite"),
    ("q Q0 d 1 0.5 t\nq Q0 d 2 0.4 t", ":2: document 'd' appears twice"),
])
def test_bad_run_lines_are_named(tmp_path: Path, line: str, needle: str) -> None:
    (tmp_path / "r").write_text(line + "\n")
    with pytest.raises(UsageError, match=needle):
        trec.read_run(tmp_path / "r")


def test_ids_with_whitespace_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="'my doc' cannot be written"):
        trec.write_run(tmp_path / "r", [("q", "my doc", 1, 1.0)], "t")
    with pytest.raises(UsageError, match="no such file"):
        trec.read_run(tmp_path / "missing")


def test_trec_order_is_score_then_docno_descending() -> None:
    assert trec.trec_order({"a": 1.0, "b": 1.0, "c": 2.0, "é": 1.0}) == ["c", "é", "b", "a"]
