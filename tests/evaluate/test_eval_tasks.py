"""Dataset loaders: LAReQA parsing, local layouts of mldr/miracl/local, real-data counts."""

from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

import pytest

from xlrun.data.lareqa import read_language, train_corpus, train_examples
from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.tasks import DATASETS, load_dataset
from xlrun.spec.schema import EvalSection

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def test_registry_names() -> None:
    assert {"xquad-r", "mlqa-r", "mldr", "miracl", "local"} <= set(DATASETS.names())
    with pytest.raises(SpecError, match="allowed"):
        DATASETS.check("nope", "eval.dataset")


def test_lareqa_parse_answer_sentence_and_xz(tmp_path: Path) -> None:
    en = read_language(FIX / "lareqa", "en")
    assert [q.id for q in en.questions] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    q3 = en.questions[2]
    assert (q3.paragraph, q3.sentence) == (0, 2)
    assert en.answer(q3).startswith("A barn owl")
    assert en.answer(en.questions[3]) == "The museum opens at nine."
    # the same data compressed reads identically
    with lzma.open(tmp_path / "en.json.xz", "wt", encoding="utf-8") as f:
        f.write((FIX / "lareqa" / "en.json").read_text(encoding="utf-8"))
    assert read_language(tmp_path, "en") == en
    with pytest.raises(UsageError, match="languages there"):
        read_language(tmp_path, "fr")


def test_lareqa_train_examples() -> None:
    ex = train_examples(FIX / "lareqa", ["de", "en"])
    assert len(ex) == 11
    first = ex[0]
    assert (first.parallel_id, first.lang, first.passage) == ("q1", "de", "Eulen jagen meist nachts.")
    corpus = train_corpus(FIX / "lareqa", max_per_language=2)
    assert corpus.languages == ["de", "en"] and len(corpus) == 4
    assert corpus.shared_ids("en", "de") == ["q1", "q2"]


def test_lareqa_eval_data_dedupe(tmp_path: Path) -> None:
    shutil.copytree(FIX / "lareqa", tmp_path / "x")
    data = load_dataset(EvalSection("xquad-r", path=str(tmp_path / "x")))
    assert data.parallel and data.languages == ["de", "en"]
    assert len(data.corpus["en"]) == 6 and len(data.corpus["de"]) == 6
    ids = [d.id for docs in data.corpus.values() for d in docs]
    assert len(ids) == len(set(ids))
    assert data.qrels[("en", "q2")] == {"en:1", "de:1"}
    assert data.qrels[("de", "q4")] == {"en:3", "de:3"}
    assert data.qrels[("en", "q6")] == {"en:5"}  # absent in de
    pos = load_dataset(EvalSection("xquad-r", path=str(tmp_path / "x"), dedupe="position"))
    assert len(pos.corpus["en"]) == 7
    assert pos.qrels[("en", "q5")] == {"en:5", "de:4"}
    one = load_dataset(EvalSection("xquad-r", path=str(tmp_path / "x"), languages=["deu"],
                                   max_queries_per_language=3))
    assert one.languages == ["de"] and len(one.queries["de"]) == 3
    assert all(d.startswith("de:") for rel in one.qrels.values() for d in rel)
    with pytest.raises(SpecError, match="allowed"):
        load_dataset(EvalSection("xquad-r", path=str(tmp_path / "x"), languages=["fr"]))


def test_subsample_keeps_parallel_ids() -> None:
    data = load_dataset(EvalSection("xquad-r", path=str(FIX / "lareqa"),
                                    max_queries_per_language=3))
    en = {q.id for q in data.queries["en"]}
    de = {q.id for q in data.queries["de"]}
    assert len(en) == len(de) == 3
    again = load_dataset(EvalSection("xquad-r", path=str(FIX / "lareqa"),
                                     max_queries_per_language=3))
    assert {q.id for q in again.queries["en"]} == en


def test_mldr_local_layout() -> None:
    data = load_dataset(EvalSection("mldr", path=str(FIX / "mldr")))
    assert not data.parallel and data.languages == ["de", "en"]
    assert len(data.queries["en"]) == 3 and len(data.corpus["en"]) == 4
    assert data.qrels[("en", "q-en-1")] == {"en:d1"}
    assert ("en", "q-en-3") not in data.qrels  # positive not in corpus
    assert data.qrels[("de", "q-de-1")] == {"de:d1"}
    dev = load_dataset(EvalSection("mldr", path=str(FIX / "mldr"), split="dev",
                                   languages=["de"]))
    assert [q.id for q in dev.queries["de"]] == ["q-de-dev"]
    with pytest.raises(UsageError, match="queries-dev"):
        load_dataset(EvalSection("mldr", path=str(FIX / "mldr"), split="dev"))
    with pytest.raises(SpecError, match="split"):  # checked at submit, by the dataset
        DATASETS.get("mldr").validate(EvalSection("mldr", path=str(FIX / "mldr"), split="train"),
                                      "eval[0]")


def test_miracl_local_layout() -> None:
    data = load_dataset(EvalSection("miracl", path=str(FIX / "miracl"), split="dev"))
    assert data.languages == ["fr"]
    assert data.qrels[("fr", "8")] == {"fr:102#1", "fr:101#2"}
    texts = {d.id: d.text for d in data.corpus["fr"]}
    assert texts["fr:100#0"].startswith("Ottawa Ottawa est")
    assert texts["fr:103#0"] == "Un texte sans titre."


def test_local_layout() -> None:
    data = load_dataset(EvalSection("local", path=str(FIX / "local_eval")))
    assert data.parallel and data.languages == ["de", "en"]
    assert data.qrels[("de", "p1")] == {"en-mars", "de-mars"}
    assert data.qrels[("en", "p2")] == {"en-panda", "de-panda"}  # relevance 0 dropped
    assert data.qrels[("de", "p3")] == {"de-gepard"}
    assert [q.lang for q in data.queries["de"]] == ["de", "de", "de"]


def test_local_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="path"):
        load_dataset(EvalSection("local"))
    (tmp_path / "queries.jsonl").write_text('{"id": "a", "lang": "en", "text": "t"}\n')
    (tmp_path / "corpus.jsonl").write_text('{"id": "d", "lang": "en", "text": "t"}\n' * 2)
    (tmp_path / "qrels.tsv").write_text("query_id\tdoc_id\na\td\n")
    with pytest.raises(UsageError, match="twice"):
        load_dataset(EvalSection("local", path=str(tmp_path)))
    (tmp_path / "corpus.jsonl").write_text('{"id": "d", "lang": "en", "text": "t"}\n')
    (tmp_path / "meta.json").write_text(json.dumps({"parallel": True}))
    assert load_dataset(EvalSection("local", path=str(tmp_path))).parallel


# ---- real data (../shared), skipped when absent --------------------------------------


def _shared(name: str) -> Path:
    path = SHARED / "data" / name
    if not path.is_dir():
        pytest.skip(f"{path} not available")
    return path


def test_xquad_r_counts() -> None:
    path = _shared("xquad-r")
    data = load_dataset(EvalSection("xquad-r", path=str(path), languages=["en", "th", "ar", "zh"]))
    assert {lang: len(q) for lang, q in data.queries.items()} == dict.fromkeys(
        ["ar", "en", "th", "zh"], 1190)
    assert {lang: len(c) for lang, c in data.corpus.items()} == {
        "en": 1180, "th": 852, "ar": 1220, "zh": 1192}
    assert all(len(rel) == 4 for rel in data.qrels.values())
    pos = load_dataset(EvalSection("xquad-r", path=str(path), languages=["ar", "zh"],
                                   dedupe="position"))
    assert {lang: len(c) for lang, c in pos.corpus.items()} == {"ar": 1222, "zh": 1196}


def test_mlqa_r_counts() -> None:
    path = _shared("mlqa-r")
    data = load_dataset(EvalSection("mlqa-r", path=str(path), languages=["en", "de", "hi"]))
    assert {lang: len(q) for lang, q in data.queries.items()} == {
        "en": 1148, "de": 512, "hi": 507}
    assert len(data.corpus["hi"]) == 2419 and len(data.corpus["en"]) == 6262
    ex = train_examples(path, ["de"])
    assert len(ex) == 512 and all(e.passage for e in ex)
