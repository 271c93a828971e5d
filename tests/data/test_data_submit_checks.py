"""Data problems are found at submit time (issue 17, item 5): exit code 2, a message naming
the file, the line or record and the fault, and no database written."""

from __future__ import annotations

import json
import lzma
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from xlrun.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"

LAREQA = """
[experiment]
name = "d"
[model]
name = "quickstart:tiny"
[train_data]
source = "lareqa"
path = "train"
[sampling]
strategy = "monolingual"
[train]
steps = 2
batch_size = 2
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
"""

JSONL = LAREQA.replace('source = "lareqa"\npath = "train"', 'source = "jsonl"\npath = "t.jsonl"')

QUICK = """
[experiment]
name = "q"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
[sampling]
strategy = "hybrid"
language_sampling = "clustered"
{sampling}
[train]
steps = 2
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de"]
"""


def _submit(folder: Path, text: str) -> tuple[Result, Path]:
    spec = folder / "s.toml"
    spec.write_text(text)
    db = folder / "x.db"
    res = CliRunner().invoke(main, ["submit", str(spec), "--db", f"sqlite:///{db}", "--no-run"])
    return res, db


def _refused(res: Result, db: Path, *needles: str) -> None:
    assert res.exit_code == 2, res.output
    assert res.output.startswith("Error:") and "Traceback" not in res.output, res.output
    for n in needles:
        assert n in res.output, (n, res.output)
    assert not db.exists()


def _lareqa_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "train"
    folder.mkdir()
    for lang in ("en", "de"):
        data = (FIXTURES / "lareqa" / f"{lang}.json").read_bytes()
        (folder / f"{lang}.json.xz").write_bytes(lzma.compress(data))
    return folder


def test_intact_lareqa_is_accepted(tmp_path: Path) -> None:
    _lareqa_folder(tmp_path)
    res, _db = _submit(tmp_path, LAREQA)
    assert res.exit_code == 0 and "1 new" in res.output, res.output


def test_truncated_xz(tmp_path: Path) -> None:
    f = _lareqa_folder(tmp_path) / "de.json.xz"
    f.write_bytes(f.read_bytes()[:200])
    _refused(*_submit(tmp_path, LAREQA), str(f), "truncated or corrupt .xz")


@pytest.mark.parametrize("content, needle", [
    ('{"data": [', "not valid JSON at line 1, column 11"),
    ("", "not valid JSON at line 1, column 1"),
    ('{"data": []}', "holds no questions"),
    ('[1, 2]', "not LAReQA data"),
    ('{"data": [{"paragraphs": [{"qas": []}]}]}', "data[0].paragraphs[0]"),
    ('{"data": [{"paragraphs": [{"sentences": ["a"], "sentence_breaks": [[0, 1]], '
     '"qas": [{"id": "q", "answers": [{"answer_start": 0}]}]}]}]}', "qas[0]"),
])
def test_invalid_or_empty_lareqa_json(tmp_path: Path, content: str, needle: str) -> None:
    f = _lareqa_folder(tmp_path) / "de.json.xz"
    f.write_bytes(lzma.compress(content.encode()))
    _refused(*_submit(tmp_path, LAREQA), str(f), needle)


GOOD_ROWS = [{"query": f"q{i}", "passage": f"p{i}", "lang": lang, "parallel_id": i}
             for i in range(4) for lang in ("en", "de")]


@pytest.mark.parametrize("bad, needle", [
    ({"query": "q", "lang": "en"}, "missing passage"),
    ({"query": "q", "passage": "p", "lang": "xx-nope"}, "xx-nope"),
    ({"query": {"a": 1}, "passage": "p", "lang": "en"}, "'query' must be a string, got dict"),
    ({"query": 12345, "passage": "p", "lang": "en"}, "'query' must be a string, got int"),
    ({"query": "q", "passage": ["p"], "lang": "en"}, "'passage' must be a string"),
    ("not an object", "expected a JSON object"),
])
def test_jsonl_faults_name_file_and_line(tmp_path: Path, bad: object, needle: str) -> None:
    rows = [json.dumps(r) for r in GOOD_ROWS]
    rows.insert(3, json.dumps(bad))
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(rows) + "\n")
    _refused(*_submit(tmp_path, JSONL), f"{f}:4", needle)


def test_jsonl_empty_or_folder(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text("\n\n")
    _refused(*_submit(tmp_path, JSONL), str(f), "no training examples")
    f.unlink()
    f.mkdir()
    _refused(*_submit(tmp_path, JSONL), str(f), "is a folder")


def test_jsonl_invalid_json_line(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(GOOD_ROWS[0]) + '\n{"query": "q",\n')
    _refused(*_submit(tmp_path, JSONL), f"{f}:2", "not valid JSON")


def test_clusters_must_name_languages_of_the_data(tmp_path: Path) -> None:
    text = QUICK.format(sampling='similarity = "manual"\nclusters = [["en", "de"], ["ja", "zh"]]')
    _refused(*_submit(tmp_path, text), "sampling.clusters[1]", "'ja'",
             "training data does not have")
    ok = QUICK.format(sampling='similarity = "manual"\nclusters = [["en", "de"], ["ru", "uk"]]')
    res, _ = _submit(tmp_path, ok)
    assert res.exit_code == 0, res.output


def test_more_clusters_than_languages(tmp_path: Path) -> None:
    text = QUICK.format(sampling='similarity = "script"\nn_clusters = 9')
    _refused(*_submit(tmp_path, text), "sampling.n_clusters", "8 languages")


def test_batch_larger_than_the_data(tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in GOOD_ROWS) + "\n")
    _refused(*_submit(tmp_path, JSONL.replace("batch_size = 2", "batch_size = 8")),
             "train.batch_size")


def test_local_eval_and_lareqa_eval_are_read(tmp_path: Path) -> None:
    local = tmp_path / "evaldir"
    shutil.copytree(FIXTURES / "local_eval", local)
    q = local / "queries.jsonl"
    lines = q.read_text().splitlines()
    lines[1] = json.dumps({"id": "x", "lang": "en"})
    q.write_text("\n".join(lines) + "\n")
    text = QUICK.format(sampling='similarity = "script"\nn_clusters = 2').replace(
        'dataset = "quickstart"\nlanguages = ["en", "de"]', 'dataset = "local"\npath = "evaldir"')
    _refused(*_submit(tmp_path, text), f"{q}:2", "missing 'text'")
    xq = _lareqa_folder(tmp_path)
    (xq / "en.json.xz").write_bytes(b"\xfd7zXZ\x00")
    text = QUICK.format(sampling='similarity = "script"\nn_clusters = 2').replace(
        'dataset = "quickstart"', 'dataset = "xquad-r"\npath = "train"')
    _refused(*_submit(tmp_path, text), "eval[0] (xquad-r)", str(xq / "en.json.xz"))
