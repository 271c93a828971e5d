"""``train.save_model``: a sentence-transformers folder that reproduces the run.

``SentenceTransformer(path)`` loads the saved folder with the vectors xlrun computes, and
``xlrun evaluate PATH`` on it reproduces the run's stored metrics exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from sqlalchemy import select

from xlrun.cli import main
from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import RunMetric

SPEC = """
[experiment]
name = "saved"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
query_max_length = 32
passage_max_length = 48
[train_data]
source = "quickstart"
languages = ["en", "ru"]
[sampling]
strategy = "hybrid"
[train]
steps = 6
batch_size = 8
lr = 2e-3
save_model = true
[[eval]]
dataset = "quickstart"
languages = ["en", "ru"]
top_k = 5
"""


def _metrics(engine, run_id: int) -> dict[tuple, float]:
    t = RunMetric.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.setting, t.c.query_lang, t.c.doc_lang, t.c.metric, t.c.value)
                            .where(t.c.run_id == run_id)).all()
    return {tuple(r[:4]): r.value for r in rows}


def test_saved_model_loads_in_sentence_transformers_and_reproduces_the_run(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    from xlrun.train.encoder import load_encoder

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.format(out=tmp_path / "out"))
    db = f"sqlite:///{tmp_path / 's.db'}"
    result = CliRunner().invoke(main, ["submit", str(spec), "--db", db, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    engine = get_engine(db)
    run = store.get_run(engine, 1)
    assert run["status"] == "done", run["error"]
    folder = tmp_path / "out" / "saved" / run["run_key"] / "model"
    assert (folder / "modules.json").is_file()

    enc = load_encoder(str(folder), device="cpu")
    c = enc.config
    assert (c.pooling, c.query_max_length, c.passage_max_length) == ("mean", 32, 48)
    texts = ["What does the company Nelar make?", "Где родился Дофу Ратуду?", "x " * 80]
    st = SentenceTransformer(str(folder), device="cpu")
    for side, ref in (("query", st.encode_query(texts)), ("passage", st.encode_document(texts))):
        assert float(np.abs(enc.encode(texts, side) - ref).max()) <= 1e-5

    result = CliRunner().invoke(main, ["evaluate", str(folder), "--dataset", "quickstart",
                                       "--langs", "en,ru", "--top-k", "5", "--db", db,
                                       "--device", "cpu"])
    assert result.exit_code == 0, result.output
    trained, again = _metrics(engine, 1), _metrics(engine, 2)
    assert trained and trained.keys() == again.keys()
    assert max(abs(trained[k] - again[k]) for k in trained) <= 1e-9
    assert trained[("cross", "all", "all", "map")] > 0.0

    # how each run's model was loaded, and from where
    resolved = json.loads(store.get_run(engine, 2)["config_json"])["model_resolved"]
    assert resolved["format"] == "sentence-transformers"
    assert resolved["settings"]["query_max_length"] == {"value": 32, "from": "model"}
    assert resolved["settings"]["pooling"] == {"value": "mean", "from": "model"}
    shown = CliRunner().invoke(main, ["show", "1", "--db", db]).output
    assert "model as loaded (transformers)" in shown
    assert "query_max_length" in shown and "spec" in shown and "default" in shown
