"""The warm worker: runs executed after others in one process give exactly the results of a
run executed alone in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.execute.cache import CachingTokenizer
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

REPO = Path(__file__).resolve().parents[2]
SPEC = """
[experiment]
name = "warm"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 32
passage_max_length = 48
[train_data]
source = "quickstart"
languages = ["en", "de", "ru", "el"]
[sampling]
strategy = "hybrid"
similarity = "script"
n_clusters = 2
[train]
steps = 12
batch_size = 8
lr = 2e-3
log_every = 4
[[eval]]
dataset = "quickstart"
languages = ["en", "de", "ru", "el"]
max_queries_per_language = 12
top_k = 3
[grid]
"sampling.language_sampling" = ["clustered", "size", "size"]
"train.steps" = [12, 12, 0]
zip = [["sampling.language_sampling", "train.steps"]]
seeds = [1, 2]
"""
TABLES = {
    "query_results": "dataset, split, setting, query_lang, doc_lang, query_id, n_relevant, ap, "
                     "ndcg_at_10, mrr_at_10, recall_at_100, first_relevant_rank, rank_distance, "
                     "same_lang_at_10, same_lang_expected",
    "run_metrics": "dataset, split, setting, query_lang, doc_lang, metric, value",
    "retrieved": "setting, query_lang, doc_lang, query_id, rank, doc_id, score, is_relevant",
    "train_log": "step, loss, lr",
}


def _queue(tmp_path: Path, name: str) -> tuple[str, dict[str, int]]:
    url = f"sqlite:///{tmp_path / (name + '.db')}"
    body = SPEC.format(out=tmp_path / "out")  # one output dir: the tiny model is built once
    runs = compile_spec(parse_spec(body, base_dir=tmp_path))
    ids = store.submit_runs(get_engine(url), "warm", body, runs).run_ids
    return url, {r.run_key: i for r, i in zip(runs, ids, strict=True)}


def _worker(url: str, *args: str) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), XLRUN_DB=url)
    p = subprocess.run([sys.executable, "-m", "xlrun", "worker", "--device", "cpu",
                        "--threads", "1", *args], env=env, capture_output=True, text=True,
                       timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr


def _rows(url: str, run_id: int) -> dict[str, list[tuple]]:
    engine = create_engine(url)
    out = {}
    with engine.connect() as conn:
        for table, cols in TABLES.items():
            out[table] = conn.execute(text(
                f"SELECT {cols} FROM {table} WHERE run_id = :r ORDER BY {cols}"),
                {"r": run_id}).all()
    engine.dispose()
    return out


@pytest.mark.slow
def test_warm_runs_equal_cold_runs(tmp_path: Path) -> None:
    cold_url, cold_ids = _queue(tmp_path, "cold")
    warm_url, warm_ids = _queue(tmp_path, "warm")
    # warm: one worker process executes all 5 runs in queue order (each trained run after
    # another trained run, the untrained reference after two)
    _worker(warm_url)
    engine = create_engine(warm_url)
    with engine.connect() as conn:
        timings = conn.execute(text("SELECT id, timings_json FROM runs ORDER BY id")).all()
    engine.dispose()
    assert all(t for _, t in timings)
    # cold: the last trained run and the reference, each alone in a fresh process
    keys = list(cold_ids)
    for key in (keys[-2], keys[-1]):
        _worker(cold_url, "--run", str(cold_ids[key]))
        cold, warm = _rows(cold_url, cold_ids[key]), _rows(warm_url, warm_ids[key])
        assert cold["query_results"], key
        for table in TABLES:
            assert cold[table] == warm[table], (key, table)


def test_caching_tokenizer_equals_the_tokenizer(tmp_path: Path) -> None:
    from xlrun.quickstart.tiny_model import resolve_model_name
    from xlrun.train.encoder import Encoder, EncoderConfig

    name = resolve_model_name("quickstart:tiny", tmp_path)
    enc = Encoder.load(EncoderConfig(name=name, query_max_length=6, passage_max_length=9), "cpu")
    tok = enc.tokenizer
    cached = CachingTokenizer(tok)
    texts = ["the tower is tall", "a", "", "die Brücke über den Fluss ist sehr sehr lang",
             "Ο πύργος", "башня высокая"]
    for _ in range(2):  # the second round is served from the cache
        for kwargs in ({"padding": True, "truncation": True, "max_length": 9,
                        "return_tensors": "pt"},
                       {"truncation": True, "max_length": 6},
                       {"padding": True, "truncation": True, "max_length": 512,
                        "return_tensors": "pt"}):
            want = tok(texts[::-1], **kwargs)
            got = cached(texts[::-1], **kwargs)
            want = dict(want.items())
            assert set(got) == set(want)
            for k in want:
                w, g = want[k], got[k]
                assert (w.tolist() if hasattr(w, "tolist") else w) == \
                    (g.tolist() if hasattr(g, "tolist") else g), k
    assert cached.misses == cached.hits == 3 * len(texts)  # 3 lengths, each text once
    # anything else goes to the tokenizer itself
    assert cached("one text", add_special_tokens=False)["input_ids"] == \
        tok("one text", add_special_tokens=False)["input_ids"]
    assert cached.pad_token_id == tok.pad_token_id
