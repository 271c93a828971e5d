"""MIRACL and MLDR as the Hugging Face hub serves them: the repositories' files, read offline.

``tests/fixtures/hub/<owner>/<name>/`` mirrors each repository's file tree (a few languages,
text written for these tests). :class:`StandIn` replaces the one download seam
(``hub_files.download``) and serves those trees like ``snapshot_download`` with
``allow_patterns`` would: only the matching files, in a snapshot folder per revision.
"""

from __future__ import annotations

import fnmatch
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.tasks import DATASETS, hub_files, load_dataset
from xlrun.evaluate.tasks.hf_style import MIRACL_CORPUS_REPO, MIRACL_REPO, MLDR_REPO
from xlrun.evaluate.tasks.hub_files import HubAccessError
from xlrun.spec.schema import EvalSection

HUB = Path(__file__).resolve().parents[1] / "fixtures" / "hub"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class StandIn:
    """Serves the fixture trees through the download seam and records every call."""

    def __init__(self, tmp: Path, refuse: dict[str, BaseException] | None = None) -> None:
        self.tmp = tmp
        self.refuse = refuse or {}
        self.calls: list[tuple[str, tuple[str, ...], str]] = []

    def __call__(self, repo_id: str, patterns: Sequence[str], revision: str) -> Path:
        self.calls.append((repo_id, tuple(patterns), revision))
        if repo_id in self.refuse:
            raise self.refuse[repo_id]
        source = HUB / repo_id
        snap = self.tmp / repo_id / revision
        for f in source.rglob("*"):
            rel = f.relative_to(source).as_posix()
            if f.is_file() and any(fnmatch.fnmatch(rel, p) for p in patterns):
                (snap / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, snap / rel)
        snap.mkdir(parents=True, exist_ok=True)
        return snap

    def served(self) -> list[str]:
        return sorted(p.relative_to(self.tmp).as_posix() for p in self.tmp.rglob("*")
                      if p.is_file())


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    stand_in = StandIn(tmp_path / "served")
    monkeypatch.setattr(hub_files, "download", stand_in)
    return stand_in


def _http_error(cls: type, status: int, message: str) -> BaseException:
    """An instance of a huggingface_hub HTTP error class with ``response.status_code``."""
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.response = SimpleNamespace(status_code=status, headers={})
    return err


# ----------------------------------------------------------------------------- MIRACL
def test_miracl_reads_topics_qrels_and_corpus_shards(hub: StandIn) -> None:
    data = load_dataset(EvalSection("miracl", split="dev", languages=["te", "sw"]))
    assert data.languages == ["sw", "te"] and not data.parallel
    assert [q.id for q in data.queries["sw"]] == ["101", "102", "103"]
    assert data.queries["sw"][0].text == "Mji mkuu wa Kenya ni upi?"
    # judged 1 is relevant; judged 0 (an explicit negative) is not
    assert data.qrels[("sw", "101")] == {"sw:10#0"}
    assert data.qrels[("sw", "102")] == {"sw:12#1", "sw:12#2"}
    assert ("sw", "103") not in data.qrels  # its one relevant passage is not in the corpus
    assert data.qrels[("te", "501")] == {"te:40#0"}
    assert data.qrels[("te", "502")] == {"te:41#3"}  # 0 for 501, 1 for 502: per query
    # title + text; shards read in order; every passage of the corpus kept
    texts = {d.id: d.text for d in data.corpus["sw"]}
    assert texts["sw:10#0"] == "Nairobi Nairobi ni mji mkuu wa Kenya."
    assert texts["sw:13#0"] == "Maandishi bila kichwa."
    assert [d.id for d in data.corpus["te"]] == ["te:40#0", "te:41#3", "te:42#0"]
    assert data.meta == {"source": "hub",
                         "revisions": {MIRACL_REPO: "main", MIRACL_CORPUS_REPO: "main"}}


def test_miracl_downloads_only_the_selected_languages_and_split(hub: StandIn) -> None:
    load_dataset(EvalSection("miracl", split="dev", languages=["swa", "te"]))
    assert hub.calls == [
        (MIRACL_REPO, ("miracl-v1.0-sw/topics/topics.miracl-v1.0-sw-dev.tsv",
                       "miracl-v1.0-sw/qrels/qrels.miracl-v1.0-sw-dev.tsv",
                       "miracl-v1.0-te/topics/topics.miracl-v1.0-te-dev.tsv",
                       "miracl-v1.0-te/qrels/qrels.miracl-v1.0-te-dev.tsv"), "main"),
        (MIRACL_CORPUS_REPO, ("miracl-corpus-v1.0-sw/docs-*.jsonl.gz",
                              "miracl-corpus-v1.0-te/docs-*.jsonl.gz"), "main"),
    ]
    served = hub.served()
    assert not [p for p in served if p.endswith(".py") or "yo" in p or "train" in p]
    assert len(served) == 7  # 4 TSVs + 3 shards


def test_miracl_split_selection(hub: StandIn) -> None:
    train = load_dataset(EvalSection("miracl", split="train", languages=["sw"]))
    assert [q.id for q in train.queries["sw"]] == ["7"]
    assert train.qrels == {("sw", "7"): frozenset({"sw:14#0"})}
    with pytest.raises(UsageError, match="de and yo have no train"):
        load_dataset(EvalSection("miracl", split="train", languages=["yo"]))
    # the test splits publish topics only: rejected before anything is downloaded
    hub.calls.clear()
    with pytest.raises(UsageError, match="no relevance judgements for 'testB'"):
        load_dataset(EvalSection("miracl", split="testB", languages=["sw"]))
    assert hub.calls == []
    assert DATASETS.get("miracl").hub_splits == ("train", "dev")
    assert "testB" in DATASETS.get("miracl").splits  # a local folder may hold them
    with pytest.raises(SpecError, match="allowed"):  # checked at submit, by the dataset
        DATASETS.get("miracl").validate(EvalSection("miracl", split="test", languages=["sw"]),
                                        "eval[0]")


def test_language_selection_names_what_exists(hub: StandIn) -> None:
    with pytest.raises(SpecError, match="language not in dataset 'miracl'"):
        load_dataset(EvalSection("miracl", split="dev", languages=["it"]))
    with pytest.raises(SpecError, match="language not in dataset 'mldr'"):
        load_dataset(EvalSection("mldr", languages=["sw"]))
    assert hub.calls == []


# ----------------------------------------------------------------------------- MLDR
def test_mldr_reads_the_language_folders(hub: StandIn) -> None:
    data = load_dataset(EvalSection("mldr", languages=["en", "de"]))
    assert data.languages == ["de", "en"]
    assert [q.id for q in data.queries["en"]] == ["q-en-10", "q-en-11", "q-en-12"]
    assert data.qrels[("en", "q-en-10")] == {"en:doc-en-1"}  # negatives are not relevant
    assert ("en", "q-en-12") not in data.qrels
    assert data.qrels[("de", "q-de-10")] == {"de:doc-de-1"}
    assert len(data.corpus["en"]) == 3 and data.corpus["de"][1].text.startswith("Die alte")
    assert hub.calls == [(MLDR_REPO, ("mldr-v1.0-de/test.jsonl.gz", "mldr-v1.0-de/corpus.jsonl.gz",
                                      "mldr-v1.0-en/test.jsonl.gz", "mldr-v1.0-en/corpus.jsonl.gz"),
                          "main")]
    dev = load_dataset(EvalSection("mldr", split="dev", languages=["de"]))
    assert [q.id for q in dev.queries["de"]] == ["q-de-20"]
    assert hub.calls[-1][1] == ("mldr-v1.0-de/dev.jsonl.gz", "mldr-v1.0-de/corpus.jsonl.gz")
    with pytest.raises(UsageError, match="has no file mldr-v1.0-ar/test.jsonl.gz"):
        load_dataset(EvalSection("mldr", languages=["ar"]))  # a language the fixture lacks


# ----------------------------------------------------------------------------- revisions
def test_the_spec_revision_reaches_the_download(hub: StandIn) -> None:
    load_dataset(EvalSection("mldr", languages=["en"], revision=COMMIT))
    assert [c[2] for c in hub.calls] == [COMMIT]
    hub.calls.clear()
    load_dataset(EvalSection("miracl", split="dev", languages=["sw"], revision="v1.0"))
    assert [(c[0], c[2]) for c in hub.calls] == [(MIRACL_REPO, "v1.0"),
                                                 (MIRACL_CORPUS_REPO, "v1.0")]
    hub.calls.clear()
    data = load_dataset(EvalSection("miracl", split="dev", languages=["sw"],
                                    revision=f"{COMMIT}, {COMMIT[::-1]}"))
    assert [(c[0], c[2]) for c in hub.calls] == [(MIRACL_REPO, COMMIT),
                                                 (MIRACL_CORPUS_REPO, COMMIT[::-1])]
    assert data.meta["revisions"] == {MIRACL_REPO: COMMIT, MIRACL_CORPUS_REPO: COMMIT[::-1]}
    hub.calls.clear()
    for dataset, bad in (("miracl", "a,b,c"), ("miracl", "a,"), ("mldr", "a,b")):
        with pytest.raises(UsageError, match="does not fit"):
            load_dataset(EvalSection(dataset, split="dev", languages=["sw" if dataset ==
                                                                       "miracl" else "en"],
                                     revision=bad))
    assert hub.calls == []


def test_the_seam_asks_snapshot_download_for_the_pinned_files(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The real seam: a dataset repository, the revision, the patterns, the hub cache."""
    import huggingface_hub

    seen: list[tuple[tuple, dict]] = []

    def snapshot_download(*args: object, **kwargs: object) -> str:
        seen.append((args, kwargs))
        return str(tmp_path)

    from huggingface_hub import constants

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert hub_files.download("miracl/miracl", ("a/*.tsv",), COMMIT) == tmp_path
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # offline: the cache only
    assert hub_files.download("miracl/miracl", ("a/*.tsv",), COMMIT) == tmp_path
    asked = {"repo_type": "dataset", "revision": COMMIT, "allow_patterns": ["a/*.tsv"]}
    assert seen == [(("miracl/miracl",), {**asked, "local_files_only": False}),
                    (("miracl/miracl",), {**asked, "local_files_only": True})]


def _hub_cache(root: Path, repo_id: str, commit: str, branch: str = "main") -> None:
    """The fixture tree laid out as huggingface_hub's cache holds a downloaded revision."""
    repo = root / ("datasets--" + repo_id.replace("/", "--"))
    shutil.copytree(HUB / repo_id, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / branch).write_text(commit)


def test_a_cached_revision_loads_offline_through_huggingface_hub(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caching, with the real ``snapshot_download`` and no network: what the hub cache holds
    for a revision is read back (by commit, or by the branch that points at it)."""
    from huggingface_hub import constants

    if not hasattr(constants, "HF_HUB_OFFLINE"):  # pragma: no cover - very old huggingface_hub
        pytest.skip("huggingface_hub without offline mode")

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    _hub_cache(tmp_path / "hub", MLDR_REPO, COMMIT)
    pinned = load_dataset(EvalSection("mldr", languages=["en"], revision=COMMIT))
    assert pinned.qrels[("en", "q-en-11")] == {"en:doc-en-2"}
    assert pinned.meta["revisions"] == {MLDR_REPO: COMMIT}
    latest = load_dataset(EvalSection("mldr", languages=["en"]))  # main → the cached commit
    assert latest.meta["revisions"] == {MLDR_REPO: COMMIT}
    with pytest.raises(HubAccessError, match="not in the hub cache") as err:
        load_dataset(EvalSection("mldr", languages=["en"], revision=COMMIT[::-1]))
    assert "HF_HUB_OFFLINE" in str(err.value) and str(tmp_path / "hub") in str(err.value)


# ----------------------------------------------------------------------------- errors
def test_a_gated_repository_says_what_to_run(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.utils import GatedRepoError

    gated = _http_error(GatedRepoError, 401, "401 Client Error. Cannot access gated repo "
                                             "for url https://huggingface.co/...")
    stand_in = StandIn(tmp_path, refuse={MIRACL_REPO: gated})
    monkeypatch.setattr(hub_files, "download", stand_in)
    with pytest.raises(HubAccessError) as err:
        load_dataset(EvalSection("miracl", split="dev", languages=["sw"]))
    msg = str(err.value)
    for part in ("miracl/miracl is a gated dataset and this machine has no access", "https://huggingface.co/datasets/miracl/miracl",
                 "accept its terms", "hf auth login", "huggingface-cli login", "HF_TOKEN",
                 "Cannot access gated repo"):
        assert part in msg
    assert err.value.exit_code == 2 and isinstance(err.value.__cause__, GatedRepoError)
    assert [c[0] for c in stand_in.calls] == [MIRACL_REPO]  # stopped before the corpus


@pytest.mark.parametrize("name, status, expected", [
    ("HfHubHTTPError", 403, "accept its terms"),
    ("RepositoryNotFoundError", 401, "does not exist or needs a login"),
    ("RevisionNotFoundError", 404, "has no revision 'nope'"),
    ("HfHubHTTPError", 500, "failed: boom"),
])
def test_hub_errors_become_messages(name: str, status: int, expected: str) -> None:
    from huggingface_hub import utils

    exc = _http_error(getattr(utils, name), status, "boom")
    mapped = hub_files.hub_error(MLDR_REPO, "nope", exc)
    assert isinstance(mapped, HubAccessError) and expected in str(mapped)


def test_unknown_errors_pass_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_files, "download",
                        StandIn(tmp_path, refuse={MLDR_REPO: ValueError("a bug")}))
    with pytest.raises(ValueError, match="a bug"):
        load_dataset(EvalSection("mldr", languages=["en"]))


# ----------------------------------------------------------------------------- no scripts
def test_no_code_path_calls_datasets_load_dataset(hub: StandIn,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("datasets.load_dataset was called")

    monkeypatch.setattr(datasets, "load_dataset", refuse)
    monkeypatch.setattr(datasets, "load_dataset_builder", refuse)
    load_dataset(EvalSection("miracl", split="dev", languages=["sw", "te"]))
    load_dataset(EvalSection("mldr", languages=["de", "en"]))
    monkeypatch.setitem(sys.modules, "datasets", None)  # importing it at all now fails
    load_dataset(EvalSection("miracl", split="train", languages=["te"]))
    load_dataset(EvalSection("mldr", split="dev", languages=["en"]))


# ----------------------------------------------------------------------------- local copies
def test_a_local_copy_in_the_hub_layout_reads_the_same(hub: StandIn, tmp_path: Path) -> None:
    online = load_dataset(EvalSection("mldr", languages=["de", "en"]))
    local = load_dataset(EvalSection("mldr", path=str(HUB / MLDR_REPO)))
    assert (local.queries, local.corpus, local.qrels) == (online.queries, online.corpus,
                                                          online.qrels)
    both = tmp_path / "miracl-files"  # both repositories' language folders in one place
    shutil.copytree(HUB / MIRACL_REPO, both)
    shutil.copytree(HUB / MIRACL_CORPUS_REPO, both, dirs_exist_ok=True)
    online = load_dataset(EvalSection("miracl", split="dev", languages=["sw", "te", "yo"]))
    local = load_dataset(EvalSection("miracl", path=str(both), split="dev"))
    assert local.languages == ["sw", "te", "yo"]
    assert (local.queries, local.corpus, local.qrels) == (online.queries, online.corpus,
                                                          online.qrels)


def test_shards_are_read_in_natural_order(tmp_path: Path) -> None:
    for n in (10, 2, 1, 0):
        (tmp_path / "c").mkdir(exist_ok=True)
        (tmp_path / "c" / f"docs-{n}.jsonl.gz").write_bytes(b"")
    names = [p.name for p in hub_files.files_matching(tmp_path, "c/docs-*.jsonl.gz")]
    assert names == ["docs-0.jsonl.gz", "docs-1.jsonl.gz", "docs-2.jsonl.gz", "docs-10.jsonl.gz"]
    assert hub_files.resolved_revision(tmp_path / COMMIT) == COMMIT
    assert hub_files.resolved_revision(tmp_path / "main") == ""


# ----------------------------------------------------------------------------- the CLI
def test_xlrun_evaluate_on_miracl_as_documented(hub: StandIn, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """``xlrun evaluate MODEL --dataset miracl --langs sw,te``: dev by default, stored."""
    from xlrun.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XLRUN_OUTPUT", str(tmp_path / "out"))
    db = f"sqlite:///{tmp_path / 'ev.db'}"
    assert DATASETS.get("miracl").default_split == "dev"
    assert DATASETS.get("mldr").default_split == "test"
    result = CliRunner().invoke(main, ["evaluate", "quickstart:tiny", "--dataset", "miracl",
                                       "--langs", "sw,te", "--db", db, "--device", "cpu",
                                       "--top-k", "3"])
    assert result.exit_code == 0, result.output
    assert "measures per setting and query language" in result.stdout
    out = CliRunner().invoke(main, ["sql", "--db", db, "--format", "csv",
                                    "SELECT q.query_lang, q.setting, COUNT(*) FROM query_results q "
                                    "GROUP BY 1, 2 ORDER BY 1, 2"])
    rows = out.stdout.strip().splitlines()[1:]
    # 103 has no relevant passage; cross is undefined for monolingual collections
    assert rows == ["sw,mono,2", "sw,multi,2", "te,mono,2", "te,multi,2"]
    bad = CliRunner().invoke(main, ["evaluate", "quickstart:tiny", "--dataset", "miracl",
                                    "--split", "testB", "--db", db])
    assert bad.exit_code == 2 and "one of: train, dev" in bad.output
