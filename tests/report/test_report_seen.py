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
from sqlalchemy import insert

from xlrun.cli import main
from xlrun.db.engine import get_engine
from xlrun.db.models import BatchLanguages, Experiment, LanguageCluster, QueryResult, Run
from xlrun.langsim.distances import distance_matrix
from xlrun.report.seen import explode

SOURCE = "uriel:syntax_knn"
TRAINED = {"en": "q+p", "de": "q+p", "fr": "p"}  # fr only as passages (en → fr batches)
EVAL = ("en", "de", "fr", "sw", "ber")  # sw: unseen; ber: unseen and without typology
CLUSTERS = [["de", "en"], ["fr"]]


def _value(arm: int, seed: int, q: str, d: str, i: int) -> float:
    """A deterministic AP: the clustered arm (1) is 0.1 better on rows with an unseen
    language, the same elsewhere."""
    base = 0.3 + 0.01 * i + 0.02 * seed + 0.05 * (q == d)
    return base + (0.1 if arm == 1 and ({q, d} & {"sw", "ber"}) else 0.0)


def _row(run_id: int, setting: str, q: str, d: str, i: int, v: float) -> dict[str, object]:
    return {"run_id": run_id, "dataset": "bb", "split": "test", "setting": setting,
            "query_lang": q, "doc_lang": d, "query_id": f"q{i}", "n_relevant": 1, "ap": v,
            "ndcg_at_10": v, "mrr_at_10": v, "recall_at_100": 1.0, "first_relevant_rank": 1}


@pytest.fixture
def db(sqlite_url: str) -> str:
    """Untrained run, hybrid/size and hybrid/clustered × seeds 1, 2; Belebele-like rows: mono,
    cross into English, and the pool, 4 questions."""
    engine = get_engine(sqlite_url)
    pairs = [(x, x) for x in EVAL] + [(x, "en") for x in EVAL if x != "en"]
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="e", spec_toml="")
                           .returning(Experiment.id)).scalar_one()
        arms = [(None, "none", None, None, 0), ("hybrid", "size", None, 1, 0),
                ("hybrid", "clustered", f"{SOURCE}/k=2/average/within", 1, 1)]
        for sampler, ls, clustering, seeds, arm in arms:
            for seed in ([1, 2] if seeds else [0]):
                cfg = {"sampling": {"similarity": SOURCE, "language_sampling": ls},
                       "train": {"seed": seed}}
                rid = conn.execute(insert(Run).values(
                    experiment_id=exp, run_key=f"{ls}-{seed}", status="done",
                    config_json=json.dumps(cfg), model="m", sampler=sampler or "none",
                    language_sampling=ls if sampler else None, clustering=clustering,
                    seed=seed).returning(Run.id)).scalar_one()
                if sampler:
                    conn.execute(insert(BatchLanguages), [
                        {"run_id": rid, "step": 1, "batch_kind": "mono", "query_lang": "en",
                         "doc_lang": "en", "pairs": 4},
                        {"run_id": rid, "step": 2, "batch_kind": "cross", "query_lang": "de",
                         "doc_lang": "en", "pairs": 4},
                        {"run_id": rid, "step": 3, "batch_kind": "cross", "query_lang": "en",
                         "doc_lang": "de", "pairs": 4},
                        {"run_id": rid, "step": 4, "batch_kind": "cross", "query_lang": "en",
                         "doc_lang": "fr", "pairs": 4}])
                if clustering:
                    conn.execute(insert(LanguageCluster), [
                        {"run_id": rid, "lang": lang, "cluster": c}
                        for c, members in enumerate(CLUSTERS) for lang in members])
                rows = [_row(rid, "mono" if q == d else "cross", q, d, i,
                             _value(arm, seed, q, d, i)) for q, d in pairs for i in range(4)]
                rows += [_row(rid, "multi", q, "all", i, _value(arm, seed, q, "all", i))
                         for q in EVAL for i in range(4)]
                conn.execute(insert(QueryResult), rows)
    engine.dispose()
    return sqlite_url


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
    want = np.mean([np.mean([_value(0, s, q, d, i) for q, d in
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
