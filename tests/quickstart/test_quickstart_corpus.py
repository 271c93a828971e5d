"""The generated quickstart corpus: determinism, parallelism, disjoint splits, qrels."""

from __future__ import annotations

import csv
import json

import pytest

from xlrun.errors import UsageError
from xlrun.languages import script_of
from xlrun.quickstart.corpus import (
    LANGUAGES,
    eval_data,
    split_entities,
    train_corpus,
    transliterate,
    write_local,
)
from xlrun.quickstart.dataset import load_quickstart
from xlrun.spec.schema import EvalSection


def test_languages_and_scripts():
    assert len(LANGUAGES) >= 6
    scripts = {script_of(lang) for lang in LANGUAGES}
    assert len(scripts) >= 3
    assert {"Cyrl", "Grek"} <= scripts
    assert set(train_corpus().languages) == set(LANGUAGES)


def test_deterministic_and_seeded():
    a, b = train_corpus(0), train_corpus(0)
    assert a.examples == b.examples
    assert train_corpus(1).examples != a.examples
    e1, e2 = eval_data(seed=0), eval_data(seed=0)
    assert e1.queries == e2.queries and e1.corpus == e2.corpus and e1.qrels == e2.qrels


def test_parallel_ids_shared_across_languages():
    corpus = train_corpus()
    ids = corpus.ids("en")
    assert 300 <= len(ids) <= 600
    for lang in LANGUAGES:
        assert corpus.ids(lang) == ids
    ex = {lang: corpus.get(lang, ids[0]) for lang in LANGUAGES}
    assert len({e.query for e in ex.values()}) == len(LANGUAGES)  # really translated
    # all scripts actually used in the text
    assert any("\u0400" <= ch <= "\u04ff" for ch in ex["ru"].passage)
    assert any("\u0370" <= ch <= "\u03ff" for ch in ex["el"].passage)


def test_numbers_and_names_carry_across_languages():
    corpus = train_corpus()
    for pid in corpus.ids("en")[:50]:
        en = corpus.get("en", pid).passage
        digits = [w.strip(".,") for w in en.split() if w.strip(".,").isdigit()]
        for lang in LANGUAGES:
            for d in digits:
                assert d in corpus.get(lang, pid).passage


def test_transliteration():
    assert transliterate("Kestria", "en") == "Kestria"
    assert transliterate("Kestria", "ru") == "Кестриа"
    assert transliterate("Tomas Bevu", "el") == "Τομας Μπεβου"
    assert transliterate("Giri", "uk") == "Ґірі"


def _texts_in(split: str) -> set[str]:
    return {e.name for e in split_entities(split)}


def test_train_and_eval_entities_disjoint():
    train = _texts_in("train")
    for split in ("test", "dev", "test_distractors", "dev_distractors"):
        assert not train & _texts_in(split), split
    assert not _texts_in("test") & _texts_in("dev")
    # and no evaluation entity name occurs in any training text, in any script
    texts = {lang: " ".join(e.query + " " + e.passage for e in train_corpus().examples
                            if e.lang == lang) for lang in LANGUAGES}
    for ent in split_entities("test"):
        for lang in ("en", "ru", "el"):
            name = transliterate(ent.name, lang)
            assert f" {name} " not in texts[lang] and f" {name}." not in texts[lang]


def test_eval_qrels_well_formed():
    data = eval_data()
    assert data.parallel and data.dataset == "quickstart" and data.split == "test"
    assert set(data.languages) == set(LANGUAGES)
    all_ids = [d.id for docs in data.corpus.values() for d in docs]
    assert len(all_ids) == len(set(all_ids))  # unique across languages
    by_id = {d.id: d for docs in data.corpus.values() for d in docs}
    n_q = {len(qs) for qs in data.queries.values()}
    assert len(n_q) == 1 and 100 <= n_q.pop() <= 150
    for lang, queries in data.queries.items():
        assert [q.id for q in queries] == [q.id for q in data.queries["en"]]
        assert len(data.corpus[lang]) > len(queries)  # distractors
        for q in queries:
            rel = data.relevant(q)
            assert sorted(by_id[d].lang for d in rel) == sorted(LANGUAGES)
            assert all(d.startswith(by_id[d].lang + ":") for d in rel)
    # the relevant passage names the question's entity (capitalised words after the first)
    for q in data.queries["en"]:
        (pos,) = [d for d in data.relevant(q) if d.startswith("en:")]
        q_names = {w.strip("?.,") for w in q.text.split()[1:] if w[:1].isupper()}
        p_names = {w.strip("?.,") for w in by_id[pos].text.split() if w[:1].isupper()}
        assert q_names & p_names, (q.text, by_id[pos].text)


def test_eval_languages_subset_and_limits():
    data = eval_data(languages=["deu", "ru"], max_queries_per_language=10, split="dev")
    assert data.languages == ["de", "ru"]
    assert all(len(qs) == 10 for qs in data.queries.values())
    for rel in data.qrels.values():
        assert {r.split(":")[0] for r in rel} == {"de", "ru"}
    assert len(data.corpus["de"]) == len(eval_data(languages=["de"]).corpus["de"])
    with pytest.raises(UsageError, match="available"):
        eval_data(languages=["ja"])
    with pytest.raises(UsageError, match="test, dev"):
        eval_data(split="train")


def test_test_and_dev_differ():
    t, d = eval_data(split="test"), eval_data(split="dev")
    assert {q.text for q in t.queries["en"]}.isdisjoint({q.text for q in d.queries["en"]})


def test_load_quickstart_honours_cfg():
    cfg = EvalSection(dataset="quickstart", languages=["en", "el"], max_queries_per_language=5)
    data = load_quickstart(cfg)
    assert data.languages == ["el", "en"]
    assert {len(qs) for qs in data.queries.values()} == {5}
    assert load_quickstart(EvalSection(dataset="quickstart", split="dev")).split == "dev"


def test_write_local(tmp_path):
    out = write_local(tmp_path / "qs")
    data = eval_data()
    queries = [json.loads(line) for line in (out / "queries.jsonl").open(encoding="utf-8")]
    corpus = [json.loads(line) for line in (out / "corpus.jsonl").open(encoding="utf-8")]
    train = [json.loads(line) for line in (out / "train.jsonl").open(encoding="utf-8")]
    assert len(queries) == sum(len(v) for v in data.queries.values())
    assert set(queries[0]) == {"id", "lang", "text"} and set(corpus[0]) == {"id", "lang", "text"}
    assert set(train[0]) == {"query", "passage", "lang", "parallel_id"}
    assert len(train) == len(train_corpus())
    with open(out / "qrels.tsv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert list(rows[0]) == ["query_lang", "query_id", "doc_id", "relevance"]
    assert len(rows) == sum(len(v) for v in data.qrels.values())
    assert {(r["query_lang"], r["query_id"]) for r in rows} == set(data.qrels)
