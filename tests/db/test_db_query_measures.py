"""query_measures on SQLite and Postgres: written with a result set (and replaced with it),
read by reports under the measure's name, kept by `db export` / `db import`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import QueryMeasure
from xlrun.db.transfer import DIGITS, export_database, import_database
from xlrun.errors import UsageError
from xlrun.evaluate.runner import evaluate_dataset
from xlrun.evaluate.tasks import load_dataset
from xlrun.report.frames import ReportFilter, load_query_results, metric_column
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SPEC = """
[experiment]
name = "qm"
[model]
name = "quickstart:tiny"
[train]
steps = 0
[[eval]]
dataset = "xquad-r"
path = "{path}"
measures = ["nDCG@5", "R@3", "P@1"]
"""


class HashEncoder:
    def encode(self, texts, side, batch_size=64, progress=None):
        out = np.stack([np.random.default_rng(int(hashlib.md5(t.encode()).hexdigest()[:8], 16))
                        .standard_normal(8) for t in texts]).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def stored_run(db_url: str) -> tuple[object, int, object]:
    engine = get_engine(db_url)
    text = SPEC.format(path=FIX / "lareqa")
    runs = compile_spec(parse_spec(text))
    rid = store.submit_runs(engine, "qm", text, runs).run_ids[0]
    cfg = runs[0].config.eval[0]
    out = evaluate_dataset(HashEncoder(), load_dataset(cfg), cfg, device="cpu")
    store.write_results(engine, rid, cfg.dataset, cfg.split, out.tables())
    store.finish_run(engine, rid, "done")
    return engine, rid, out


def test_written_replaced_and_read_by_reports(db_url: str) -> None:
    engine, rid, out = stored_run(db_url)
    n = out.query_results.num_rows
    assert store.count_rows(engine, QueryMeasure.__table__, rid) == 3 * n
    store.write_results(engine, rid, "xquad-r", "test", out.tables())  # a retry: replaced
    assert store.count_rows(engine, QueryMeasure.__table__, rid) == 3 * n
    with engine.connect() as conn:
        frame = load_query_results(conn, ReportFilter(), [metric_column("ndcg_cut.5")])
        assert frame.height == n and "nDCG@5" in frame.columns
        want = sorted(v for m, v in zip(out.query_measures["measure"].to_pylist(),
                                        out.query_measures["value"].to_pylist(), strict=True)
                      if m == "nDCG@5")
        assert sorted(frame["nDCG@5"].to_list()) == pytest.approx(want, abs=1e-15)
        # AP is the ap column by definition: it works although no run stored it
        ap = load_query_results(conn, ReportFilter(), [metric_column("AP")])
        assert ap["AP"].to_list() == load_query_results(conn, ReportFilter(), ["ap"])["ap"].to_list()
        with pytest.raises(UsageError, match=r"R@1000 is not stored .* stored: P@1, R@3, nDCG@5"):
            load_query_results(conn, ReportFilter(), [metric_column("R@1000")])
    with pytest.raises(UsageError, match="not supported: it needs the judged"):
        metric_column("Bpref")


def test_kept_by_db_export_and_import(db_url: str, tmp_path: Path) -> None:
    engine, _rid, out = stored_run(db_url)
    summary = export_database(engine, tmp_path / "export")
    assert summary.rows["query_measures"] == out.query_measures.num_rows
    target = get_engine(f"sqlite:///{tmp_path / 'copy.db'}")
    result = import_database(target, tmp_path / "export")
    assert result.rows["query_measures"] == out.query_measures.num_rows
    t = QueryMeasure.__table__
    key = [t.c.measure, t.c.setting, t.c.query_lang, t.c.doc_lang, t.c.query_id]
    with engine.connect() as a, target.connect() as b:
        left = a.execute(select(*key, t.c.value).order_by(*key)).all()
        right = b.execute(select(*key, t.c.value).order_by(*key)).all()
        assert [r[:5] for r in left] == [r[:5] for r in right]
        assert max(abs(round(x[5], DIGITS) - y[5]) for x, y in zip(left, right, strict=True)) \
            < 1e-12


def test_an_export_from_before_query_measures_still_imports(tmp_path: Path) -> None:
    engine, _, _ = stored_run(f"sqlite:///{tmp_path / 'a.db'}")
    folder = tmp_path / "export"
    export_database(engine, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for key in ("files", "rows", "sha256"):
        manifest[key].pop("query_measures")
    for counts in manifest["run_rows"].values():
        counts.pop("query_measures")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "query_measures.parquet").unlink()
    target = get_engine(f"sqlite:///{tmp_path / 'b.db'}")
    assert import_database(target, folder).runs_new == 1
    with target.connect() as conn:
        assert conn.execute(select(func.count()).select_from(QueryMeasure.__table__)
                            ).scalar_one() == 0
