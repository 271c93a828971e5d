"""Training data sources: jsonl parsing, dispatch, language filter and subsampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xlrun.data.train_sources import load_train_corpus, select
from xlrun.data.train_sources.jsonl import read_jsonl, write_jsonl
from xlrun.data.types import TrainExample
from xlrun.errors import SpecError, UsageError
from xlrun.spec.schema import TrainDataSection

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def write(path: Path, rows: list) -> Path:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    return path


def test_jsonl_reads_columns_and_makes_unique_ids(tmp_path):
    f = write(tmp_path / "pairs.jsonl", [
        {"query": "wie alt?", "passage": "sehr alt.", "lang": "de", "parallel_id": 7},
        {"query": "how old?", "passage": "very old.", "lang": "en", "parallel_id": "7"},
        {"query": "where?", "passage": "here.", "lang": "eng"},
        {"query": "when?", "passage": "now.", "lang": "en"},
    ])
    ex = read_jsonl(f)
    assert [e.parallel_id for e in ex[:2]] == ["7", "7"]
    assert ex[2].lang == "en"  # normalised from ISO 639-3
    assert ex[2].parallel_id != ex[3].parallel_id
    corpus = load_train_corpus(TrainDataSection(source="jsonl", path=str(f)))
    assert corpus.languages == ["de", "en"]
    assert corpus.shared_ids("de", "en") == ["7"]
    assert corpus.size("en") == 3


def test_jsonl_round_trip(tmp_path):
    ex = [TrainExample("a", "de", "frage", "antwort"), TrainExample("a", "fr", "q", "r")]
    assert read_jsonl(write_jsonl(ex, tmp_path / "x.jsonl")) == ex


@pytest.mark.parametrize("row,match", [
    ({"query": "q", "lang": "en"}, "passage"),
    ({"query": "q", "passage": "p", "lang": "zz-nope"}, "zz-nope"),
    ("just a string", "JSON object"),
])
def test_jsonl_errors_name_the_line(tmp_path, row, match):
    f = write(tmp_path / "bad.jsonl", [{"query": "q", "passage": "p", "lang": "en"}, row])
    with pytest.raises(UsageError, match=match) as e:
        read_jsonl(f)
    assert "bad.jsonl:2" in str(e.value)


def test_jsonl_invalid_json(tmp_path):
    f = tmp_path / "broken.jsonl"
    f.write_text('{"query": "q", "passage": "p", "lang": "en"}\n{oops\n')
    with pytest.raises(UsageError, match="broken.jsonl:2"):
        read_jsonl(f)


def parallel(n: int, langs=("de", "en", "es")) -> list[TrainExample]:
    return [TrainExample(f"id{i}", lang, f"q{i}", f"p{i}") for lang in langs for i in range(n)]


def test_select_filters_and_subsamples_parallel_preserving():
    ex = parallel(50) + [TrainExample(f"x{i}", "de", "q", "p") for i in range(5)]
    out = select(ex, ["de", "en"], 10)
    by = {lang: {e.parallel_id for e in out if e.lang == lang} for lang in ("de", "en", "es")}
    assert len(by["en"]) == 10 and len(by["de"]) == 10 and not by["es"]
    assert len(by["de"] & by["en"]) >= 8  # the same ranking in every language
    assert select(list(reversed(ex)), ["de", "en"], 10) == list(reversed(out))  # order-free choice
    assert by["en"] != {f"id{i}" for i in range(10)}  # not simply the first N
    assert select(ex) == ex


def test_filter_errors(tmp_path):
    f = write(tmp_path / "p.jsonl", [{"query": "q", "passage": "p", "lang": "en"}])
    with pytest.raises(SpecError, match="train_data.languages"):
        load_train_corpus(TrainDataSection(source="jsonl", path=str(f), languages=["de"]))
    with pytest.raises(SpecError, match="train_data.languages.*de"):
        load_train_corpus(TrainDataSection(source="jsonl", path=str(f), languages=["en", "de"]))
    with pytest.raises(SpecError, match="train_data.source"):
        load_train_corpus(TrainDataSection(source="none"))


def test_quickstart_dispatch():
    corpus = load_train_corpus(TrainDataSection(source="quickstart", languages=["de", "en"],
                                                max_per_language=20))
    assert corpus.languages == ["de", "en"]
    assert corpus.size("de") == 20 and len(corpus.shared_ids("de", "en")) == 20


def test_lareqa_dispatch(monkeypatch):
    import xlrun.data.lareqa as lareqa

    seen = {}

    def fake(path, languages=None, max_per_language=0):
        seen["args"] = (path, languages)
        return parallel(30, ("ar", "de"))

    monkeypatch.setattr(lareqa, "train_examples", fake)
    corpus = load_train_corpus(TrainDataSection(source="lareqa", path="/some/folder",
                                                languages=["ar", "de"], max_per_language=5))
    assert seen["args"] == ("/some/folder", ["ar", "de"])
    assert corpus.size("ar") == corpus.size("de") == 5


def test_lareqa_real_data():
    folder = SHARED / "data" / "xquad-r"
    if not folder.is_dir():
        pytest.skip("shared XQuAD-R data not present")
    corpus = load_train_corpus(TrainDataSection(source="lareqa", path=str(folder),
                                                languages=["de", "en"], max_per_language=100))
    assert corpus.languages == ["de", "en"]
    assert corpus.size("de") == 100
    assert len(corpus.shared_ids("de", "en")) == 100
