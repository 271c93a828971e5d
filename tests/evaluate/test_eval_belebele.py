"""Belebele: questions retrieving their FLORES passages, from a local folder or the hub.

``tests/fixtures/hub/facebook/belebele`` mirrors the hub repository (``data/<variant>.jsonl``)
with passages and questions written for these tests: six variants (English, German, Bengali
in its own script and romanised, traditional Chinese, Mesopotamian Arabic), three passages of
which two share a link (told apart by their FLORES split), five questions.
"""

from __future__ import annotations

import json
import shutil
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from test_eval_hub_files import COMMIT, HUB, StandIn, _http_error, _hub_cache

from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.runner import evaluate_dataset
from xlrun.evaluate.tasks import DATASETS, hub_files, load_dataset
from xlrun.evaluate.tasks.belebele import BELEBELE_REPO, BELEBELE_REVISION, CODES, VARIANTS
from xlrun.evaluate.tasks.hub_files import HubAccessError
from xlrun.languages import LANGUAGES
from xlrun.spec.schema import EvalSection

FOLDER = HUB / BELEBELE_REPO
LANGS = ["acm", "bn", "bn-Latn", "de", "en", "zh-Hant"]


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn(tmp_path / "served")
    monkeypatch.setattr(hub_files, "download", stand_in)
    return stand_in


class PassageEncoder:
    """Encodes a question and its passage (in any language) as the same one-hot vector: a
    perfect retriever, if the loader links questions, passages and translations right."""

    def __init__(self) -> None:
        self.slot: dict[str, int] = {}
        for f in sorted((FOLDER / "data").glob("*.jsonl")):
            for line in f.read_text(encoding="utf-8").splitlines():
                rec = json.loads(line)
                key = (rec["link"], rec["split"])
                slot = self.slot.setdefault(str(key), len({*self.slot.values()}))
                self.slot[rec["question"]] = self.slot[rec["flores_passage"]] = slot

    def encode(self, texts: list[str], side: str, batch_size: int = 32,
               progress: object = None) -> np.ndarray:
        out = np.zeros((len(texts), 4), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, self.slot[t]] = 1.0
        return out


def test_every_variant_has_an_xlrun_code_of_its_own() -> None:
    assert len(VARIANTS) == 122 and len(CODES) == 122
    assert {CODES[c] for c in ("bn-Latn", "zh-Hant", "zh", "ar", "ar-Latn", "acm", "no")} == {
        "ben_Latn", "zho_Hant", "zho_Hans", "arb_Arab", "arb_Latn", "acm_Arab", "nob_Latn"}
    assert all(len(c) <= 8 and c in LANGUAGES for c in CODES)
    assert LANGUAGES["bn-Latn"].script == "Latn" and LANGUAGES["bn-Latn"].family == "Indo-European"


@pytest.mark.parametrize("where", [FOLDER, FOLDER / "data"])
def test_a_local_copy_loads_with_parallel_ids(where: Path) -> None:
    data = load_dataset(EvalSection("belebele", path=str(where)))
    assert data.languages == LANGS and data.parallel
    sizes = {lang: (len(data.queries[lang]), len(data.corpus[lang])) for lang in LANGS}
    assert sizes == dict.fromkeys(LANGS, (5, 3))
    ids = [q.id for q in data.queries["en"]]
    assert all([q.id for q in data.queries[lang]] == ids for lang in LANGS)
    assert len({i.split("/")[0] for i in ids}) == 3  # one link, two FLORES splits: 2 passages
    first = data.queries["bn-Latn"][0]
    assert first.text == "Noditi kothay shuru hoy?"
    assert data.qrels[("bn-Latn", first.id)] == {f"{lang}:{first.id.split('/')[0]}"
                                                 for lang in LANGS}


def test_a_record_without_a_split_uses_its_link(tmp_path: Path) -> None:
    folder = tmp_path / "bb"
    folder.mkdir()
    lines = (FOLDER / "data" / "eng_Latn.jsonl").read_text(encoding="utf-8").splitlines()
    recs = [json.loads(x) for x in lines]
    for r in recs:
        r.pop("split")
    (folder / "eng_Latn.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n",
                                           encoding="utf-8")
    data = load_dataset(EvalSection("belebele", path=str(folder)))
    docs = [d.id for d in data.corpus["en"]]
    # the two passages under one link stay two documents, told apart by their order
    assert len(docs) == 3 and docs[1] == docs[0] + ".1"
    assert data.qrels[("en", data.queries["en"][2].id)] == {docs[1]}


def test_mono_cross_pairs_and_pool() -> None:
    data = load_dataset(EvalSection("belebele", path=str(FOLDER)))
    cfg = EvalSection("belebele", path=str(FOLDER), top_k=3,
                      pairs=[["*", "en"], ["bn", "bn-Latn"]])
    out = evaluate_dataset(PassageEncoder(), data, cfg)
    qr = out.query_results.to_pydict()
    cells = Counter(zip(qr["setting"], qr["query_lang"], qr["doc_lang"], strict=True))
    cross = {(x, y) for s, x, y in cells if s == "cross"}
    assert cross == {(x, "en") for x in LANGS if x != "en"} | {("bn", "bn-Latn")}
    assert {(x, y) for s, x, y in cells if s == "mono"} == {(x, x) for x in LANGS}
    assert {(x, y) for s, x, y in cells if s == "multi"} == {(x, "all") for x in LANGS}
    assert set(cells.values()) == {5}
    assert set(qr["first_relevant_rank"]) == {1}
    assert out.metric("mono", "ndcg@10") == 1.0 and out.metric("cross", "map") == 1.0


def test_the_hub_serves_only_the_asked_variants_at_the_pinned_revision(hub: StandIn) -> None:
    data = load_dataset(EvalSection("belebele", languages=["bn-Latn", "zh-Hant"]))
    assert data.languages == ["bn-Latn", "zh-Hant"]
    assert hub.calls == [(BELEBELE_REPO, ("data/ben_Latn.jsonl", "data/zho_Hant.jsonl"),
                          BELEBELE_REVISION)]
    assert data.meta["revisions"] == {BELEBELE_REPO: BELEBELE_REVISION}
    load_dataset(EvalSection("belebele", languages=["en"], revision="v2"))
    assert hub.calls[-1][2] == "v2"
    local = load_dataset(EvalSection("belebele", path=str(FOLDER), languages=["bn-Latn"]))
    assert local.queries["bn-Latn"] == data.queries["bn-Latn"]


def test_a_variant_the_revision_lacks_and_hub_errors_say_what_to_do(
        hub: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="has no file data/kor_Hang.jsonl"):
        load_dataset(EvalSection("belebele", languages=["ko"]))
    from huggingface_hub.utils import GatedRepoError

    refused = StandIn(tmp_path, refuse={BELEBELE_REPO: _http_error(
        GatedRepoError, 401, "401 Client Error. Cannot access gated repo")})
    monkeypatch.setattr(hub_files, "download", refused)
    with pytest.raises(HubAccessError, match="accept its terms") as err:
        load_dataset(EvalSection("belebele", languages=["en"]))
    assert "https://huggingface.co/datasets/facebook/belebele" in str(err.value)


def test_bad_records_name_the_file_and_record(tmp_path: Path) -> None:
    folder = tmp_path / "bb" / "data"
    shutil.copytree(FOLDER / "data", folder)
    f = folder / "deu_Latn.jsonl"
    recs = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
    recs[3]["question_number"] = None
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"deu_Latn.jsonl: record 4: 'question_number'"):
        load_dataset(EvalSection("belebele", path=str(folder.parent), languages=["de"]))
    recs[3]["question_number"] = 1
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match="appears twice"):
        load_dataset(EvalSection("belebele", path=str(folder.parent), languages=["de"]))
    del recs[0]["question"]
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"deu_Latn.jsonl:1: missing 'question'"):
        load_dataset(EvalSection("belebele", path=str(folder.parent), languages=["de"]))


def test_the_section_is_checked_against_the_variants() -> None:
    ds = DATASETS.get("belebele")
    ds.validate(EvalSection("belebele", languages=["bn-Latn", "acm"]), "eval[0]")
    with pytest.raises(SpecError, match="has no language 'yue'"):
        ds.validate(EvalSection("belebele", languages=["yue"]), "eval[0]")
    with pytest.raises(SpecError, match="has no language 'ast'"):
        ds.validate(EvalSection("belebele", path=str(FOLDER), languages=["ast"]), "eval[0]")
    with pytest.raises(SpecError, match="no such split"):
        ds.validate(EvalSection("belebele", split="dev"), "eval[0]")


def test_a_cached_revision_loads_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the real ``snapshot_download``, no network and ``HF_HUB_OFFLINE``: a revision in
    the hub cache is read back; one that is not says how to fill the cache."""
    from huggingface_hub import constants

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _hub_cache(tmp_path / "hub", BELEBELE_REPO, COMMIT)
    data = load_dataset(EvalSection("belebele", languages=["zh-Hant"], revision=COMMIT))
    assert len(data.queries["zh-Hant"]) == 5
    assert data.meta["revisions"] == {BELEBELE_REPO: COMMIT}
    with pytest.raises(HubAccessError, match="not in the hub cache"):
        load_dataset(EvalSection("belebele", languages=["en"]))  # the pinned default
