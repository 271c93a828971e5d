"""What the sampler did, as recorded in batch_languages, obeys the spec (issue: training engine)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import BatchLanguages
from xlrun.execute.executors.local import LocalExecutor
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

CLUSTERS = [["de", "en", "es", "fr", "pt"], ["ru", "uk"], ["el"]]
SPEC = f"""
[experiment]
name = "batches"
output_dir = "{{out}}"
[model]
name = "quickstart:tiny"
query_max_length = 16
passage_max_length = 16
[train_data]
source = "quickstart"
[sampling]
strategy = "hybrid"
mono_ratio = 0.3
language_sampling = "clustered"
similarity = "manual"
clusters = {CLUSTERS!r}
pairing = "within"
[train]
steps = 420
batch_size = 8
log_every = 50
[[eval]]
dataset = "quickstart"
languages = ["en"]
settings = ["mono"]
max_queries_per_language = 2
top_k = 0
"""


@pytest.mark.slow
def test_hybrid_clustered_within_batches(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    text = SPEC.format(out=tmp_path / "out").replace("'", '"')
    runs = compile_spec(parse_spec(text, base_dir=tmp_path))
    engine = get_engine(url)
    ids = store.submit_runs(engine, "batches", text, runs).run_ids
    assert [o.status for o in LocalExecutor(device="cpu").run(engine, ids)] == ["done"]
    t = BatchLanguages.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.step, t.c.batch_kind, t.c.query_lang, t.c.doc_lang,
                                   t.c.pairs).where(t.c.run_id == ids[0])).all()
    cluster_of = {lang: i for i, c in enumerate(CLUSTERS) for lang in c}
    steps: dict[int, list] = {}
    for r in rows:
        steps.setdefault(r.step, []).append(r)
    assert len(steps) == 420
    kinds = {}
    for step, parts in steps.items():
        assert sum(p.pairs for p in parts) == 8
        (kind,) = {p.batch_kind for p in parts}
        kinds[step] = kind
        if kind == "mono":
            assert len(parts) == 1 and parts[0].query_lang == parts[0].doc_lang
        else:
            (p,) = parts  # a cross-lingual batch is one ordered pair (X, Y) …
            assert p.query_lang != p.doc_lang
            assert cluster_of[p.query_lang] == cluster_of[p.doc_lang]  # … inside one cluster
    mono_share = sum(k == "mono" for k in kinds.values()) / len(kinds)
    assert abs(mono_share - 0.3) <= 0.05, mono_share
