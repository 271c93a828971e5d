"""MTEB result files: the keys MTEB uses, and files that MTEB's own loader reads back with
xlrun's numbers (``mteb.TaskResult.from_disk``, ``mteb.ResultCache.load_results``)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import mteb
import pytest
from mteb.models import ModelMeta

from xlrun.formats.mteb import (
    NO_REVISION,
    model_meta,
    mteb_key,
    mteb_language,
    task_result,
    write_results,
)

LANGS = ["de", "en", "ru"]
MEASURES = ["map", "mrr@10", "ndcg@10", "recall@100"]


def rows(seed: int = 0) -> list[dict]:
    """run_metrics rows of one dataset split: every setting, per language (pair) and pooled,
    with random values; bias measures in multi as xlrun stores them."""
    rng = random.Random(seed)
    out = []
    cells = ([("mono", x, x) for x in LANGS] + [("cross", x, y) for x in LANGS for y in LANGS
                                                 if x != y]
             + [("multi", x, "all") for x in LANGS]
             + [(s, "all", "all") for s in ("mono", "cross", "multi")])
    for setting, q, d in cells:
        names = MEASURES + (["rank_distance", "same_lang_at_10"] if setting == "multi" else [])
        out += [{"setting": setting, "query_lang": q, "doc_lang": d, "metric": m,
                 "value": rng.random()} for m in names]
    return out


@pytest.mark.parametrize(("name", "key"), [
    ("map", "map"), ("ndcg@10", "ndcg_at_10"), ("mrr@10", "mrr_at_10"),
    ("recall@100", "recall_at_100"), ("AP", "map"), ("AP@100", "map_at_100"),
    ("nDCG@10", "ndcg_at_10"), ("RR@10", "mrr_at_10"), ("R@1000", "recall_at_1000"),
    ("P@1", "precision_at_1"), ("Success@5", "hit_rate_at_5"),
    ("P(rel=2)@5", "precision_rel_2_at_5"), ("same_lang_at_10", "same_lang_at_10"),
    ("rank_distance", "rank_distance"),
])
def test_measure_names_in_mteb_keys(name: str, key: str) -> None:
    assert mteb_key(name) == key


def test_languages_as_mteb_writes_them() -> None:
    assert [mteb_language(c) for c in ("de", "ru", "ja", "zz")] == [
        "deu-Latn", "rus-Cyrl", "jpn-Jpan", "zz"]


def _write(folder: Path, data: list[dict], split: str = "test") -> list[Path]:
    results = [task_result(data, dataset="xquad-r", split=split, setting=s,
                           dataset_revision=None, evaluation_time=1.5,
                           xlrun={"run_key": "k" * 64, "run_id": 7})
               for s in ("mono", "cross", "multi")]
    meta = model_meta("intfloat/multilingual-e5-small", "abc123")
    return write_results(folder, meta, results)


def test_mteb_reads_every_score_back(tmp_path: Path) -> None:
    data = rows()
    files = _write(tmp_path, data)
    assert [f.name for f in files] == ["xlrun-xquad-r-mono.json", "xlrun-xquad-r-cross.json",
                                       "xlrun-xquad-r-multi.json"]
    expected = {(r["setting"], r["query_lang"], r["doc_lang"], mteb_key(r["metric"])): r["value"]
                for r in data if r["query_lang"] != "all"}
    seen = 0
    for f in files:
        result = mteb.TaskResult.from_disk(f)
        setting = result.task_name.rsplit("-", 1)[1]
        assert result.eval_splits == ["test"]
        for entry in result.scores["test"]:
            subset = entry["hf_subset"]
            q, d = subset.split("-") if setting == "cross" else (subset, subset)
            d = "all" if setting == "multi" else d
            assert entry["languages"] == [mteb_language(x) for x in subset.split("-")]
            assert entry["main_score"] == entry["ndcg_at_10"]
            for key, value in entry.items():
                if (setting, q, d, key) in expected:
                    assert value == expected[(setting, q, d, key)]  # full precision
                    seen += 1
    assert seen == len(expected)
    # the main score MTEB computes for a task is the mean over its subsets
    mono = mteb.TaskResult.from_disk(files[0])
    want = [r["value"] for r in data if r["setting"] == "mono" and r["metric"] == "ndcg@10"
            and r["query_lang"] != "all"]
    assert mono.get_score() == pytest.approx(sum(want) / len(want), abs=1e-12)
    assert mono.get_score(languages=["deu"]) == expected[("mono", "de", "de", "ndcg_at_10")]


def test_mteb_result_cache_finds_model_and_revision(tmp_path: Path) -> None:
    _write(tmp_path, rows())
    loaded = mteb.ResultCache(tmp_path).load_results(include_remote=False)
    (model,) = loaded.model_results
    assert (model.model_name, model.model_revision) == ("intfloat/multilingual-e5-small",
                                                        "abc123")
    assert sorted(t.task_name for t in model.task_results) == [
        "xlrun-xquad-r-cross", "xlrun-xquad-r-mono", "xlrun-xquad-r-multi"]
    meta_file = next(tmp_path.rglob("model_meta.json"))
    assert meta_file.parent.parent.name == "intfloat__multilingual-e5-small"
    ModelMeta.model_validate(json.loads(meta_file.read_text()))  # MTEB's schema, extra="forbid"


def test_a_second_split_joins_the_same_file(tmp_path: Path) -> None:
    _write(tmp_path, rows(0), "test")
    files = _write(tmp_path, rows(1), "dev")
    result = mteb.TaskResult.from_disk(files[0])
    assert sorted(result.eval_splits) == ["dev", "test"]
    assert result.evaluation_time == 3.0
    # another run's file is replaced, not merged
    other = [task_result(rows(2), dataset="xquad-r", split="val", setting="mono",
                         xlrun={"run_key": "other"})]
    write_results(tmp_path, model_meta("intfloat/multilingual-e5-small", "abc123"), other)
    assert mteb.TaskResult.from_disk(files[0]).eval_splits == ["val"]


def test_no_revision_and_nothing_to_write() -> None:
    assert model_meta("m")["revision"] == NO_REVISION
    assert task_result([r for r in rows() if r["setting"] != "cross"], dataset="d",
                       split="test", setting="cross") is None
