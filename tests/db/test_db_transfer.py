"""`xlrun db export` / `xlrun db import`: round trip, idempotence, id remapping, reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select, text

from xlrun.cli.main import main
from xlrun.db import store
from xlrun.db.engine import get_engine
from xlrun.db.models import QueryResult, Run
from xlrun.db.transfer import TABLES, export_database, import_database, table_counts
from xlrun.errors import UsageError
from xlrun.report.build import ReportRequest, build_report
from xlrun.report.frames import ReportFilter
from xlrun.report.inference import InferenceConfig
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import parse_spec

SPEC = """
[experiment]
name = "{name}"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
[sampling]
strategy = "hybrid"
similarity = "script"
n_clusters = 2
[train]
steps = {steps}
[[eval]]
dataset = "quickstart"
[grid]
"sampling.language_sampling" = ["size", "clustered"]
seeds = [1, 2]
"""
LANGS = ("de", "en", "ru")
N_QUERIES = 6


def _metrics(rng: np.random.Generator, n_relevant: int) -> dict[str, float | int]:
    rank = int(rng.integers(1, 40))
    return {"n_relevant": n_relevant, "ap": float(rng.random()), "ndcg_at_10": float(rng.random()),
            "mrr_at_10": 1.0 / rank if rank <= 10 else 0.0, "recall_at_100": 1.0,
            "first_relevant_rank": rank}


def populate(engine: Engine, name: str, seed: int = 0, steps: int = 5,
             finish: int | None = None) -> list[int]:
    """A synthetic experiment written through xlrun.db.store: 4 runs (2 arms × 2 seeds), each
    with a training log, batch languages, clusters, distances, and results in every setting.
    Only the first ``finish`` runs get results and status done (all when None)."""
    text_ = SPEC.format(name=name, steps=steps)
    runs = compile_spec(parse_spec(text_))
    ids = list(store.submit_runs(engine, name, text_, runs).run_ids)
    rng = np.random.default_rng(seed)
    for i, rid in enumerate(ids[:finish]):
        assert store.claim_run(engine, "w", [rid]) == rid
        store.write_train_log(engine, rid, [{"step": s, "loss": float(rng.random()), "lr": 1e-5,
                                             "examples_per_s": 100.0 + s} for s in (1, 2, 3)])
        store.write_batch_languages(engine, rid, [
            {"step": s, "batch_kind": "cross", "query_lang": "de", "doc_lang": "en", "pairs": 4}
            for s in (1, 2, 3)])
        store.write_sampling_plan(engine, rid, [
            {"batch_kind": "cross", "query_lang": "de", "doc_lang": "en", "probability": 1.0,
             "pool": 12}])
        dist = [{"source": "script", "lang_a": a, "lang_b": b, "distance": float(rng.random())}
                for a in LANGS for b in LANGS if a < b]
        store.write_languages(engine, rid, [["de", "en"], ["ru"]] if i % 2 else [], dist)
        qr, ret, rm = [], [], []
        for q in LANGS:
            for d in [*LANGS, "all"]:
                setting = "multi" if d == "all" else "mono" if d == q else "cross"
                aps = []
                for k in range(N_QUERIES):
                    m = _metrics(rng, 3 if d == "all" else 1)
                    bias = ({"rank_distance": float(rng.random() * 100),
                             "same_lang_at_10": float(rng.random()),
                             "same_lang_expected": 1 / 3} if d == "all"
                            else {"rank_distance": None, "same_lang_at_10": None,
                                  "same_lang_expected": None})
                    qr.append({"setting": setting, "query_id": f"q{k}", "query_lang": q,
                               "doc_lang": d, **m, **bias})
                    ret.append({"setting": setting, "query_lang": q, "doc_lang": d,
                                "query_id": f"q{k}", "rank": 1, "doc_id": "x", "score": 0.5,
                                "is_relevant": True})
                    aps.append(m["ap"])
                rm.append({"setting": setting, "query_lang": q, "doc_lang": d, "metric": "map",
                           "value": float(np.mean(aps))})
        frames = {"query_results": pl.DataFrame(qr).with_columns(
            dataset=pl.lit("quickstart"), split=pl.lit("test")),
            "retrieved": pl.DataFrame(ret).with_columns(dataset=pl.lit("quickstart"),
                                                        split=pl.lit("test")),
            "run_metrics": pl.DataFrame(rm).with_columns(dataset=pl.lit("quickstart"),
                                                         split=pl.lit("test"))}
        store.write_results(engine, rid, "quickstart", "test", frames)
        assert store.finish_run(engine, rid, "done", worker="w")
    return ids


def _report(engine: Engine, experiment: str, compare: str | None = "language_sampling"
            ) -> pl.DataFrame:
    req = ReportRequest(filter=ReportFilter(experiment=experiment), compare=compare,
                        baseline="size" if compare else None,
                        tests=InferenceConfig(n_permutations=200, seed=1))
    return build_report(engine, req).frame


def assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    """Equal frames; floats up to summation order (SQL returns rows in no fixed order)."""
    assert a.columns == b.columns and a.height == b.height
    for c in a.columns:
        if a[c].dtype.is_float():
            x, y = a[c].to_numpy(), b[c].to_numpy()
            assert np.allclose(x, y, rtol=1e-12, atol=1e-15, equal_nan=True), c
        else:
            assert a[c].to_list() == b[c].to_list(), c


def _frames(folder: Path) -> dict[str, pl.DataFrame]:
    return {name: pl.read_parquet(folder / f"{name}.parquet") for name in TABLES}


def test_round_trip_equal_after_rounding(db_url: str, tmp_path: Path) -> None:
    src = get_engine(db_url)
    populate(src, "exp")
    s = export_database(src, tmp_path / "a")
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["rows"] == table_counts(src) == s.rows
    assert manifest["schema_revision"] and manifest["omitted_tables"] == ["retrieved"]
    assert s.rows["sampling_plan"] == 4  # the sampler's plan travels (report --exposure)
    assert s.rows["query_results"] == 4 * len(LANGS) * (len(LANGS) + 1) * N_QUERIES

    dst = get_engine(f"sqlite:///{tmp_path / 'dst.db'}")
    res = import_database(dst, tmp_path / "a")
    assert (res.experiments_new, res.runs_new, res.runs_skipped, res.remapped) == (1, 4, 0, {})
    assert table_counts(dst) == table_counts(src)
    with dst.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM retrieved")).scalar_one() == 0
    # every table equal to the source's, query_results metrics rounded to 4 decimals
    export_database(dst, tmp_path / "b")
    a, b = _frames(tmp_path / "a"), _frames(tmp_path / "b")
    for name in TABLES:
        assert a[name].equals(b[name]), name
    cols = [QueryResult.run_id, QueryResult.setting, QueryResult.query_lang,
            QueryResult.doc_lang, QueryResult.query_id, QueryResult.ap, QueryResult.ndcg_at_10,
            QueryResult.rank_distance]
    order = cols[:5]
    with src.connect() as c1, dst.connect() as c2:
        raw = c1.execute(select(*cols).order_by(*order)).all()
        got = c2.execute(select(*cols).order_by(*order)).all()
        runs1 = c1.execute(select(Run.run_key, Run.status, Run.config_json, Run.created_at,
                                  Run.finished_at).order_by(Run.run_key)).all()
        runs2 = c2.execute(select(Run.run_key, Run.status, Run.config_json, Run.created_at,
                                  Run.finished_at).order_by(Run.run_key)).all()
    assert len(raw) == len(got)
    assert any(r.ap != round(r.ap, 4) for r in raw)  # the fixture really has more decimals
    for r, g in zip(raw, got, strict=True):
        assert tuple(r[:5]) == tuple(g[:5])
        assert g.ap == round(r.ap, 4) and g.ndcg_at_10 == round(r.ndcg_at_10, 4)
        assert (g.rank_distance is None) == (r.rank_distance is None)
    assert [r[:3] for r in runs1] == [r[:3] for r in runs2]
    for r1, r2 in zip(runs1, runs2, strict=True):  # timestamps survive (to the second at least)
        t1, t2 = (t.replace(tzinfo=None) if t else t for t in (r1.created_at, r2.created_at))
        assert abs((t1 - t2).total_seconds()) < 1e-3


def test_import_into_either_backend_keeps_report_numbers(db_url: str, tmp_path: Path) -> None:
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp", seed=3)
    export_database(src, tmp_path / "x")
    dst = get_engine(db_url)
    import_database(dst, tmp_path / "x")
    before, after = _report(src, "exp"), _report(dst, "exp")
    assert before.columns == after.columns and before.height == after.height > 0
    for col in ("n_queries", "n_runs", "arm", "query_lang", "doc_lang"):
        assert before[col].to_list() == after[col].to_list()
    # means of values rounded to 4 decimals move by at most 5e-5
    assert np.allclose(before["mean"].to_numpy(), after["mean"].to_numpy(), atol=5e-5)
    deltas = before["delta"].is_not_null()
    assert np.allclose(before.filter(deltas)["delta"].to_numpy(),
                       after.filter(deltas)["delta"].to_numpy(), atol=1e-4)
    # a database rebuilt from the export gives exactly the same report
    again = get_engine(f"sqlite:///{tmp_path / 'again.db'}")
    import_database(again, tmp_path / "x")
    assert_same(_report(again, "exp"), after)
    assert_same(_report(again, "exp", compare=None), _report(dst, "exp", compare=None))


def test_an_export_from_before_sampling_plan_still_imports(tmp_path: Path) -> None:
    """Exports written before ``sampling_plan`` was exported do not list it: read as empty."""
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp")
    export_database(src, tmp_path / "a")
    path = tmp_path / "a" / "manifest.json"
    manifest = json.loads(path.read_text())
    (tmp_path / "a" / manifest["files"].pop("sampling_plan")).unlink()
    manifest["rows"].pop("sampling_plan")
    manifest["sha256"].pop("sampling_plan")
    for counts in manifest["run_rows"].values():
        counts.pop("sampling_plan")
    path.write_text(json.dumps(manifest))
    dst = get_engine(f"sqlite:///{tmp_path / 'dst.db'}")
    assert import_database(dst, tmp_path / "a").runs_new == 4
    assert table_counts(dst)["sampling_plan"] == 0
    assert table_counts(dst)["query_results"] == table_counts(src)["query_results"]


def test_import_twice_adds_nothing(db_url: str, tmp_path: Path) -> None:
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp")
    export_database(src, tmp_path / "x")
    dst = get_engine(db_url)
    first = import_database(dst, tmp_path / "x")
    counts = table_counts(dst)
    second = import_database(dst, tmp_path / "x")
    assert (first.runs_new, second.runs_new, second.runs_skipped) == (4, 0, 4)
    assert second.experiments_new == 0 and sum(second.rows.values()) == 0
    assert table_counts(dst) == counts


def test_ids_that_collide_are_remapped(db_url: str, tmp_path: Path) -> None:
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp", seed=5)
    export_database(src, tmp_path / "x")
    dst = get_engine(db_url)
    other_ids = populate(dst, "other", seed=9)  # takes experiment id 1 and run ids 1-4
    other_before = _report(dst, "other")
    res = import_database(dst, tmp_path / "x")
    assert res.runs_new == 4 and sorted(res.remapped) == [1, 2, 3, 4]
    assert not set(res.remapped.values()) & set(other_ids)
    with dst.connect() as conn:
        exps = dict(conn.execute(text("SELECT name, id FROM experiments")).all())
        per_run = conn.execute(text(
            "SELECT e.name, r.run_key, COUNT(q.query_id) FROM runs r "
            "JOIN experiments e ON e.id = r.experiment_id "
            "LEFT JOIN query_results q ON q.run_id = r.id GROUP BY e.name, r.run_key")).all()
    assert len(set(exps.values())) == 2
    assert {n for n, _, _ in per_run} == {"exp", "other"} and len(per_run) == 8
    assert {c for _, _, c in per_run} == {len(LANGS) * (len(LANGS) + 1) * N_QUERIES}
    assert_same(_report(dst, "other"), other_before)
    assert _report(dst, "exp")["mean"].to_list() == pytest.approx(
        _report(src, "exp")["mean"].to_list(), abs=5e-5)
    # new rows after an import with explicit ids still get fresh ids (Postgres sequences)
    new = populate(dst, "later", seed=11, finish=0)
    assert len(set(new)) == 4 and not set(new) & set(res.remapped.values())


def test_unfinished_runs_are_replaced_by_done_ones(db_url: str, tmp_path: Path) -> None:
    src = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(src, "exp")
    export_database(src, tmp_path / "x")
    dst = get_engine(db_url)
    populate(dst, "exp", finish=1)  # same run keys: one done (kept), three queued
    res = import_database(dst, tmp_path / "x")
    assert (res.runs_new, res.runs_replaced, res.runs_skipped) == (0, 3, 1)
    with dst.connect() as conn:
        statuses = conn.execute(text("SELECT status, COUNT(*) FROM runs GROUP BY status")).all()
    assert dict(statuses) == {"done": 4}
    assert table_counts(dst)["query_results"] == table_counts(src)["query_results"]


def test_export_filters_and_refusals(tmp_path: Path) -> None:
    eng = get_engine(f"sqlite:///{tmp_path / 'src.db'}")
    populate(eng, "exp", finish=2)
    populate(eng, "other", seed=2, finish=0)
    s = export_database(eng, tmp_path / "x", ["exp"], done_only=True)
    assert s.experiments == ("exp",) and s.rows["runs"] == 2 and s.rows["experiments"] == 1
    assert s.bytes < 200_000
    with pytest.raises(UsageError, match="unknown experiment"):
        export_database(eng, tmp_path / "y", ["nope"])
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    manifest["schema_revision"] = "9999_future"
    (tmp_path / "x" / "manifest.json").write_text(json.dumps(manifest))
    fresh = get_engine(f"sqlite:///{tmp_path / 'dst.db'}")
    with pytest.raises(UsageError, match="newer than"):
        import_database(fresh, tmp_path / "x")
    assert table_counts(fresh)["runs"] == 0
    with pytest.raises(UsageError, match="not an xlrun export"):
        import_database(fresh, tmp_path)


def test_cli_export_import(tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'dst.db'}"
    populate(get_engine(src), "exp", finish=1)
    runner = CliRunner()
    out = runner.invoke(main, ["db", "export", str(tmp_path / "x"), "--db", src,
                               "--experiment", "exp"])
    assert out.exit_code == 0, out.output
    assert "exported 1 experiment" in out.output
    out = runner.invoke(main, ["db", "import", str(tmp_path / "x"), "--db", dst])
    assert out.exit_code == 0, out.output
    assert "4 new run(s)" in out.output
    out = runner.invoke(main, ["db", "import", str(tmp_path / "x"), "--db", dst])
    assert "0 new run(s)" in out.output and "4 already present" in out.output
    bad = runner.invoke(main, ["db", "export", str(tmp_path / "y"), "--db", src,
                               "--experiment", "nope"])
    assert bad.exit_code == 2 and "unknown experiment" in bad.output


def test_metrics_that_follow_from_the_rank_are_left_out_and_restored() -> None:
    """One relevant document: AP, MRR@10, nDCG@10 and Recall@100 follow from its rank; the
    export drops them only where the stored values equal that, the import computes them."""
    from xlrun.db.transfer import DERIVED_COLUMNS, elide_derived, restore_derived

    ranks = [1, 3, 10, 11, 150, 2, 4]
    rows = []
    for r in ranks:
        rows.append({"n_relevant": 1, "first_relevant_rank": r, "ap": round(1 / r, 4),
                     "mrr_at_10": round(1 / r, 4) if r <= 10 else 0.0,
                     "ndcg_at_10": round(1 / np.log2(r + 1), 4) if r <= 10 else 0.0,
                     "recall_at_100": 1.0 if r <= 100 else 0.0})
    rows[5]["ap"] = 0.1234                                  # does not follow from rank 2: kept
    rows[6]["n_relevant"] = 3                               # several relevant: kept
    frame = pa.Table.from_pylist(rows)
    out = elide_derived(frame)
    left_out = out["ap"].is_null().to_pylist()
    assert left_out == [True, True, True, True, True, False, False]
    for c in DERIVED_COLUMNS:
        assert out[c].is_null().to_pylist() == left_out
    back = restore_derived(out)
    for c in DERIVED_COLUMNS:
        np.testing.assert_allclose(back[c].to_numpy(), frame[c].to_numpy(), atol=5e-5)
    ap = back["ap"].to_pylist()
    assert ap[5] == 0.1234 and ap[1] == pytest.approx(1 / 3, abs=1e-12)
