"""The BEIR layout (``corpus.jsonl`` with ``_id``/``title``/``text``, ``queries.jsonl``,
``qrels/<split>.tsv``): read by ``local`` (detected by its ``qrels/`` folder) and ``beir``;
one language per folder, named by the spec, or a folder of such folders named by language;
and a BEIR folder evaluated end to end, its own qrels re-scoring xlrun's numbers."""

from __future__ import annotations

import json
from pathlib import Path

import ir_measures
import pytest
from click.testing import CliRunner
from ir_measures import AP, RR, R, nDCG
from sqlalchemy import text

from xlrun.cli import main
from xlrun.db.engine import get_engine
from xlrun.db.run_results import metric_rows
from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.tasks import DATASETS, load_dataset
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec
from xlrun.spec.schema import EvalSection

WORDS = ["river", "stone", "lamp", "garden", "window", "bread", "music", "winter", "copper",
         "paper", "harbour", "candle", "forest", "ladder", "orange", "silver"]


def write_beir(folder: Path, n_docs: int = 24, n_queries: int = 8, tag: str = "") -> Path:
    """A BEIR folder of made-up texts: query i is about document 2i (score 1), document 2i+1
    is judged not relevant (score 0), and two queries belong to the train split only."""
    (folder / "qrels").mkdir(parents=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as f:
        for i in range(n_docs):
            words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(6))
            f.write(json.dumps({"_id": f"d{i}", "title": f"{tag}title {WORDS[i % 16]}",
                                "text": f"{words} {i}", "metadata": {}}) + "\n")
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as f:
        for i in range(n_queries + 2):
            f.write(json.dumps({"_id": f"q{i}", "text": f"{tag}which {WORDS[(2 * i) % 16]} "
                                f"{WORDS[(2 * i + 1) % 16]} {2 * i}?", "metadata": {}}) + "\n")
    test = ["query-id\tcorpus-id\tscore"]
    for i in range(n_queries):
        test += [f"q{i}\td{2 * i}\t1", f"q{i}\td{2 * i + 1}\t0"]
    (folder / "qrels" / "test.tsv").write_text("\n".join(test) + "\n", encoding="utf-8")
    train = ["query-id\tcorpus-id\tscore"] + [f"q{n_queries + k}\td{k}\t1" for k in range(2)]
    (folder / "qrels" / "train.tsv").write_text("\n".join(train) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("dataset", ["local", "beir"])
def test_a_beir_folder_loads(tmp_path: Path, dataset: str) -> None:
    folder = write_beir(tmp_path / "scifive")
    data = load_dataset(EvalSection(dataset, path=str(folder), languages=["en"]))
    assert data.dataset == dataset and data.languages == ["en"] and not data.parallel
    assert [q.id for q in data.queries["en"]] == [f"q{i}" for i in range(8)]  # test split only
    assert data.queries["en"][1].text == "which lamp garden 2?"
    docs = {d.id: d for d in data.corpus["en"]}
    assert len(docs) == 24 and docs["d3"].text == "title garden garden window bread music winter copper 3"
    assert data.qrels[("en", "q3")] == {"d6"}  # score 0 is not relevant
    train = load_dataset(EvalSection(dataset, path=str(folder), split="train", languages=["en"]))
    assert [q.id for q in train.queries["en"]] == ["q8", "q9"]
    assert train.qrels[("en", "q9")] == {"d1"}


def test_a_beir_folder_is_checked_at_submit(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "b")
    base = ('[experiment]\nname = "b"\n[model]\nname = "quickstart:tiny"\n[train]\nsteps = 0\n'
            f'[[eval]]\ndataset = "local"\npath = "{folder}"\n')
    cases = [("", "eval[0].languages", "holds one language"),
             ('languages = ["en", "de"]\n', "eval[0].languages", "holds one language"),
             ('languages = ["en"]\nsplit = "dev"\n', "eval[0].split", "one of: test, train")]
    for extra, path, words in cases:
        for name in ("local", "beir"):
            with pytest.raises(SpecError) as err:
                compile_spec(parse_spec(base.replace('"local"', f'"{name}"') + extra))
            assert err.value.path == path and words in str(err.value), str(err.value)
    (run,) = compile_spec(parse_spec(base + 'languages = ["eng"]\n'))
    assert run.config.eval[0].languages == ["en"]
    # beir refuses a folder in the other layout; local reads it as before
    plain = Path(__file__).resolve().parents[1] / "fixtures" / "local_eval"
    with pytest.raises(SpecError) as err:
        DATASETS.get("beir").validate(EvalSection("beir", path=str(plain)), "eval[0]")
    assert err.value.path == "eval[0].path"
    assert load_dataset(EvalSection("local", path=str(plain))).languages


def test_bad_qrels_are_named(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "b")
    (folder / "qrels" / "test.tsv").write_text("qid\tdocid\trel\nq1\td1\t1\n")
    with pytest.raises(UsageError, match="header row must be query-id corpus-id score"):
        load_dataset(EvalSection("local", path=str(folder), languages=["en"]))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n")
    with pytest.raises(UsageError, match=r"test.tsv:2: score 'high'"):
        load_dataset(EvalSection("local", path=str(folder), languages=["en"]))


def test_a_folder_of_beir_folders_is_multilingual(tmp_path: Path) -> None:
    for lang in ("de", "fr"):
        write_beir(tmp_path / "multi" / lang, n_queries=4, tag=lang)
    (tmp_path / "multi" / "notes").mkdir()
    folder = tmp_path / "multi"
    data = load_dataset(EvalSection("local", path=str(folder)))
    assert data.languages == ["de", "fr"] and not data.parallel
    assert data.qrels[("fr", "q2")] == {"fr:d4"}  # ids repeat across languages: prefixed
    assert {d.id for d in data.corpus["de"]} == {f"de:d{i}" for i in range(24)}
    only = load_dataset(EvalSection("beir", path=str(folder), languages=["fr"]))
    assert only.languages == ["fr"]
    with pytest.raises(SpecError, match="has no language 'es'"):
        DATASETS.get("local").validate(EvalSection("local", path=str(folder), languages=["es"]),
                                       "eval[0]")
    (folder / "meta.json").write_text('{"parallel": true}')
    data = load_dataset(EvalSection("local", path=str(folder)))
    assert data.parallel and data.qrels[("fr", "q2")] == {"fr:d4", "de:d4"}


def test_a_beir_folder_evaluates_and_its_qrels_rescore_the_stored_numbers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = write_beir(tmp_path / "scifive")
    db = f"sqlite:///{tmp_path / 'b.db'}"
    result = CliRunner().invoke(main, [
        "evaluate", "quickstart:tiny", "--dataset", "local", "--data-path", str(folder),
        "--langs", "en", "--settings", "mono", "--top-k", "24", "--db", db, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "mono" in result.stdout and "en" in result.stdout
    engine = get_engine(db)
    with engine.connect() as conn:
        retrieved = conn.execute(text("SELECT query_id, doc_id, score FROM retrieved")).all()
    run: dict[str, dict[str, float]] = {}
    for q, d, score in retrieved:
        run.setdefault(q, {})[d] = score
    assert sorted(run) == [f"q{i}" for i in range(8)] and all(len(d) == 24 for d in run.values())
    qrels = list(ir_measures.read_trec_qrels(_trec_qrels(folder / "qrels" / "test.tsv")))
    want = ir_measures.calc_aggregate([AP, nDCG @ 10, RR @ 10, R @ 100], qrels, run)
    stored = {r["metric"]: r["value"] for r in metric_rows(engine, 1) if r["query_lang"] == "all"}
    got = {AP: stored["map"], nDCG @ 10: stored["ndcg@10"], RR @ 10: stored["mrr@10"],
           R @ 100: stored["recall@100"]}
    for measure, value in want.items():
        assert got[measure] == pytest.approx(value, abs=1e-9), measure


def _trec_qrels(tsv: Path) -> str:
    """The BEIR qrels file as TREC qrels text (``qid 0 docid rel``), for ir_measures."""
    rows = [line.split("\t") for line in tsv.read_text().splitlines()[1:] if line]
    path = tsv.with_suffix(".trec")
    path.write_text("".join(f"{q} 0 {d} {s}\n" for q, d, s in rows))
    return str(path)


def test_graded_beir_qrels_keep_their_grades(tmp_path: Path) -> None:
    folder = write_beir(tmp_path / "graded")
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text(encoding="utf-8") + "q0\td5\t2\nq1\td7\t0.5\n",
                     encoding="utf-8")
    data = load_dataset(EvalSection("beir", path=str(folder), languages=["en"]))
    assert data.qrels[("en", "q0")] == frozenset({"d0", "d5"})
    assert data.grades[("en", "q0")] == {"d5": 2}  # grade 1 is the default, not stored
    assert data.grade(data.queries["en"][0], "d5") == 2
    assert data.grade(data.queries["en"][0], "d0") == 1
    assert "d7" in data.qrels[("en", "q1")] and ("en", "q1") not in data.grades  # 0.5 → 1
