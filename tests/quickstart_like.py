"""A results database shaped like the quickstart's, generated in a second without training.

The quickstart (``experiments/quickstart.toml``) trains for minutes; tests of what reads
results (the Python API, the example notebook, report layouts) need its *shape*, not its
training: experiment ``quickstart``; arms ``hybrid/size``, ``hybrid/clustered[script/k=3/
average/within]`` and ``monolingual/size`` with seeds 1 and 2, and the untrained model
(``none``, one run); parallel questions in four languages of three scripts; the mono, cross
and multi settings (bias columns in multi); script distances and clusters stored by the
clustered runs; a training log; ``run_metrics`` as the pipeline writes them. Values are drawn
around planted effects (trained arms far above the untrained model; the clustered arm better on
same-script pairs, the monolingual arm worse across languages) with question difficulty and
seed noise, so the tests have real intervals and marks; ``batch_languages`` of 20 small
batches per trained run give ``--exposure`` something to read.
"""

from __future__ import annotations

import json
from itertools import product

import numpy as np
from sqlalchemy import insert

from xlrun.db.engine import get_engine
from xlrun.db.models import (
    BatchLanguages,
    Experiment,
    LanguageCluster,
    LanguageDistance,
    QueryResult,
    Run,
    RunMetric,
    TrainLog,
)

LANGS = ("de", "el", "en", "ru")
SCRIPT = {"de": 0, "en": 0, "el": 1, "ru": 2}
"""Latin, Greek, Cyrillic: the clustered arm's three clusters."""
CLUSTERING = "script/k=3/average/within"
N_QUESTIONS = 30
SPEC = """[experiment]
name = "quickstart"
description = "Generated for tests: the quickstart's arms without training."
"""

ARMS = (  # sampler, language_sampling, clustering, seeds, cross effect, same-script effect
    ("hybrid", "size", None, (1, 2), 0.30, 0.0),
    ("hybrid", "clustered", CLUSTERING, (1, 2), 0.24, 0.08),
    ("monolingual", "size", None, (1, 2), 0.08, 0.0),
    ("none", None, None, (0,), 0.0, 0.0),
)


def _clip(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def _batch(sampler: str, clustering: str | None, step: int) -> list[tuple[str, str, str]]:
    """The language cells of training batch ``step``: even steps monolingual (one language),
    odd steps cross-lingual (a pair; same-script pairs only under clustering) unless the arm
    is monolingual."""
    lang = LANGS[(step // 2) % len(LANGS)]
    if sampler == "monolingual" or step % 2 == 0:
        return [("mono", lang, lang)]
    others = [d for d in LANGS if d != lang and (not clustering or SCRIPT[d] == SCRIPT[lang])]
    return [("cross", lang, others[step % len(others)])] if others else [("mono", lang, lang)]


def build(url: str, rng_seed: int = 0) -> None:
    """Write the database at ``url`` (a fresh one; migrated here)."""
    rng = np.random.default_rng(rng_seed)
    difficulty = rng.normal(0.0, 0.08, size=N_QUESTIONS)
    engine = get_engine(url)
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="quickstart", spec_toml=SPEC)
                           .returning(Experiment.id)).scalar_one()
        results: list[dict[str, object]] = []
        metrics: list[dict[str, object]] = []
        for sampler, ls, clustering, seeds, cross, same_script in ARMS:
            for seed in seeds:
                steps = 0 if sampler == "none" else 200
                config = {"model": {"name": "quickstart:tiny"},
                          "sampling": {"strategy": sampler, "language_sampling": ls},
                          "train": {"steps": steps, "seed": seed, "lr": 0.002}}
                run_id = conn.execute(insert(Run).values(
                    experiment_id=exp, run_key=f"{sampler}-{ls}-{seed}", status="done",
                    config_json=json.dumps(config), model="quickstart:tiny", sampler=sampler,
                    language_sampling=ls, clustering=clustering, seed=seed,
                    device="cpu").returning(Run.id)).scalar_one()
                if clustering:
                    conn.execute(insert(LanguageCluster), [
                        {"run_id": run_id, "lang": lang, "cluster": SCRIPT[lang]}
                        for lang in LANGS])
                    conn.execute(insert(LanguageDistance), [
                        {"run_id": run_id, "source": "script", "lang_a": a, "lang_b": b,
                         "distance": float(SCRIPT[a] != SCRIPT[b])}
                        for a, b in product(LANGS, LANGS) if a < b])
                if steps:
                    conn.execute(insert(BatchLanguages), [
                        {"run_id": run_id, "step": step, "batch_kind": kind, "query_lang": q,
                         "doc_lang": d, "pairs": 4}
                        for step in range(20) for kind, q, d in _batch(sampler, clustering, step)])
                    conn.execute(insert(TrainLog), [
                        {"run_id": run_id, "step": s, "loss": float(3.0 * np.exp(-s / 60) + 0.2),
                         "lr": 0.002, "examples_per_s": 500.0} for s in range(10, 201, 10)])
                seed_shift = rng.normal(0.0, 0.01)
                by_setting: dict[str, list[float]] = {}
                for q, d in product(LANGS, [*LANGS, "all"]):
                    setting = "multi" if d == "all" else "mono" if q == d else "cross"
                    base = {"mono": 0.65, "cross": 0.19, "multi": 0.15}[setting]
                    gain = 0.3 if setting == "mono" else cross
                    if setting == "cross" and SCRIPT[q] == SCRIPT[d]:
                        gain += same_script
                    if sampler == "none":
                        gain = 0.0
                    for i in range(N_QUESTIONS):
                        ap = _clip(base + gain + seed_shift + difficulty[i]
                                   + rng.normal(0.0, 0.04))
                        row = {"run_id": run_id, "dataset": "quickstart", "split": "test",
                               "setting": setting, "query_lang": q, "doc_lang": d,
                               "query_id": f"q{i}", "n_relevant": 1, "ap": ap,
                               "ndcg_at_10": ap, "mrr_at_10": ap,
                               "recall_at_100": _clip(ap + 0.2),
                               "first_relevant_rank": int(1 + (1 - ap) * 20),
                               "rank_distance": None, "same_lang_at_10": None,
                               "same_lang_expected": None}
                        if setting == "multi":
                            row.update(rank_distance=float(rng.integers(0, 40)) * (1 - ap),
                                       same_lang_at_10=_clip(0.5 - gain / 2
                                                             + rng.normal(0, 0.1)),
                                       same_lang_expected=1 / len(LANGS))
                        results.append(row)
                        by_setting.setdefault(setting, []).append(ap)
                metrics += [{"run_id": run_id, "dataset": "quickstart", "split": "test",
                             "setting": s, "query_lang": "all", "doc_lang": "all",
                             "metric": "map", "value": float(np.mean(v))}
                            for s, v in by_setting.items()]
        conn.execute(insert(QueryResult), results)
        conn.execute(insert(RunMetric), metrics)
    engine.dispose()
