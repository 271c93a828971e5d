"""The languages of issue 27 end to end, offline: train a tiny model on the mMARCO fixture,
evaluate it zero-shot on the Tatoeba and Belebele fixtures, report seen and unseen languages;
and ``experiments/mmarco_study.toml`` dry-run against fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from xlrun.cli import main

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
MMARCO = FIXTURES / "hub" / "unicamp-dl" / "mmarco"
BELEBELE = FIXTURES / "hub" / "facebook" / "belebele"
TATOEBA = FIXTURES / "tatoeba"

SPEC = f"""
[experiment]
name = "langs"
output_dir = "{{out}}"
[model]
name = "quickstart:tiny"
query_max_length = 32
passage_max_length = 48
[train_data]
source = "mmarco"
path = "{MMARCO}"
max_per_language = 12
negatives = 2
[sampling]
strategy = "hybrid"
similarity = "uriel:syntax_knn"
n_clusters = 2
[train]
steps = 4
batch_size = 4
hard_negatives = 1
lr = 2e-3
log_every = 2
[[eval]]
dataset = "belebele"
path = "{BELEBELE}"
pairs = [["*", "en"], ["en", "*"]]
top_k = 2
[[eval]]
dataset = "tatoeba"
path = "{TATOEBA}"
settings = ["cross"]
measures = ["P@1"]
top_k = 2
[grid]
"train.steps" = [0, 4, 4]
"sampling.language_sampling" = ["size", "size", "clustered"]
zip = [["train.steps", "sampling.language_sampling"]]
"""


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An untrained, a hybrid/size and a hybrid/clustered run, evaluated on both datasets."""
    tmp = tmp_path_factory.mktemp("langs")
    mp = pytest.MonkeyPatch()
    mp.setenv("XLRUN_CACHE", str(tmp / "cache"))
    spec = tmp / "spec.toml"
    spec.write_text(SPEC.format(out=tmp / "out"), encoding="utf-8")
    db = f"sqlite:///{tmp / 'langs.db'}"
    try:
        result = CliRunner().invoke(main, ["submit", str(spec), "--db", db, "--device", "cpu"])
    finally:
        mp.undo()
    assert result.exit_code == 0, result.output
    assert "3 done, 0 failed" in result.output
    return db


def _sql(db: str, query: str) -> pl.DataFrame:
    result = CliRunner().invoke(main, ["sql", query, "--db", db, "--format", "csv"])
    assert result.exit_code == 0, result.output
    import io

    return pl.read_csv(io.StringIO(result.stdout))


def test_every_run_stored_both_datasets_per_query(done: str) -> None:
    cells = _sql(done, "SELECT dataset, setting, query_lang, doc_lang, COUNT(*) AS n "
                       "FROM query_results GROUP BY 1, 2, 3, 4")
    tatoeba = cells.filter(pl.col("dataset") == "tatoeba")
    assert set(tatoeba["setting"]) == {"cross"}
    pairs = set(zip(tatoeba["query_lang"], tatoeba["doc_lang"], strict=True))
    xx = {"ast", "ber", "de", "fr", "zh"}
    assert pairs == {(x, "en") for x in xx} | {("en", x) for x in xx}
    assert set(tatoeba["n"]) == {3 * 5}  # 3 runs × 5 sentences
    belebele = cells.filter(pl.col("dataset") == "belebele")
    assert set(belebele["setting"]) == {"mono", "cross", "multi"}
    assert {"bn-Latn", "zh-Hant", "acm"} <= set(belebele["query_lang"])
    cross = belebele.filter(pl.col("setting") == "cross")
    assert all("en" in (q, d) for q, d in zip(cross["query_lang"], cross["doc_lang"],
                                                strict=True))


def test_tatoeba_accuracy_is_p_at_1(done: str) -> None:
    """P@1 (bitext mining accuracy) stored per query equals first_relevant_rank = 1."""
    both = _sql(done, "SELECT m.value, q.first_relevant_rank FROM query_measures m JOIN "
                      "query_results q USING (run_id, dataset, split, setting, query_lang, "
                      "doc_lang, query_id) WHERE m.dataset = 'tatoeba' AND m.measure = 'P@1'")
    assert both.height == 3 * 50
    assert (both["value"] == (both["first_relevant_rank"] == 1).cast(pl.Float64)).all()
    result = CliRunner().invoke(main, ["report", "--db", done, "--dataset", "tatoeba",
                                       "--metric", "P@1", "--by", "language"])
    assert result.exit_code == 0, result.output
    assert "[unseen]" in result.stdout and "P@1" in result.stdout


def test_report_by_language_marks_seen_and_unseen(done: str) -> None:
    for dataset, unseen in (("tatoeba", {"ast", "ber", "zh"}),
                            ("belebele", {"acm", "bn", "bn-Latn", "zh-Hant"})):
        result = CliRunner().invoke(main, [
            "report", "--db", done, "--dataset", dataset, "--by", "language", "--compare",
            "arm", "--baseline", "hybrid/size", "--format", "json"])
        assert result.exit_code == 0, result.output
        rep = json.loads(result.stdout)
        f = pl.DataFrame(rep["rows"] if "rows" in rep else rep["data"], infer_schema_length=None)
        trained = f.filter(pl.col("arm") != "none")
        status = dict(zip(trained["language"], trained["status"], strict=False))
        assert {lang for lang, s in status.items() if s == "unseen"} == unseen | {"[unseen]"}
        assert status["en"] == status["de"] == "seen" and status["[seen]"] == "seen"
        clustered = trained.filter(pl.col("arm").str.starts_with("hybrid/clustered"))
        near = dict(zip(clustered["language"], clustered["nearest_cluster"], strict=True))
        assert all(near[lang] for lang in unseen - {"ber"})
        batches = _sql(done, "SELECT DISTINCT b.query_lang, b.doc_lang FROM batch_languages b "
                             "JOIN runs r ON r.id = b.run_id "
                             "WHERE r.language_sampling = 'clustered'")
        for lang in ("de", "en", "fr"):
            sides = ("q" if lang in batches["query_lang"].to_list() else "") + (
                "p" if lang in batches["doc_lang"].to_list() else "")
            want = {"qp": "q+p", "q": "q", "p": "p", "": "-"}[sides]
            assert clustered.filter(pl.col("language") == lang)["trained"].to_list() in (
                [want], [])


def test_regress_takes_the_distance_to_training(done: str) -> None:
    result = CliRunner().invoke(main, [
        "report", "--db", done, "--dataset", "belebele", "--setting", "cross", "--regress",
        "--term", "distance_to_training", "--compare", "arm", "--baseline", "hybrid/size",
        "--format", "json"])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)["meta"]
    trained = set(meta["trained_languages"])
    assert trained <= {"de", "en", "fr"} and {"de", "en"} <= trained
    dtt = meta["distance_to_training"]
    assert dtt["en"] == 0.0 and min(dtt[x] for x in ("acm", "bn", "zh-Hant")) > 0


def test_the_mmarco_study_dry_runs_against_fixtures(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """``experiments/mmarco_study.toml`` with its paths pointed at fixtures: the training
    corpus (a generated mMARCO tree large enough for its batch size) and the local
    evaluation folders are read, every arm's sampler is built, nothing is written."""
    tree = tmp_path / "mmarco"
    langs = ("english", "german", "french")
    for name in langs:
        for sub, text in (("collections", "{name} passage {i} answers question {i}"),
                          ("queries/train", "{name} question {i}")):
            folder = tree / "data" / "google" / sub
            folder.mkdir(parents=True, exist_ok=True)
            n = 400 if sub == "collections" else 200
            suffix = "_collection.tsv" if sub == "collections" else "_queries.train.tsv"
            (folder / f"{name}{suffix}").write_text(
                "".join(f"{i}\t{text.format(name=name, i=i)}\n" for i in range(n)))
    (tree / "data" / "triples.train.ids.small.tsv").write_text(
        "".join(f"{i}\t{i}\t{200 + i}\n" for i in range(200)))
    for var, value in (("XLRUN_MMARCO", tree), ("XLRUN_BELEBELE", BELEBELE),
                       ("XLRUN_TATOEBA", TATOEBA), ("XLRUN_XQUADR", FIXTURES / "lareqa"),
                       ("XLRUN_MLQAR", FIXTURES / "lareqa"), ("XLRUN_MODEL", "quickstart:tiny"),
                       ("XLRUN_CACHE", tmp_path / "cache"), ("XLRUN_OUTPUT", tmp_path / "out")):
        monkeypatch.setenv(var, str(value))
    db = tmp_path / "dry.db"
    result = CliRunner().invoke(main, ["submit", str(REPO / "experiments" / "mmarco_study.toml"),
                                       "--dry-run", "--db", f"sqlite:///{db}"])
    assert result.exit_code == 0, result.output
    assert "21 runs" in result.output and "hybrid/clustered" in result.output
    assert not db.exists()
