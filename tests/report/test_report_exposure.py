"""``xlrun report --exposure``: language shares and pair epochs per arm from batch_languages."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter

import pytest
from report_db import new_engine
from sqlalchemy import insert

from xlrun.data.types import TrainCorpus, TrainExample
from xlrun.db import store
from xlrun.db.models import Experiment, Run
from xlrun.report.build import ReportRequest
from xlrun.report.exposure import build_exposure
from xlrun.report.frames import ReportFilter
from xlrun.spec.schema import SamplingSection
from xlrun.train.samplers import make_sampler

SIZES = {"de": 70, "en": 100, "fr": 80, "ru": 90}
CLUSTERS = [["de", "en"], ["fr", "ru"]]
STEPS = 120


def _corpus() -> TrainCorpus:
    return TrainCorpus.from_examples(
        TrainExample(f"p{i}", lang, f"q {i} {lang}", f"a {i} {lang}")
        for lang, n in SIZES.items() for i in range(n))


def _populate(url: str) -> dict[str, Counter]:
    """Two arms × two seeds trained (sampled) for real; returns the query-language counts."""
    engine = new_engine(url)
    corpus = _corpus()
    counts: dict[str, Counter] = {}
    with engine.begin() as conn:
        exp = conn.execute(insert(Experiment).values(name="exp", spec_toml="")
                           .returning(Experiment.id)).scalar_one()
    for arm, ls, clustering in (("hybrid/size", "size", None),
                                ("hybrid/clustered[manual/within]", "clustered",
                                 "manual/within")):
        for seed in (1, 2):
            sampling = dataclasses.replace(SamplingSection(), language_sampling=ls)
            s = make_sampler(sampling, corpus, 8, seed, CLUSTERS if clustering else None)
            with engine.begin() as conn:
                run_id = conn.execute(insert(Run).values(
                    experiment_id=exp, run_key=f"{ls}-{seed}", status="done",
                    config_json=json.dumps({"sampling": {"language_sampling": ls}}),
                    model="m", sampler="hybrid", language_sampling=ls, clustering=clustering,
                    seed=seed).returning(Run.id)).scalar_one()
            store.write_sampling_plan(engine, run_id, s.plan_rows())
            rows = []
            for _ in range(STEPS):
                b = s.next_batch()
                for (q, d), n in b.composition().items():
                    rows.append({"step": b.step, "batch_kind": b.kind, "query_lang": q,
                                 "doc_lang": d, "pairs": n})
                    counts.setdefault(arm, Counter())[q] += n
            store.write_batch_languages(engine, run_id, rows)
    engine.dispose()
    return counts


def test_language_shares_are_the_mean_over_runs_and_differences_to_the_baseline(db_url):
    counts = _populate(db_url)
    req = ReportRequest(filter=ReportFilter(experiment="exp"), baseline="hybrid/size")
    rep = build_exposure(new_engine(db_url), req, "languages")
    frame = rep.frame
    assert set(frame["arm"]) == {"hybrid/size", "hybrid/clustered[manual/within]"}
    assert set(frame["runs"]) == {2}
    for arm, c in counts.items():
        total = sum(c.values())
        for lang, n in c.items():
            row = frame.filter((frame["arm"] == arm) & (frame["lang"] == lang))
            # both runs of an arm have the same number of pairs: the mean share is the pooled
            assert row["query_share"][0] == pytest.approx(n / total)
    base = frame.filter(frame["arm"] == "hybrid/size")
    assert base["query_vs_base"].abs().max() == 0
    # a singleton cluster is the only case where mono_share reaches 1; none here, and the
    # clustered arm trains its languages in cross batches of their own cluster only
    assert frame["mono_share"].max() < 1


def test_pairs_view_gives_epochs_from_the_plan_pools(db_url):
    _populate(db_url)
    req = ReportRequest(filter=ReportFilter(experiment="exp"))
    rep = build_exposure(new_engine(db_url), req, "pairs", top=0)
    frame = rep.frame
    clustered = frame.filter(frame["arm"] == "hybrid/clustered[manual/within]")
    cross = clustered.filter(clustered["batch_kind"] == "cross")
    # within pairing: only de-en and fr-ru pairs
    assert {(q, d) for q, d in cross.select("query_lang", "doc_lang").iter_rows()} <= {
        ("de", "en"), ("en", "de"), ("fr", "ru"), ("ru", "fr")}
    for row in frame.iter_rows(named=True):
        assert row["epochs"] == pytest.approx(row["pairs_per_run"] / row["pool"])
        assert 0 < row["planned"] <= 1
    # shares within a kind sum to one per arm
    for _, group in frame.group_by("arm", "batch_kind"):
        assert group["share"].sum() == pytest.approx(1.0)
    top = build_exposure(new_engine(db_url), req, "pairs", top=2).frame
    assert top.group_by("arm", "batch_kind").len()["len"].max() == 2


def test_cli_exposure(sqlite_url, tmp_path):
    from click.testing import CliRunner

    from xlrun.cli.report import report_command

    _populate(sqlite_url)
    base = ["--exposure", "--experiment", "exp", "--db", sqlite_url]

    def run(*extra: str):
        return CliRunner().invoke(report_command, [*base, *extra])

    res = run("--plot", str(tmp_path / "exposure.png"))
    assert res.exit_code == 0, res.output
    assert "hybrid/clustered[manual/within]" in res.output and "query_share" in res.output
    assert (tmp_path / "exposure.png").stat().st_size > 1000
    res = CliRunner().invoke(report_command, ["--exposure", "pairs", "--experiment", "exp",
                                              "--db", sqlite_url, "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].startswith("arm,runs,batch_kind,query_lang,doc_lang")
    res = run("--baseline", "nope")
    assert res.exit_code == 2 and "not an arm" in res.output
