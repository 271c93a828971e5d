"""Tatoeba (LASER's ``data/tatoeba/v1``): bitext retrieval in both directions of each pair.

``tests/fixtures/tatoeba`` mirrors LASER's layout with sentences written for these tests
(five pairs: deu, fra, ast, cmn and ber with English; every pair has the same English lines,
so a pair that searched another pair's English sentences would find ties).
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.runner import evaluate_dataset
from xlrun.evaluate.tasks import DATASETS, load_dataset
from xlrun.evaluate.tasks.tatoeba import LASER_LANGUAGES
from xlrun.languages import normalize
from xlrun.spec.schema import EvalSection

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "tatoeba"


class LineEncoder:
    """Encodes a sentence as the one-hot vector of its line in the fixture (both sides of a
    line get the same vector): a perfect bitext miner, if the loader aligns the lines."""

    def __init__(self, folder: Path) -> None:
        self.line: dict[str, int] = {}
        for f in sorted(folder.glob("tatoeba.*")):
            for n, text in enumerate(f.read_text(encoding="utf-8").splitlines()):
                self.line[text.strip()] = n

    def encode(self, texts: list[str], side: str, batch_size: int = 32,
               progress: object = None) -> np.ndarray:
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for i, t in enumerate(texts):
            out[i, self.line[t]] = 1.0
        return out


def _section(**kw: object) -> EvalSection:
    return EvalSection("tatoeba", path=str(FIXTURE), **kw)  # type: ignore[arg-type]


def test_every_laser_language_has_an_xlrun_code_of_its_own() -> None:
    codes = [normalize(c) for c in LASER_LANGUAGES]
    assert len(LASER_LANGUAGES) == 112 and len(set(codes)) == 112
    assert "en" not in codes and all(len(c) <= 8 for c in codes)
    assert {normalize("cmn"), normalize("yue"), normalize("wuu")} == {"zh", "yue", "wuu"}
    assert (normalize("nob"), normalize("nno"), normalize("kur")) == ("no", "nn", "ku")


def test_the_folder_loads_as_pairs_with_english() -> None:
    data = load_dataset(_section())
    assert data.languages == ["ast", "ber", "de", "en", "fr", "zh"]
    assert data.settings == ("cross",) and data.parallel
    assert {lang: len(qs) for lang, qs in data.queries.items()} == {
        "en": 25, "ast": 5, "ber": 5, "de": 5, "fr": 5, "zh": 5}
    assert data.cross is not None and sorted(data.cross) == sorted(
        [(x, "en") for x in ("ast", "ber", "de", "fr", "zh")]
        + [("en", x) for x in ("ast", "ber", "de", "fr", "zh")])
    de = data.queries["de"][2]
    assert (de.id, de.text) == ("de:3", "Mein Bruder spielt jeden Abend Gitarre.")
    assert data.qrels[("de", "de:3")] == {"en:de:3"}
    assert data.qrels[("en", "de:3")] == {"de:de:3"}
    assert DATASETS.get("tatoeba").known_languages(_section()) == data.languages


def test_both_directions_search_only_their_pair() -> None:
    data = load_dataset(_section())
    out = evaluate_dataset(LineEncoder(FIXTURE), data, _section(top_k=100))
    qr = out.query_results.to_pydict()
    cells = Counter(zip(qr["setting"], qr["query_lang"], qr["doc_lang"], strict=True))
    assert set(cells) == {("cross", x, y) for x, y in data.cross or {}}
    assert set(cells.values()) == {5}
    assert set(qr["first_relevant_rank"]) == {1}  # aligned line by line
    rt = out.retrieved.to_pydict()
    assert max(rt["rank"]) == 5  # a pair's candidates: its own five sentences
    for qlang, doc in zip(rt["query_lang"], rt["doc_id"], strict=True):
        side, pair, _ = doc.split(":")
        assert pair == (qlang if qlang != "en" else side)
    assert out.metric("cross", "mrr@10") == 1.0


def test_languages_pairs_and_subsampling_choose_what_is_evaluated() -> None:
    data = load_dataset(_section(languages=["de", "en"], max_queries_per_language=2))
    assert data.languages == ["de", "en"]
    assert [q.id for q in data.queries["de"]] == [q.id for q in data.queries["en"]]
    assert len(data.queries["de"]) == 2
    out = evaluate_dataset(LineEncoder(FIXTURE), load_dataset(_section()),
                           _section(pairs=[["*", "en"]]))
    qr = out.query_results.to_pydict()
    assert set(qr["doc_lang"]) == {"en"} and "en" not in set(qr["query_lang"])


def test_misaligned_or_missing_sides_are_errors_that_name_the_files(tmp_path: Path) -> None:
    folder = tmp_path / "v1"
    shutil.copytree(FIXTURE, folder)
    (folder / "tatoeba.fra-eng.fra").write_text("Un.\nDeux.\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"tatoeba.fra-eng.fra has 2 lines but .*"
                                         r"tatoeba.fra-eng.eng has 5"):
        load_dataset(EvalSection("tatoeba", path=str(folder)))
    (folder / "tatoeba.fra-eng.eng").unlink()
    with pytest.raises(UsageError, match="its English side tatoeba.fra-eng.eng is missing"):
        load_dataset(EvalSection("tatoeba", path=str(folder), languages=["de"]))


def test_a_blank_line_is_skipped_on_both_sides(tmp_path: Path) -> None:
    folder = tmp_path / "v1"
    folder.mkdir()
    (folder / "tatoeba.deu-eng.deu").write_text("Eins.\n\nDrei.\n", encoding="utf-8")
    (folder / "tatoeba.deu-eng.eng").write_text("One.\nTwo.\nThree.\n", encoding="utf-8")
    data = load_dataset(EvalSection("tatoeba", path=str(folder)))
    assert [q.id for q in data.queries["en"]] == ["de:1", "de:3"]
    assert data.meta["skipped_blank_lines"] == 1


def test_the_section_is_checked_before_anything_loads(tmp_path: Path) -> None:
    ds = DATASETS.get("tatoeba")
    with pytest.raises(SpecError, match="only the cross setting"):
        ds.validate(_section(settings=["mono", "multi"]), "eval[0]")
    with pytest.raises(SpecError, match="reads a local folder"):
        ds.validate(EvalSection("tatoeba", path=""), "eval[0]")
    with pytest.raises(SpecError, match="has no language 'ru'"):
        ds.validate(_section(languages=["ru"]), "eval[0]")
    with pytest.raises(SpecError, match=r"eval\[0\].pairs\[0\]"):
        ds.validate(_section(pairs=[["en", "ru"]]), "eval[0]")
    ds.validate(_section(languages=["de", "en"]), "eval[0]")
