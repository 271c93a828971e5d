"""A small complete study written straight into a results database, for the HTML page's tests
and its size benchmark (``benchmarks/html_page.py``): every table a page reads is filled —
runs of several statuses with stage timings, per-query results in the mono, cross and multi
settings (with the bias columns), language distances and clusters of the clustered arm,
``train_log``, ``batch_languages`` and ``sampling_plan``.

Arms (whole arms, ``--compare arm``): ``hybrid/size`` (the baseline), ``hybrid/clustered[…]``
(better on pairs inside a cluster), ``monolingual/size`` (worse cross-lingually) and, with
``untrained``, ``none`` (one run, far worse, no training). ``extra_arms`` adds more clustered
arms (other k) for big studies.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, insert

from xlrun.db.models import (
    BatchLanguages,
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryResult,
    Run,
    SamplingPlan,
    TrainLog,
)

SCRIPTS: dict[str, str] = {"en": "Latn", "de": "Latn", "es": "Latn", "fi": "Latn",
                           "ru": "Cyrl", "uk": "Cyrl", "bg": "Cyrl", "el": "Grek",
                           "ar": "Arab", "hi": "Deva", "zh": "Hani"}


@dataclass(frozen=True)
class Study:
    """The size of the study."""

    langs: tuple[str, ...] = ("en", "de", "ru", "el")
    seeds: tuple[int, ...] = (1, 2, 3)
    n_questions: int = 12
    steps: int = 40
    log_every: int = 10
    untrained: bool = True
    extra_arms: int = 0
    failed_runs: int = 1
    experiment: str = "study"
    rng_seed: int = 0


def _arms(s: Study) -> list[tuple[str, str | None, str | None, float]]:
    """``(sampler, language_sampling, clustering, strength)`` per arm."""
    arms = [("hybrid", "size", None, 0.0), ("hybrid", "clustered", "script/k=3/average/within",
                                            0.04), ("monolingual", "size", None, -0.05)]
    arms += [("hybrid", "clustered", f"script/k={k + 4}/average/within", 0.01 * (k % 3))
             for k in range(s.extra_arms)]
    return arms


def build(engine: Engine, s: Study = Study()) -> None:
    """Write study ``s`` into ``engine``'s (migrated, empty) database."""
    rng = np.random.default_rng(s.rng_seed)
    langs = list(s.langs)
    clusters = {lang: sorted(set(SCRIPTS.values())).index(SCRIPTS[lang]) for lang in langs}
    dist = {(a, b): (0.0 if SCRIPTS[a] == SCRIPTS[b] else 1.0) * 0.6 + 0.1 * abs(i - j) / len(langs)
            for i, a in enumerate(langs) for j, b in enumerate(langs) if a < b}
    difficulty = rng.uniform(0.25, 0.75, size=s.n_questions)
    offset = {(q, d): rng.normal(0, 0.04) for q in langs for d in [*langs, "all"]}
    with engine.begin() as conn:
        exp_id = conn.execute(insert(Experiment).values(
            name=s.experiment, spec_toml=f"[experiment]\nname = \"{s.experiment}\"\n")
            .returning(Experiment.id)).scalar_one()
        runs = [(arm, seed) for arm in _arms(s) for seed in s.seeds]
        if s.untrained:
            runs.append((("none", None, None, -0.3), 0))
        for k, ((sampler, sampling, clustering, strength), seed) in enumerate(runs):
            trained = sampler != "none"
            status = "failed" if k == len(s.seeds) - 1 and s.failed_runs else "done"
            config = {"experiment": {"name": s.experiment},
                      "sampling": {"strategy": sampler, "language_sampling": sampling},
                      "train": {"steps": s.steps if trained else 0, "seed": seed,
                                "log_every": s.log_every},
                      "eval": [{"dataset": "synth", "split": "test",
                                "settings": ["mono", "cross", "multi"]}]}
            timings = {"load": 0.4, "data": 0.1, "train": 100.0 + 5 * k if trained else 0.0,
                       "encode": 8.0, "search": 1.5, "metrics": 0.5, "write": 0.7,
                       "total": 111.2 + 5 * k}
            run_id = conn.execute(insert(Run).values(
                experiment_id=exp_id, run_key=f"{k:016x}", status=status,
                config_json=json.dumps(config), model="tiny", sampler=sampler,
                language_sampling=sampling, clustering=clustering, seed=seed,
                timings_json=json.dumps(timings) if status == "done" else None,
                error="RuntimeError: out of memory" if status == "failed" else None,
            ).returning(Run.id)).scalar_one()
            if status != "done":
                continue
            seed_offset = rng.normal(0, 0.01)
            rows = []
            for q in langs:
                for d in [*langs, "all"]:
                    setting = "multi" if d == "all" else "mono" if q == d else "cross"
                    same = d != "all" and clusters[q] == clusters[d]
                    effect = strength * (1.0 if (same or sampler != "hybrid") else 0.3)
                    if setting == "mono" and sampler == "monolingual":
                        effect = 0.02
                    values = np.clip(difficulty + offset[(q, d)] + effect + seed_offset
                                     + rng.normal(0, 0.05, s.n_questions), 0.0, 1.0)
                    for i, v in enumerate(values.tolist()):
                        row = {"run_id": run_id, "dataset": "synth", "split": "test",
                               "setting": setting, "query_lang": q, "doc_lang": d,
                               "query_id": f"q{i:04d}", "n_relevant": 1, "ap": v,
                               "ndcg_at_10": v, "mrr_at_10": v, "recall_at_100": min(1.0, v + 0.2),
                               "first_relevant_rank": 1, "rank_distance": None,
                               "same_lang_at_10": None, "same_lang_expected": None}
                        if setting == "multi":
                            row.update(rank_distance=float(rng.integers(0, 40)) * (1.5 - v),
                                       same_lang_at_10=min(1.0, 0.6 - strength + 0.1 * v),
                                       same_lang_expected=1.0 / len(langs))
                        rows.append(row)
            conn.execute(insert(QueryResult), rows)
            if not trained:
                continue
            conn.execute(insert(TrainLog), [
                {"run_id": run_id, "step": step,
                 "loss": 3.0 * math.exp(-step / (0.4 * s.steps)) + 0.4 - strength
                 + float(rng.normal(0, 0.05)), "lr": 1e-3, "examples_per_s": 50.0}
                for step in range(s.log_every, s.steps + 1, s.log_every)])
            batches, plan = [], []
            for step in range(1, s.steps + 1):
                q = langs[int(rng.integers(len(langs)))]
                mono = sampler == "monolingual" or step % 2 == 0
                d = q if mono else langs[(langs.index(q) + 1 + int(rng.integers(
                    len(langs) - 1))) % len(langs)]
                batches.append({"run_id": run_id, "step": step,
                                "batch_kind": "mono" if mono else "cross", "query_lang": q,
                                "doc_lang": d, "pairs": 8})
            for q in langs:
                for d in langs:
                    kind = "mono" if q == d else "cross"
                    plan.append({"run_id": run_id, "batch_kind": kind, "query_lang": q,
                                 "doc_lang": d, "probability": 1.0 / (len(langs) if q == d
                                                                      else len(langs) ** 2),
                                 "pool": 50})
            conn.execute(insert(BatchLanguages), batches)
            conn.execute(insert(SamplingPlan), plan)
            if sampling == "clustered":
                conn.execute(insert(LanguageCluster), [
                    {"run_id": run_id, "lang": lang, "cluster": c}
                    for lang, c in clusters.items()])
                conn.execute(insert(LanguageDistance), [
                    {"run_id": run_id, "source": "script", "lang_a": a, "lang_b": b,
                     "distance": v} for (a, b), v in dist.items()])
