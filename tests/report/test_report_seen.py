"""``xlrun report --by language``: languages marked seen or unseen from what runs trained on
(``batch_languages``), the pooled ``[seen]`` / ``[unseen]`` cells, and each language's nearest
training cluster — through a database and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from seen_db import CLUSTERS, SOURCE, value, write_seen_db

from xlrun.cli import main
from xlrun.langsim.distances import distance_matrix
from xlrun.report.seen import explode


@pytest.fixture
def db(sqlite_url: str) -> str:
    """The database of :func:`seen_db.write_seen_db`."""
    return write_seen_db(sqlite_url)


def _report(db: str, *args: str) -> dict:
    result = CliRunner().invoke(main, ["report", "--db", db, "--by", "language",
                                       "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _rows(rep: dict) -> pl.DataFrame:
    return pl.DataFrame(rep["rows"] if "rows" in rep else rep["data"], infer_schema_length=None)


def test_every_language_is_marked_and_pools_split_seen_from_unseen(db: str) -> None:
    rep = _report(db, "--compare", "arm", "--baseline", "hybrid/size")
    f = _rows(rep)
    clustered = f.filter(pl.col("arm").str.starts_with("hybrid/clustered"))
    marks = {r["language"]: (r["trained"], r["status"]) for r in clustered.iter_rows(named=True)}
    assert marks == {"de": ("q+p", "seen"), "en": ("q+p", "seen"), "fr": ("p", "seen"),
                     "sw": ("-", "unseen"), "ber": ("-", "unseen"),
                     "[seen]": (None, "seen"), "[unseen]": (None, "unseen")}
    assert set(f.filter(pl.col("arm") == "none")["trained"].drop_nulls()) == set()
    # the planted effect: +0.1 on rows with an unseen language, nothing elsewhere
    delta = dict(zip(clustered["language"], clustered["delta"], strict=True))
    assert delta["[unseen]"] == pytest.approx(0.1, abs=1e-5)
    assert delta["[seen]"] == pytest.approx(0.0, abs=1e-5)
    assert delta["sw"] == pytest.approx(0.1, abs=1e-5)
    assert delta["de"] == pytest.approx(0.0, abs=1e-5)
    # a pool's mean: questions averaged over the pool's rows, then over runs
    size = f.filter((pl.col("arm") == "hybrid/size") & (pl.col("language") == "[unseen]"))
    want = np.mean([np.mean([value(0, s, q, d, i) for q, d in
                             (("sw", "sw"), ("sw", "en"), ("sw", "all"), ("ber", "ber"),
                              ("ber", "en"), ("ber", "all"))]) for s in (1, 2) for i in range(4)])
    assert size["mean"][0] == pytest.approx(want, abs=1e-5)


def test_nearest_training_cluster_is_the_closest_on_average(db: str) -> None:
    rep = _report(db, "--compare", "arm")
    f = _rows(rep).filter(pl.col("arm").str.starts_with("hybrid/clustered"))
    near = {r["language"]: (r["nearest_cluster"], r["cluster_distance"])
            for r in f.iter_rows(named=True)}
    dm = distance_matrix(SOURCE, ["de", "en", "fr", "sw"])
    to = {tuple(c): np.mean([dm.get("sw", m) for m in c]) for c in CLUSTERS}
    best = min(to, key=lambda c: to[c])
    assert near["sw"] == (f"[{' '.join(best)}]", pytest.approx(to[best], abs=1e-5))
    assert near["de"] == ("[de en]", pytest.approx(dm.get("de", "en"), abs=1e-5))
    assert near["ber"] == (None, None)  # URIEL has no typology for Berber
    assert any("no uriel:syntax_knn distance for 1 language(s) (ber)" in n
               for n in rep["meta"]["notes"])
    plain = _rows(_report(db))
    assert plain.filter(pl.col("language") == "sw")["status"].to_list() == ["unseen"]
    assert plain["nearest_cluster"].drop_nulls().len() == 0  # arms pooled: no one clustering


def test_explode_puts_a_row_under_each_language_of_its_sides() -> None:
    df = pl.DataFrame({"query_lang": ["de", "de", "de"], "doc_lang": ["de", "en", "all"],
                       "ap": [0.1, 0.2, 0.3]})
    out = explode(df).sort("language", "doc_lang")
    assert out.select("language", "doc_lang").rows() == [
        ("de", "all"), ("de", "de"), ("de", "en"), ("en", "en")]


def test_the_table_shows_the_marks(db: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", "--db", db, "--by", "language",
                                       "--compare", "arm", "--baseline", "hybrid/size"])
    assert result.exit_code == 0, result.output
    for word in ("trained", "status", "nearest_cluster", "[unseen]", "[seen]", "q+p"):
        assert word in result.stdout
