"""The ``mmarco`` training source: mMARCO's TSV files read by id, parallel across languages.

``tests/fixtures/hub/unicamp-dl/mmarco`` mirrors the hub repository's layout (English,
German, French; 12 queries with a positive, French lacks one; 16 passages; 6 triples per
query, one negative repeated), with text written for these tests.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from xlrun.data.train_sources import TRAIN_SOURCES, load_train_corpus, mmarco
from xlrun.data.train_sources.mmarco import MMARCO_REPO, CollectionIndex, Triples
from xlrun.data.types import TrainCorpus
from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.tasks import hub_files
from xlrun.spec.schema import SamplingSection, TrainDataSection
from xlrun.train.samplers import make_sampler
from xlrun.train.trainer import draw_hard_negatives

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from test_eval_hub_files import HUB, StandIn, _http_error

FIXTURE = HUB / MMARCO_REPO


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Indexes go to a fresh cache folder."""
    monkeypatch.setenv("XLRUN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _tsv(path: Path) -> dict[int, str]:
    return {int(a): b for a, b in (line.split("\t", 1) for line in
                                   path.read_text(encoding="utf-8").splitlines())}


def _section(**kw: object) -> TrainDataSection:
    return TrainDataSection(source="mmarco", path=str(FIXTURE), **kw)  # type: ignore[arg-type]


def test_queries_pair_with_their_positive_in_every_language() -> None:
    corpus = load_train_corpus(_section(max_per_language=20))
    assert corpus.languages == ["de", "en", "fr"]
    assert [corpus.size(x) for x in corpus.languages] == [12, 12, 11]  # fr lacks one query
    triples = [tuple(map(int, line.split())) for line in
               (FIXTURE / "data/triples.train.ids.small.tsv").read_text().splitlines()]
    for lang, name in (("de", "german"), ("fr", "french")):
        queries = _tsv(FIXTURE / f"data/google/queries/train/{name}_queries.train.tsv")
        passages = _tsv(FIXTURE / f"data/google/collections/{name}_collection.tsv")
        for pid in corpus.ids(lang):
            ex = corpus.get(lang, pid)
            first_pos = next(p for q, p, _ in triples if q == int(pid))
            assert (ex.query, ex.passage) == (queries[int(pid)], passages[first_pos])
            assert ex.negatives == ()
    assert "9999" not in corpus.ids("en")  # a query without a positive is no example
    assert corpus.shared_ids("en", "fr") == [p for p in corpus.ids("en") if p != "1185"]


def test_max_per_language_keeps_the_same_queries_in_every_language() -> None:
    corpus = load_train_corpus(_section(max_per_language=5, languages=["en", "de"]))
    assert corpus.ids("en") == corpus.ids("de") and len(corpus.ids("en")) == 5
    bigger = load_train_corpus(_section(max_per_language=8, languages=["en"]))
    assert set(corpus.ids("en")) <= set(bigger.ids("en"))


def test_mined_negatives_are_the_first_distinct_ones_of_the_triples() -> None:
    corpus = load_train_corpus(_section(max_per_language=20, negatives=4, languages=["en"]))
    triples = [tuple(map(int, line.split())) for line in
               (FIXTURE / "data/triples.train.ids.small.tsv").read_text().splitlines()]
    passages = _tsv(FIXTURE / "data/google/collections/english_collection.tsv")
    for pid in corpus.ids("en"):
        negs = list(dict.fromkeys(n for q, _, n in triples if q == int(pid)))[:4]
        assert corpus.get("en", pid).negatives == tuple(passages[n] for n in negs)


def test_the_triples_reduction_matches_a_plain_reading(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few hundred bytes (lines cut across blocks), queries in any order, more
    negatives than are kept, repeats."""
    rng = random.Random(3)
    lines = [(q, rng.randrange(50), rng.randrange(40)) for q in range(60) for _ in range(
        rng.choice([1, 5, 45]))]
    rng.shuffle(lines)
    path = tmp_path / "triples.tsv"
    path.write_text("".join(f"{q}\t{p}\t{n}\n" for q, p, n in lines))
    monkeypatch.setattr(mmarco, "_CHUNK", 300)
    t = Triples.open(path)
    for q in range(60):
        mine = [(p, n) for qq, p, n in lines if qq == q]
        row = int(np.searchsorted(t.qids, q))
        assert t.qids[row] == q and t.positives[row] == mine[0][0]
        negs = list(dict.fromkeys(n for _, n in mine))[:mmarco.MAX_NEGATIVES]
        assert t.negatives[row].tolist() == negs + [-1] * (mmarco.MAX_NEGATIVES - len(negs))
    path.write_text("1\t2\t3\n4\t5\n")
    with pytest.raises(UsageError, match=r"triples.tsv:2: expected 'query_id<TAB>positive_id"):
        Triples.open(path)


def test_the_collection_index_is_built_once_and_fetches_by_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    rng = random.Random(5)
    ids = rng.sample(range(10**6), 2000)
    texts = {i: f"passage {i} " + "ü" * rng.randrange(0, 40) for i in ids}
    path = tmp_path / "english_collection.tsv"
    path.write_text("".join(f"{i}\t{texts[i]}\n" for i in ids), encoding="utf-8")
    monkeypatch.setattr(mmarco, "_CHUNK", 4096)
    index = CollectionIndex.open(path)
    assert len(index) == 2000 and list(cache.rglob("collection-*.npy"))
    asked = [*rng.sample(ids, 300), 10**7]
    assert index.texts(asked) == {i: texts[i] for i in asked if i in texts}

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the cached index was rebuilt")

    monkeypatch.setattr(mmarco, "_leading_ids", no_rebuild)
    assert CollectionIndex.open(path).texts(asked[:5]) == {i: texts[i] for i in asked[:5]}
    monkeypatch.undo()
    monkeypatch.setenv("XLRUN_CACHE", str(cache))
    with path.open("a", encoding="utf-8") as f:  # a changed file gets a new index
        f.write("7\tseven\n")
    assert CollectionIndex.open(path).texts([7]) == {7: "seven"}
    for bad, needle in (("12\tx\n12\ty\n", "passage id 12 appears twice"),
                        ("12\tx\nthirteen\ty\n", ":2: the id is not a non-negative integer"),
                        ("12\tx\n13 y\n", ":2: expected 'id<TAB>text'")):
        path.write_text(bad)
        with pytest.raises(UsageError, match=needle):
            CollectionIndex.open(path)


def test_the_hub_serves_the_selected_languages(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = StandIn(tmp_path / "served")
    monkeypatch.setattr(hub_files, "download", stand_in)
    corpus = load_train_corpus(TrainDataSection(source="mmarco", languages=["de", "fr"],
                                                max_per_language=3, revision="abc"))
    assert corpus.languages == ["de", "fr"] and corpus.name == "mmarco@abc"
    (repo, patterns, revision), = stand_in.calls
    assert (repo, revision) == (MMARCO_REPO, "abc")
    assert sorted(patterns) == sorted([
        "data/triples.train.ids.small.tsv",
        "data/google/collections/german_collection.tsv",
        "data/google/queries/train/german_queries.train.tsv",
        "data/google/collections/french_collection.tsv",
        "data/google/queries/train/french_queries.train.tsv"])
    from huggingface_hub.utils import RevisionNotFoundError

    refused = StandIn(tmp_path, refuse={MMARCO_REPO: _http_error(
        RevisionNotFoundError, 404, "Revision Not Found")})
    monkeypatch.setattr(hub_files, "download", refused)
    with pytest.raises(hub_files.HubAccessError, match="set train_data.revision to a commit"):
        load_train_corpus(TrainDataSection(source="mmarco", languages=["de"],
                                           max_per_language=3, revision="nope"))


def test_a_folder_missing_a_file_says_which(tmp_path: Path) -> None:
    folder = tmp_path / "mm"
    shutil.copytree(FIXTURE, folder)
    (folder / "data/triples.train.ids.small.tsv").unlink()
    with pytest.raises(UsageError, match="has no file data/triples.train.ids.small.tsv"):
        load_train_corpus(TrainDataSection(source="mmarco", path=str(folder),
                                           max_per_language=3))


@pytest.mark.parametrize("kw, key, needle", [
    ({"max_per_language": 0}, "max_per_language", "number of training queries"),
    ({"max_per_language": 5, "languages": ["ko"]}, "languages[0]", "no such language"),
    ({"max_per_language": 5, "negatives": 33}, "negatives", "reads at most 32"),
    ({"max_per_language": 5, "path": "/no/such/folder"}, "path", "reads a local folder"),
])
def test_the_section_is_checked(kw: dict, key: str, needle: str) -> None:
    section = TrainDataSection(source="mmarco", **kw)
    with pytest.raises(SpecError, match=needle) as err:
        mmarco.MMARCO.validate(section, "train_data")
    assert f"train_data.{key}" in str(err.value)
    with pytest.raises(SpecError, match="has no mined negatives"):
        TRAIN_SOURCES.get("jsonl").validate(
            TrainDataSection(source="jsonl", path=str(FIXTURE / "README.md"), negatives=2),
            "train_data")


@pytest.mark.parametrize("strategy, language_sampling, extra", [
    ("monolingual", "size", {}), ("cross_lingual", "uniform", {}), ("hybrid", "size", {}),
    ("hybrid", "clustered", {"clusters": [["de", "en"], ["fr"]]}),
    ("hybrid", "clustered", {"clusters": [["de", "en"], ["fr"]], "exposure": "free"}),
])
def test_the_samplers_work_unchanged(strategy: str, language_sampling: str, extra: dict) -> None:
    corpus = load_train_corpus(_section(max_per_language=20))
    sampling = SamplingSection(strategy=strategy, language_sampling=language_sampling,
                               similarity="manual", **extra)
    sampler = make_sampler(sampling, corpus, batch_size=4, seed=1,
                           clusters=extra.get("clusters"))
    for _ in range(20):
        batch = sampler.next_batch()
        for it in batch.items:
            assert it.parallel_id in corpus.ids(it.query_lang)
            assert it.parallel_id in corpus.ids(it.doc_lang)


def test_hard_negatives_draw_the_mined_ones_first() -> None:
    corpus: TrainCorpus = load_train_corpus(_section(max_per_language=20, negatives=3))
    sampler = make_sampler(SamplingSection(strategy="hybrid"), corpus, batch_size=4, seed=2)
    batch = sampler.next_batch()
    negs = draw_hard_negatives(corpus, batch, k=5, seed=0)
    used = 0
    for it, refs in zip(batch.items, negs, strict=True):
        positives = {corpus.get(x.doc_lang, x.parallel_id).passage for x in batch.items
                     if x.doc_lang == it.doc_lang}
        own = corpus.get(it.doc_lang, it.parallel_id).negatives
        usable = [j for j, text in enumerate(own) if text not in positives]
        mined = [r for r in refs if len(r) == 3]
        assert len(refs) == 5 and refs[:len(mined)] == mined
        assert sorted(int(r[2]) for r in mined) == usable  # all usable ones, never a positive
        assert {r[1] for r in mined} <= {it.parallel_id} and {r[0] for r in refs} == {it.doc_lang}
        used += len(mined)
    assert used >= len(batch.items)
    assert negs == draw_hard_negatives(corpus, batch, k=5, seed=0)
