"""The GPU study's set-up, on CPU (issue 22): the priority order is data and the dry run
shows it; the parent never initialises CUDA; a later allocation learns which runs are done
from the exports' run tables alone, in well under 10 s."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUDY = REPO / "benchmarks" / "study"
sys.path.insert(0, str(STUDY))

import study  # noqa: E402

KEY_ARMS = ("hybrid/size", "hybrid/clustered[")
BASELINES = ("monolingual/size", "cross_lingual/size")


def _tier_of(arm: str, seed: int) -> int:
    if arm == "none":
        return 1
    if arm.startswith(KEY_ARMS):
        return 2 if seed <= 5 else 4
    assert arm in BASELINES, arm
    return 3 if seed <= 5 else 5


def _study_paths(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The study's model and data paths under ``root`` (empty folders: a plan reads no data),
    so the plan does not depend on ../shared."""
    for k, v in (("XLRUN_E5", "model"), ("XLRUN_MLQAR", "data/mlqa-r"),
                 ("XLRUN_XQUADR", "data/xquad-r")):
        (root / v).mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(k, str(root / v))
    monkeypatch.setenv("XLRUN_OUTPUT", str(root / "xlrun-out"))


def test_the_study_runs_the_key_contrast_first(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: seed-major over all 14 arms, so ~50 runs gave seeds 1-3 of every arm."""
    _study_paths(tmp_path, monkeypatch)
    _, planned = study.plan_runs([REPO / s for s in study.SPECS],
                                 study.load_order(REPO / study.ORDER))
    assert len(planned) == 142 and len({(p.experiment, p.run_key) for p in planned}) == 142
    tiers = [_tier_of(p.arm, p.seed) for p in planned]
    assert tiers == sorted(tiers)  # tier by tier
    assert [tiers.count(t) for t in (1, 2, 3, 4, 5)] == [2, 50, 20, 50, 20]
    assert [p.arm for p in planned[:2]] == ["none", "none"]
    assert [p.experiment for p in planned[:2]] == ["lareqa-a", "lareqa-b"]
    key = planned[2:52]
    # seed by seed; for each seed direction A then B, hybrid/size before its clustered arms
    assert [p.seed for p in key] == [s for s in range(1, 6) for _ in range(10)]
    for s in range(5):
        block = key[10 * s:10 * s + 10]
        assert [p.experiment for p in block] == ["lareqa-a"] * 5 + ["lareqa-b"] * 5
        assert [p.arm.split("[")[0] for p in block] == \
            ["hybrid/size"] + ["hybrid/clustered"] * 4 + ["hybrid/size"] + ["hybrid/clustered"] * 4
    # any prefix that ends with a whole seed of tier 2 is balanced: each arm the same seeds
    for n in (12, 22, 32, 42, 52):
        seeds: dict[tuple[str, str], set[int]] = {}
        for p in planned[2:n]:
            seeds.setdefault((p.experiment, p.arm), set()).add(p.seed)
        assert len(seeds) == 10 and len({frozenset(v) for v in seeds.values()}) == 1
    assert {p.arm for p in planned[52:72]} == set(BASELINES)
    assert [p.seed for p in planned[52:72]] == [s for s in range(1, 6) for _ in range(4)]


def test_the_order_file_is_checked(tmp_path: Path) -> None:
    bad = tmp_path / "order.toml"
    bad.write_text('[[tier]]\nname = "x"\narms = "hybrid/size"\n')
    with pytest.raises(SystemExit, match=r"tier\[0\].arms must be a list"):
        study.load_order(bad)
    bad.write_text('[[tier]]\nname = "x"\narms = ["none"]\nseed = [1]\n')
    with pytest.raises(SystemExit, match="unknown keys seed"):
        study.load_order(bad)


def _export_done(tmp_path: Path, runs: list, name: str, out: Path, queries: int = 5) -> None:
    """An export of ``runs`` (CompiledRuns of experiment ``name``), each done with a few
    query rows."""
    from xlrun.db import store
    from xlrun.db.engine import get_engine
    from xlrun.db.transfer import export_database

    url = f"sqlite:///{tmp_path / (name + '.db')}"
    engine = get_engine(url)
    ids = store.submit_runs(engine, name, "", runs).run_ids
    rows = [{"dataset": "d", "split": "test", "setting": "mono", "query_id": f"q{i}",
             "query_lang": "en", "doc_lang": "en", "n_relevant": 1, "ap": 0.5,
             "ndcg_at_10": 0.5, "mrr_at_10": 0.5, "recall_at_100": 1.0,
             "first_relevant_rank": 2} for i in range(queries)]
    for rid in ids:
        assert store.claim_run(engine, "w", [rid]) == rid
        store.write_results(engine, rid, "d", "test", {"query_results": rows})
        store.finish_run(engine, rid, "done", worker="w")
    export_database(engine, out, done_only=True)
    engine.dispose()


def test_the_dry_run_marks_what_the_committed_exports_hold(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = tmp_path / "device"
    for ds in ("mlqa-r", "xquad-r"):
        (device / "data" / ds).mkdir(parents=True)  # a dry run reads no data: it is not there
    env = dict(os.environ, PYTHONPATH=str(REPO), XLRUN_STUDY_WORK=str(tmp_path / "work"),
               PYTHON=sys.executable, DEVICE_DIR=str(device))
    # the run keys the GPU machine computes: the study's fixed model and data paths
    _study_paths(tmp_path / "work", monkeypatch)
    _, planned = study.plan_runs([REPO / s for s in study.SPECS],
                                 study.load_order(REPO / study.ORDER))
    first_key = [p.run for p in planned[2:7]]  # seed 1 of direction A's five key arms
    _export_done(tmp_path, first_key, "lareqa-a", tmp_path / "export" / "alloc-1" / "part-001")
    p = subprocess.run(["bash", str(STUDY / "gpu_study.sh"), "--dry-run"], env=dict(
        env, RESUME_DIR=str(tmp_path / "export")), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "142 runs, 5 already done; 137 to run, in this order:"
    assert "tier 2: key contrast, seeds 1-5: 50 runs (5 done)" in p.stdout
    runs = [line for line in lines[1:] if line[:4].strip().isdigit()]
    assert len(runs) == 142
    assert [line.endswith("(done)") for line in runs[:8]] == [False, False] + [True] * 5 + \
        [False]
    assert not (tmp_path / "work" / "study.db").exists()  # a dry run writes nothing


@pytest.mark.slow
def test_the_parent_never_initialises_cuda(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The study's set-up (resume, plan, carried distances, the submit checks, the queue) on a
    machine where CUDA is available: CUDA is never initialised in the parent, whether the
    ``embedding`` distances were carried (the model is then not even loaded) or not (then it
    is loaded on the CPU). Before: the parent loaded the model on the GPU for the distances
    and held a CUDA context for the whole study."""
    import torch

    from xlrun.execute import preflight

    spec = tmp_path / "spec.toml"
    spec.write_text(f"""
[experiment]
name = "cudafree"
output_dir = "{tmp_path / 'out'}"
[model]
name = "quickstart:tiny"
[train_data]
source = "quickstart"
languages = ["de", "en", "es"]
[sampling]
strategy = "hybrid"
language_sampling = "clustered"
similarity = "embedding"
n_clusters = 2
pairing = "across"
exposure = "free"
[train]
steps = 5
batch_size = 4
[[eval]]
dataset = "quickstart"
languages = ["de", "en"]
[grid]
seeds = [1, 2]
""")
    order = tmp_path / "order.toml"
    order.write_text('[[tier]]\nname = "all"\narms = ["hybrid/clustered"]\n')
    touched: list[str] = []

    def no_cuda(*args, **kwargs):
        touched.append("cuda")
        raise RuntimeError("the parent initialised CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "_lazy_init", no_cuda)
    loads: list[str] = []
    real_lazy = preflight._LazyEncoder._load

    def counted(self):
        if self._encoder is None:
            loads.append("model")
        return real_lazy(self)

    monkeypatch.setattr(preflight._LazyEncoder, "_load", counted)
    # no carried distances: computed here, on the CPU
    s = study.set_up([spec], order, None, None, work=tmp_path / "w1")
    assert s.counts == {"runs": 2, "done": 0, "new": 2} and loads == ["model"]
    cache = tmp_path / "out" / "cudafree" / ".langsim"
    carried = tmp_path / "carried" / "cudafree"
    carried.mkdir(parents=True)
    for f in cache.glob("*.json"):
        f.rename(carried / f.name)
    s.engine.dispose()
    # carried: the model is not loaded at all
    s = study.set_up([spec], order, None, tmp_path / "carried", work=tmp_path / "w2")
    assert s.counts["new"] == 2 and loads == ["model"]
    assert sorted(f.name for f in cache.glob("*.json")) == \
        sorted(f.name for f in carried.glob("*.json"))
    s.engine.dispose()
    assert touched == [] and not torch.cuda.is_initialized()


def test_resume_reads_the_run_tables_only_and_fast(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """50 done runs in two exports: which runs are done is known in well under the 10 s the
    issue allows, from the experiments and runs files alone (no query row is read)."""
    import pyarrow.parquet as pq

    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec

    text = ('[experiment]\nname = "r"\n[model]\nname = "m"\n[train]\nsteps = 0\n'
            '[[eval]]\ndataset = "quickstart"\n[grid]\n"eval.top_k" = '
            f"{list(range(1, 51))}\n")
    runs = compile_spec(parse_spec(text, base_dir=tmp_path))
    _export_done(tmp_path, runs[:30], "r", tmp_path / "export" / "alloc-1" / "part-001", 200)
    _export_done(tmp_path, runs[30:], "r2", tmp_path / "export" / "alloc-2" / "part-001", 200)
    read: list[str] = []
    real = pq.read_table
    monkeypatch.setattr(pq, "read_table", lambda path, *a, **k: read.append(Path(path).name)
                        or real(path, *a, **k))
    t0 = time.perf_counter()
    done = study.done_runs(tmp_path / "export")
    seconds = time.perf_counter() - t0
    assert len(done) == 50 and seconds < 10
    assert set(read) == {"experiments.parquet", "runs.parquet"}
    assert {e for e, _ in done} == {"r", "r2"}
    # a damaged run table is refused, not half read
    runs_file = tmp_path / "export" / "alloc-2" / "part-001" / "runs.parquet"
    runs_file.write_bytes(runs_file.read_bytes()[:-20] + b"\0" * 20)
    with pytest.raises(SystemExit, match="SHA-256 differs"):
        study.done_runs(tmp_path / "export")
    print(json.dumps({"resume_50_runs_s": round(seconds, 3)}))
