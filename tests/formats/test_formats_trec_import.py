"""`xlrun import-run`: an external TREC run (a small BM25 written here) is evaluated like
trec_eval evaluates it, stored as a run of its own, and compared like any arm."""

from __future__ import annotations

import collections
import json
import math
import sqlite3
from pathlib import Path

import pytest
from trec_fixtures import invoke

from xlrun.evaluate.tasks import load_dataset
from xlrun.formats import trec
from xlrun.spec.schema import EvalSection

ir_measures = pytest.importorskip("ir_measures")


def _tokens(text: str) -> list[str]:
    return [w.strip("?.,!;:").lower() for w in text.split()]


def bm25_run(topics: Path, out: Path, depth: int = 100) -> None:
    """BM25 (k1 = 1.2, b = 0.75) over the quickstart collections, one ranking per query of
    the topics file, searched in the collection its setting names; every 40th query is left
    out (a system that returned nothing for it)."""
    data = load_dataset(EvalSection("quickstart", languages=["en", "de"]))
    docs = {d.id: (d.lang, _tokens(d.text)) for ds in data.corpus.values() for d in ds}
    n = len(docs)
    df = collections.Counter(w for _, t in docs.values() for w in set(t))
    avg = sum(len(t) for _, t in docs.values()) / n

    def score(q: list[str], d: list[str]) -> float:
        tf = collections.Counter(d)
        return sum(math.log(1 + (n - df[w] + 0.5) / (df[w] + 0.5)) * tf[w] * 2.2
                   / (tf[w] + 1.2 * (0.25 + 0.75 * len(d) / avg)) for w in q if w in tf)

    rows = []
    for i, line in enumerate(topics.read_text(encoding="utf-8").splitlines()):
        qid, text = line.split("\t")
        if i % 40 == 0:
            continue
        key = trec.parse_query_id(qid)
        ranked = sorted(((score(_tokens(text), t), d) for d, (lang, t) in docs.items()
                         if key.doc_lang in ("all", lang)), key=lambda x: (-x[0], x[1]))
        rows += [(qid, d, i + 1, s) for i, (s, d) in enumerate(ranked[:depth]) if s > 0]
    trec.write_run(out, rows, "bm25")


@pytest.fixture(scope="module")
def imported(trec_db: tuple[str, Path]) -> tuple[str, Path, Path]:
    db, tmp = trec_db
    folder = tmp / "for-bm25"
    invoke("export-trec", "1", "--out", folder, "--top-k", "1", "--topics", "--db", db)
    run_file = tmp / "bm25.run"
    bm25_run(folder / "quickstart.test.topics.tsv", run_file)
    text = invoke("import-run", run_file, "--like", "1", "--name", "bm25", "--experiment",
                  "trec", "--db", db)
    assert "imported bm25 as run 3" in text and "3 evaluated queries have no line" in text
    return db, run_file, folder / "quickstart.test.qrels"


def test_the_imported_run_is_measured_as_trec_eval_measures_it(
        imported: tuple[str, Path, Path]) -> None:
    """Every stored value of the imported run equals ir_measures on the run file itself
    (depth 100, queries without any scored document absent from it), AP included."""
    db, run_file, qrels_file = imported
    con = sqlite3.connect(db.removeprefix("sqlite:///"))
    ours = {(m, f"{s}/{x}/{y}/{q}"): v for m, s, x, y, q, v in con.execute(
        "SELECT measure, setting, query_lang, doc_lang, query_id, value FROM query_measures "
        "WHERE run_id = 3")}
    for s, x, y, q, ap, nd, rec in con.execute(
            "SELECT setting, query_lang, doc_lang, query_id, ap, ndcg_at_10, recall_at_100 "
            "FROM query_results WHERE run_id = 3"):
        ours.update({("AP", f"{s}/{x}/{y}/{q}"): ap, ("nDCG@10", f"{s}/{x}/{y}/{q}"): nd,
                     ("R@100", f"{s}/{x}/{y}/{q}"): rec})
    n_queries = con.execute("SELECT COUNT(*) FROM query_results WHERE run_id = 3").fetchone()[0]
    same = con.execute("SELECT COUNT(*) FROM query_results a JOIN query_results b USING "
                       "(dataset, split, setting, query_lang, doc_lang, query_id) "
                       "WHERE a.run_id = 3 AND b.run_id = 1").fetchone()[0]
    arm = con.execute("SELECT sampler, language_sampling, status FROM runs WHERE id = 3"
                      ).fetchone()
    con.close()
    assert n_queries == same == 120 and arm == ("bm25", None, "done")
    names = ["AP", "nDCG@10", "R@100", "nDCG", "nDCG@20", "P@5", "AP@10", "Success@1", "R@50"]
    qrels = list(ir_measures.read_trec_qrels(str(qrels_file)))
    run = list(ir_measures.read_trec_run(str(run_file)))
    ref = {(str(m.measure), m.query_id): m.value for m in ir_measures.pytrec_eval.iter_calc(
        [ir_measures.parse_measure(n) for n in names], qrels, run)}
    in_run = {r.query_id for r in run}
    assert len(in_run) == 117  # queries without a line: every measure 0 (trec_eval -c)
    assert max(abs(ref[k] - ours[k]) for k in ref) <= 1e-9
    assert {ours[k] for k in ours if k[1] not in in_run} == {0.0}


def test_the_imported_run_is_an_arm_of_the_report(imported: tuple[str, Path, Path]) -> None:
    db = imported[0]
    text = invoke("report", "--experiment", "trec", "--by", "setting", "--compare", "arm",
                  "--baseline", "bm25", "--metric", "nDCG@20", "--test", "query",
                  "--format", "json", "--db", db)
    rows = json.loads(text[text.index("{"):text.rindex("}") + 1])["rows"]
    arms = {(r["setting"], r["arm"]): r for r in rows}
    assert {a for _, a in arms} == {"bm25", "hybrid/size", "none"}
    for setting in ("mono", "cross", "multi"):
        assert arms[(setting, "bm25")]["mark"] == "baseline"
        assert arms[(setting, "hybrid/size")]["n_paired"] == 20
        assert arms[(setting, "hybrid/size")]["p"] is not None


def test_import_is_idempotent_and_errors_name_the_fault(imported: tuple[str, Path, Path],
                                                       tmp_path: Path) -> None:
    db, run_file, _ = imported
    assert "already imported: run 3" in invoke("import-run", run_file, "--like", "1", "--name",
                                               "bm25", "--experiment", "trec", "--db", db)
    plain = tmp_path / "plain.run"
    plain.write_text("q0 Q0 en:1 1 0.5 x\n")
    assert "not xlrun TREC ids" in invoke("import-run", plain, "--like", "1", "--name", "b2",
                                          "--experiment", "trec", "--db", db, code=2)
    stranger = tmp_path / "stranger.run"
    stranger.write_text("mono/en/en/q0 Q0 de:1 1 0.5 x\n")
    assert "not in the mono collection" in invoke(
        "import-run", stranger, "--like", "1", "--name", "b2", "--experiment", "trec",
        "--db", db, code=2)
    assert "label of xlrun's own arms" in invoke("import-run", run_file, "--like", "1",
                                                 "--name", "hybrid", "--db", db, code=2)
    assert "imported from a run file with top-k 20: export it with --top-k 20" in invoke(
        "export-trec", "3", "--out", tmp_path / "x", "--top-k", "50", "--db", db, code=2)
    con = sqlite3.connect(db.removeprefix("sqlite:///"))
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 3  # nothing written
    con.close()


def test_the_sql_of_docs_section_9_runs(imported: tuple[str, Path, Path]) -> None:
    """Every query of docs/sql.md section 9 runs on this database (nDCG@100 → nDCG@20, which
    it stores) and returns rows."""
    db = imported[0]
    docs = (Path(__file__).resolve().parents[2] / "docs" / "sql.md").read_text(encoding="utf-8")
    section = docs[docs.index("## 9. "):]
    blocks = section.split("```sql\n")[1:]
    assert len(blocks) == 3
    for block in blocks:
        query = block.split("```")[0].replace("'my-exp'", "'trec'").replace("nDCG@100", "nDCG@20")
        query = query.replace("'R@1000'", "'R@50'")
        out = invoke("sql", query, "--format", "csv", "--db", db)
        assert len(out.strip().splitlines()) > 1, query


def test_import_from_flags_into_a_new_database(imported: tuple[str, Path, Path],
                                               tmp_path: Path) -> None:
    """--dataset and its options instead of --like: the mono queries only (the rest of the
    file is ignored, with a note); a bad file leaves no database behind."""
    run_file = imported[1]
    db = f"sqlite:///{tmp_path / 'new.db'}"
    bad = tmp_path / "bad.run"
    bad.write_text("mono/en/en/q0 Q0 en:1 1\n")
    args = ["--dataset", "quickstart", "--langs", "en,de", "--max-queries-per-language", "20",
            "--settings", "mono", "--name", "bm25", "--experiment", "refs", "--db", db]
    assert "expected 6 fields" in invoke("import-run", bad, *args, code=2)
    assert not (tmp_path / "new.db").exists()
    text = invoke("import-run", run_file, *args, "--measures", "ndcg_cut.10,P@1")
    assert "imported bm25 as run 1 of experiment 'refs': 40 queries" in text
    assert "queries of the run are outside the evaluated settings" in text
    con = sqlite3.connect(tmp_path / "new.db")
    assert con.execute("SELECT DISTINCT measure FROM query_measures ORDER BY 1").fetchall() == \
        [("P@1",), ("nDCG@10",)]
    con.close()
