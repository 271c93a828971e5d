"""The seen/unseen database of the ``--by language`` and ``distance_to_training`` tests:
an untrained run, hybrid/size and hybrid/clustered × seeds 1, 2, with Belebele-like rows."""

from __future__ import annotations

import json

from sqlalchemy import insert

from xlrun.db.engine import get_engine
from xlrun.db.models import (
    BatchLanguages,
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryResult,
    Run,
)
from xlrun.langsim.distances import distance_matrix

SOURCE = "uriel:syntax_knn"
TRAINED = {"en": "q+p", "de": "q+p", "fr": "p"}  # fr only as passages (en → fr batches)
EVAL = ("en", "de", "fr", "sw", "ber")  # sw: unseen; ber: unseen and without typology
CLUSTERS = [["de", "en"], ["fr"]]


def value(arm: int, seed: int, q: str, d: str, i: int) -> float:
    """A deterministic AP: the clustered arm (1) is 0.1 better on rows with an unseen
    language, the same elsewhere."""
    base = 0.3 + 0.01 * i + 0.02 * seed + 0.05 * (q == d)
    return base + (0.1 if arm == 1 and ({q, d} & {"sw", "ber"}) else 0.0)


def _row(run_id: int, setting: str, q: str, d: str, i: int, v: float) -> dict[str, object]:
    return {"run_id": run_id, "dataset": "bb", "split": "test", "setting": setting,
            "query_lang": q, "doc_lang": d, "query_id": f"q{i}", "n_relevant": 1, "ap": v,
            "ndcg_at_10": v, "mrr_at_10": v, "recall_at_100": 1.0, "first_relevant_rank": 1}


def write_seen_db(sqlite_url: str) -> str:
    """Untrained run, hybrid/size and hybrid/clustered × seeds 1, 2; Belebele-like rows: mono,
    cross into English, and the pool, 4 questions. Returns the URL."""
    engine = get_engine(sqlite_url)
    dm = distance_matrix(SOURCE, sorted(TRAINED))
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
                if clustering:  # as a clustered run stores them: its training languages'
                    conn.execute(insert(LanguageDistance), [
                        {"run_id": rid, "source": SOURCE, "lang_a": a, "lang_b": b,
                         "distance": dm.get(a, b)} for a in dm.langs for b in dm.langs
                        if a != b])
                    conn.execute(insert(LanguageCluster), [
                        {"run_id": rid, "lang": lang, "cluster": c}
                        for c, members in enumerate(CLUSTERS) for lang in members])
                rows = [_row(rid, "mono" if q == d else "cross", q, d, i,
                             value(arm, seed, q, d, i)) for q, d in pairs for i in range(4)]
                rows += [_row(rid, "multi", q, "all", i, value(arm, seed, q, "all", i))
                         for q in EVAL for i in range(4)]
                conn.execute(insert(QueryResult), rows)
    engine.dispose()
    return sqlite_url
