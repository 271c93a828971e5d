"""`xlrun export-trec`: ir_measures on the exported run and qrels gives xlrun's stored
measures — from the stored top-k lists, and from the model when the run kept too few."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from trec_fixtures import invoke

from xlrun.formats import trec

ir_measures = pytest.importorskip("ir_measures")


def stored(db: str, run_id: int) -> dict[tuple[str, str], float]:
    """(measure, trec query id) → value, from query_measures and the query_results columns."""
    con = sqlite3.connect(db.removeprefix("sqlite:///"))
    out = {}
    for m, s, x, y, q, v in con.execute(
            "SELECT measure, setting, query_lang, doc_lang, query_id, value FROM query_measures "
            "WHERE run_id = ?", (run_id,)):
        out[(m, f"{s}/{x}/{y}/{q}")] = v
    for s, x, y, q, ap, nd, rr, rec in con.execute(
            "SELECT setting, query_lang, doc_lang, query_id, ap, ndcg_at_10, mrr_at_10, "
            "recall_at_100 FROM query_results WHERE run_id = ?", (run_id,)):
        key = f"{s}/{x}/{y}/{q}"
        out.update({("ap", key): ap, ("nDCG@10", key): nd, ("RR@10", key): rr,
                    ("R@100", key): rec})
    con.close()
    return out


def rescored(folder: Path, run_id: int, names: list[str]) -> dict[tuple[str, str], float]:
    """ir_measures on the exported files (pytrec_eval where it computes the measure)."""
    qrels = list(ir_measures.read_trec_qrels(str(folder / "quickstart.test.qrels")))
    run = list(ir_measures.read_trec_run(str(folder / f"run{run_id}.quickstart.test.run")))
    measures = [ir_measures.parse_measure(n) for n in names]
    return {(str(m.measure), m.query_id): m.value
            for m in ir_measures.iter_calc(measures, qrels, run)}


def compare(ref: dict, ours: dict, names: list[str]) -> float:
    keys = [k for k in ref if k[0] in names]
    assert {k[1] for k in keys} == {k[1] for k in ours if k[0] == "ap"}  # every query
    return max(abs(ref[k] - ours[k]) for k in keys)


def test_stored_top_k_rescores_to_the_stored_measures(trec_db: tuple[str, Path]) -> None:
    db, tmp = trec_db
    out = tmp / "top20"
    text = invoke("export-trec", "1", "2", "--out", out, "--top-k", "20", "--topics", "--db", db)
    assert "re-encoding" not in text
    names = ["nDCG@10", "RR@10", "nDCG@20", "P@5", "AP@10", "Success@1", "RR@5"]
    for run_id in (1, 2):
        assert compare(rescored(out, run_id, names), stored(db, run_id), names) <= 1e-9
    lines = (out / "run1.quickstart.test.run").read_text().splitlines()
    assert len(lines) == 120 * 20 and lines[0].split()[0] == "cross/de/en/q0"
    topics = (out / "quickstart.test.topics.tsv").read_text().splitlines()
    assert len(topics) == 120 and topics[0].startswith("cross/de/en/q0\t")
    # qrels: each query's relevant documents within the collection its setting searched
    judged = trec.read_qrels(out / "quickstart.test.qrels")
    assert all(d.startswith("en:") for q, docs in judged.items() if q.startswith("mono/en/")
               for d in docs)
    assert any(len(docs) == 2 for q, docs in judged.items() if q.startswith("multi/"))


def test_a_deeper_export_reencodes_with_the_runs_model(trec_db: tuple[str, Path]) -> None:
    """Top 1000 > the 20 the runs kept: the saved model (run 1, trained) and the base model
    (run 2) rank again; the collections are smaller than 1000, so whole-ranking measures
    (AP, nDCG) rescore exactly too."""
    db, tmp = trec_db
    out = tmp / "full"
    text = invoke("export-trec", "1", "2", "--out", out, "--top-k", "1000", "--device", "cpu",
                  "--db", db)
    assert "re-encoding" in text and "differs from the stored AP by at most 0" in text
    names = ["AP", "nDCG", "R@50", "R@100", "nDCG@20"]
    for run_id in (1, 2):
        ref = rescored(out, run_id, names)
        ours = stored(db, run_id)
        ours.update({("AP", k): v for (m, k), v in list(ours.items()) if m == "ap"})
        assert compare(ref, ours, names) <= 1e-9


def test_export_errors_exit_2_and_name_the_fault(trec_db: tuple[str, Path]) -> None:
    db, tmp = trec_db
    assert "no run with id 99" in invoke("export-trec", "99", "--out", tmp / "x", "--db", db,
                                         code=2)
    assert "has no results for mldr" in invoke("export-trec", "1", "--out", tmp / "x",
                                               "--dataset", "mldr", "--db", db, code=2)
