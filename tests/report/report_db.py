"""Synthetic results databases for the report tests: helpers imported by the test modules
(a module name of its own, so that ``conftest`` of another test folder never shadows it)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine, insert

from xlrun.db.models import (
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryResult,
    Run,
)


def new_engine(url: str) -> Engine:
    """A migrated engine (``get_engine``)."""
    from xlrun.db.engine import get_engine

    return get_engine(url)


@dataclass
class Synth:
    """A planted-effect experiment: ``value = query difficulty + pair offset + arm effect on
    some pairs + slope * distance (for the treated arm) + noise``."""

    langs: tuple[str, ...] = ("en", "de", "fi")
    arms: tuple[str, ...] = ("random", "clustered")
    seeds: tuple[int, ...] = (0, 1, 2)
    n_queries: int = 60
    effect: dict[tuple[str, str], float] = field(default_factory=dict)
    slope: float = 0.0  # extra delta per unit of distance for the non-first arm
    distances: dict[tuple[str, str], float] = field(default_factory=dict)
    clusters: dict[str, int] = field(default_factory=dict)
    noise: float = 0.05
    query_sd: float = 0.15
    rng_seed: int = 0
    experiment: str = "exp"
    setting: str = "cross"
    with_multi: bool = False


def populate(engine: Engine, s: Synth, status: str = "done") -> None:
    """Write ``s`` into ``engine``'s database."""
    rng = np.random.default_rng(s.rng_seed)
    pairs = [(q, d) for q in s.langs for d in s.langs]
    difficulty = {(q, i): rng.normal(0.5, s.query_sd) for q in s.langs
                  for i in range(s.n_queries)}
    offset = {p: rng.normal(0, 0.05) for p in pairs}
    with engine.begin() as conn:
        exp_id = conn.execute(insert(Experiment).values(name=s.experiment, spec_toml="")
                              .returning(Experiment.id)).scalar_one()
        rows: list[dict[str, object]] = []
        for a_i, arm in enumerate(s.arms):
            for seed in s.seeds:
                cfg = {"sampling": {"language_sampling": arm, "pairing": "within"},
                       "train": {"lr": 1e-5 * (a_i + 1), "seed": seed}}
                run_id = conn.execute(insert(Run).values(
                    experiment_id=exp_id, run_key=f"{s.experiment}-{arm}-{seed}", status=status,
                    config_json=json.dumps(cfg), model="m", sampler="hybrid",
                    language_sampling=arm, clustering="manual/within" if a_i else None,
                    seed=seed).returning(Run.id)).scalar_one()
                if s.distances:
                    conn.execute(insert(LanguageDistance), [
                        {"run_id": run_id, "source": "synthetic", "lang_a": a, "lang_b": b,
                         "distance": v} for (a, b), v in s.distances.items()])
                if s.clusters and a_i:
                    conn.execute(insert(LanguageCluster), [
                        {"run_id": run_id, "lang": lang, "cluster": c}
                        for lang, c in s.clusters.items()])
                for q, d in pairs:
                    dist = s.distances.get((q, d), s.distances.get((d, q), 0.0))
                    delta = (s.effect.get((q, d), 0.0) + s.slope * dist) if a_i else 0.0
                    noise = rng.normal(0, s.noise, size=s.n_queries)
                    for i in range(s.n_queries):
                        v = difficulty[(q, i)] + offset[(q, d)] + delta + noise[i]
                        rows.append(_row(run_id, s.setting, q, d, f"q{i}", v))
                if s.with_multi:
                    for q in s.langs:
                        for i in range(s.n_queries):
                            r = _row(run_id, "multi", q, "all", f"q{i}", 0.4)
                            r.update(rank_distance=float(i % 5) + a_i,
                                     same_lang_at_10=0.5 + 0.1 * a_i,
                                     same_lang_expected=1.0 / len(s.langs))
                            rows.append(r)
        conn.execute(insert(QueryResult), rows)


def _row(run_id: int, setting: str, q: str, d: str, qid: str, v: float) -> dict[str, object]:
    return {"run_id": run_id, "dataset": "synth", "split": "test", "setting": setting,
            "query_lang": q, "doc_lang": d, "query_id": qid, "n_relevant": 1,
            "ap": float(v), "ndcg_at_10": float(v), "mrr_at_10": float(v),
            "recall_at_100": min(1.0, float(v) + 0.3), "first_relevant_rank": 1,
            "rank_distance": None, "same_lang_at_10": None, "same_lang_expected": None}
