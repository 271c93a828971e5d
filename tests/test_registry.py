"""Registries: the one list of their names; a component is one file.

The six worked examples of ``docs/extending.md`` are loaded from that page, each from its
single file, and used through the spec loader, ``xlrun submit``'s data checks, the dataset
loader and ``xlrun report``'s comparison, exactly as a built-in component is.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from xlrun.data.train_sources import TRAIN_SOURCES, load_train_corpus
from xlrun.errors import SpecError
from xlrun.evaluate.tasks import DATASETS, load_dataset
from xlrun.execute.executors import EXECUTORS
from xlrun.execute.preflight import check_runs
from xlrun.langsim.distance_sources import DISTANCE_SOURCES
from xlrun.langsim.distances import distance_matrix
from xlrun.registry import Registry, import_submodules
from xlrun.report.compare import compare_arms
from xlrun.report.inference import InferenceConfig
from xlrun.report.statistics import TESTS
from xlrun.spec.grid import compile_spec
from xlrun.spec.load import REGISTRIES, parse_spec
from xlrun.spec.schema import EvalSection, TrainDataSection
from xlrun.tracking import TRACKERS, TrackedRun, TrackingSession
from xlrun.train.samplers import SAMPLERS, make_sampler

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "extending.md"
ALL = {"samplers": SAMPLERS, "train_sources": TRAIN_SOURCES, "distance_sources": DISTANCE_SOURCES,
       "datasets": DATASETS, "tests": TESTS, "executors": EXECUTORS, "trackers": TRACKERS}
PACKAGES = ["xlrun.train.samplers", "xlrun.data.train_sources",
            "xlrun.langsim.distance_sources", "xlrun.evaluate.tasks", "xlrun.report.statistics",
            "xlrun.execute.executors", "xlrun.tracking"]


def doc_files() -> dict[str, str]:
    """``path → source`` of every Python block of docs/extending.md that opens with its path."""
    blocks = re.findall(r"```python\n# (xlrun/\S+\.py)\n(.*?)```", DOC.read_text(encoding="utf-8"),
                        re.S)
    return dict(blocks)


@pytest.fixture
def toys(tmp_path: Path) -> Iterator[dict[str, object]]:
    """Each example loaded from its own file (as if dropped into its package); every
    registry is restored afterwards."""
    before = {kind: set(reg.names()) for kind, reg in ALL.items()}
    modules = {}
    for rel, source in doc_files().items():
        path = tmp_path / "toys" / Path(rel).name
        path.parent.mkdir(exist_ok=True)
        path.write_text(source, encoding="utf-8")
        name = f"xlrun_toy_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        modules[path.stem] = module
    try:
        yield modules
    finally:
        for kind, reg in ALL.items():
            for name in set(reg.names()) - before[kind]:
                reg.remove(name)
        for stem in modules:
            sys.modules.pop(f"xlrun_toy_{stem}", None)


def test_the_page_has_one_example_per_kind() -> None:
    files = doc_files()
    folders = {str(Path(p).parent) for p in files}
    assert folders == {"xlrun/train/samplers", "xlrun/data/train_sources",
                       "xlrun/langsim/distance_sources", "xlrun/evaluate/tasks",
                       "xlrun/report/statistics", "xlrun/tracking"}
    for path in files:  # a new file, not one that exists
        assert not (REPO / path).exists(), path


def test_every_module_of_a_registry_package_is_imported() -> None:
    """The package imports each file in its folder: that is what makes a component one file."""
    for package in PACKAGES:
        pkg = importlib.import_module(package)
        for f in Path(pkg.__file__).parent.glob("*.py"):
            if f.stem != "__init__":
                assert f"{package}.{f.stem}" in sys.modules, (package, f.name)


def test_a_new_file_in_a_package_is_registered(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "toypkg"
    pkg.mkdir()
    (pkg / "base.py").write_text("from xlrun.registry import Registry\nTHINGS = Registry('thing')\n")
    (pkg / "__init__.py").write_text("from toypkg.base import THINGS\n"
                                     "from xlrun.registry import import_submodules\n"
                                     "import_submodules(__name__, __path__)\n")
    (pkg / "one.py").write_text("from toypkg.base import THINGS\n\n\nclass One:\n"
                                "    @classmethod\n    def validate(cls, section, key_path):\n"
                                "        pass\n\n\nTHINGS.add('one', One)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert importlib.import_module("toypkg").THINGS.names() == ["one"]
    finally:
        for m in [m for m in sys.modules if m == "toypkg" or m.startswith("toypkg.")]:
            del sys.modules[m]
    assert import_submodules  # the mechanism under test


def test_registry_refuses_duplicates_and_components_without_validate() -> None:
    reg: Registry[object] = Registry("widget")
    reg.add("a", TRAIN_SOURCES.get("jsonl"))
    with pytest.raises(ValueError, match="already registered"):
        reg.add("a", TRAIN_SOURCES.get("jsonl"))
    with pytest.raises(ValueError, match="validate"):
        reg.add("b", object())
    with pytest.raises(SpecError) as err:
        reg.check("c", "x.kind", also=["none"])
    assert err.value.path == "x.kind" and "a, none" in str(err.value)


def test_spec_fields_that_name_components_list_the_registry() -> None:
    """The schema holds no list of names: an unknown one is refused with the registry's."""
    base = ('[experiment]\nname = "t"\n[model]\nname = "m"\n[train]\nsteps = 0\n'
            '[[eval]]\ndataset = "quickstart"\n')
    cases = {
        ("sampling", "strategy"): "samplers",
        ("train_data", "source"): "train_sources",
        ("executor", "kind"): "executors",
    }
    for (section, key), registry in cases.items():
        text = base + f'[{section}]\n{key} = "nope"\n'
        with pytest.raises(SpecError) as err:
            parse_spec(text)
        assert err.value.path == f"{section}.{key}"
        for name in REGISTRIES[registry].names():
            assert name in str(err.value), name
    with pytest.raises(SpecError) as err:
        parse_spec(base.replace('dataset = "quickstart"', 'dataset = "nope"'))
    assert err.value.path == "eval[0].dataset" and "xquad-r" in str(err.value)
    with pytest.raises(SpecError, match=r"grid.sampling.strategy\[1\].*unknown sampler"):
        parse_spec(base + '[grid]\n"sampling.strategy" = ["hybrid", "zigzag"]\n')


def _write_data(tmp: Path) -> dict[str, Path]:
    langs = ["en", "de", "fr"]
    train = tmp / "pairs.tsv"
    rows = ["lang\tparallel_id\tquery\tpassage"]
    for i in range(40):
        rows += [f"{lang}\tp{i}\tquestion {i} in {lang}\tanswer {i} in {lang}" for lang in langs]
    train.write_text("\n".join(rows) + "\n", encoding="utf-8")
    table = tmp / "distances.csv"
    table.write_text("lang_a,lang_b,distance\nen,de,0.2\nen,fr,0.9\nde,fr,0.8\n",
                     encoding="utf-8")
    qa = tmp / "qa"
    qa.mkdir()
    for lang in ("en", "de"):
        (qa / f"{lang}.tsv").write_text(
            "id\tquestion\tanswer\n" + "".join(f"q{i}\twhat {i} {lang}\tthat {i} {lang}\n"
                                               for i in range(5)), encoding="utf-8")
    return {"train": train, "table": table, "qa": qa}


SPEC = """
[experiment]
name = "toys"
output_dir = "{out}"
[model]
name = "quickstart:tiny"
[train_data]
source = "tsv"
path = "{train}"
[sampling]
strategy = "mostly_cross"
language_sampling = "clustered"
similarity = "0.5*table:{table}+0.5*script"
n_clusters = 2
exposure = "free"
[train]
steps = 50
batch_size = 4
[[eval]]
dataset = "qa_tsv"
path = "{qa}"
languages = ["en", "de"]
"""


def test_the_examples_work_through_the_spec_loader(tmp_path: Path, toys: dict) -> None:
    files = _write_data(tmp_path)
    text = SPEC.format(out=tmp_path / "out", **files)
    runs = compile_spec(parse_spec(text, base_dir=tmp_path))
    assert [r.config.sampler for r in runs] == ["mostly_cross"]
    # submit's checks: the tsv corpus and the qa_tsv folder are read, the arm's sampler is
    # built with clusters from the table distances
    (plan,) = check_runs(runs, experiment="toys", output_dir=tmp_path / "out")
    assert sorted(map(list, plan.clusters)) == [["de", "en"], ["fr"]]
    corpus = load_train_corpus(runs[0].config.train_data)
    assert corpus.languages == ["de", "en", "fr"] and corpus.size("fr") == 40
    sampler = make_sampler(runs[0].config.sampling, corpus, 4, seed=0,
                           clusters=[list(c) for c in plan.clusters])
    kinds = [sampler.next_batch().kind for _ in range(500)]
    assert 0.12 < kinds.count("mono") / 500 < 0.28  # the strategy's own share, not 0.5
    dm = distance_matrix(f"table:{files['table']}", ["fr", "en"])
    assert dm.values.tolist() == [[0.0, 0.9], [0.9, 0.0]]
    data = load_dataset(EvalSection("qa_tsv", path=str(files["qa"])))
    assert data.parallel and data.languages == ["de", "en"]
    assert data.qrels[("de", "q3")] == {"de:q3", "en:q3"}
    # mono_ratio means nothing to mostly_cross, so it does not enter the run key
    other = compile_spec(parse_spec(text.replace("n_clusters = 2", "n_clusters = 2\nmono_ratio = 0.9"),
                                    base_dir=tmp_path))
    assert other[0].run_key == runs[0].run_key


@pytest.mark.parametrize("edit, path, needle", [
    (('path = "{train}"', 'path = "{table}"'), "train_data.path", "reads a .tsv file"),
    (("table:{table}", "table:{out}/none.csv"), "sampling.similarity", "not found"),
    (('languages = ["en", "de"]', 'languages = ["en", "fr"]'), "eval[0].languages[1]",
     "has no language 'fr'"),
    (("n_clusters = 2", 'n_clusters = 2\npairing = "cluster_batch"'), "sampling.pairing",
     "not one cluster per batch"),
])
def test_the_examples_validate_their_sections(tmp_path: Path, toys: dict,
                                              edit: tuple[str, str], path: str,
                                              needle: str) -> None:
    files = _write_data(tmp_path)
    text = SPEC.replace(*edit).format(out=tmp_path / "out", **files)
    with pytest.raises(SpecError) as err:
        compile_spec(parse_spec(text, base_dir=tmp_path))
    assert err.value.path == path and needle in str(err.value)


def test_the_example_statistic_is_a_report_test(toys: dict) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for arm, shift, run0 in (("base", 0.0, 0), ("better", 0.05, 10)):
        for seed in range(3):
            for q in range(30):
                rows.append((arm, "en", "de", run0 + seed, seed, f"q{q}",
                             0.5 + shift + 0.01 * rng.standard_normal()))
    df = pl.DataFrame(rows, schema=["arm", "query_lang", "doc_lang", "run_id", "seed",
                                    "query_id", "ap"], orient="row").with_columns(
        pl.lit("d").alias("dataset"), pl.lit("test").alias("split"),
        pl.lit("cross").alias("setting"))
    out = compare_arms(df, ["query_lang"], "ap", "base", InferenceConfig(test="sign")).frame
    better = out.filter(pl.col("arm") == "better").row(0, named=True)
    assert better["design"] == "questions" and better["p"] < 1e-6
    assert better["ci_low"] is None and better["delta"] == pytest.approx(0.05, abs=0.01)
    with pytest.raises(SpecError, match="sign"):
        compare_arms(df, ["query_lang"], "ap", "base", InferenceConfig(test="nope"))


def test_train_source_registry_drives_the_corpus(tmp_path: Path, toys: dict) -> None:
    files = _write_data(tmp_path)
    section = TrainDataSection(source="tsv", path=str(files["train"]), languages=["de"],
                               max_per_language=7)
    assert load_train_corpus(section).size("de") == 7


def test_the_example_tracker_logs_a_run(tmp_path: Path, toys: dict) -> None:
    files = _write_data(tmp_path)
    text = SPEC.format(out=tmp_path / "out", **files)
    spec = parse_spec(text + '[tracking]\nreport_to = ["csv_log"]\n[tracking.csv_log]\n'
                      'decimals = 2\n', base_dir=tmp_path)
    options = spec.tracking.options["csv_log"]
    assert options.decimals == 2
    with pytest.raises(SpecError) as err:
        parse_spec(text + '[tracking]\nreport_to = ["csv_log"]\n[tracking.csv_log]\n'
                   'decimals = 40\n', base_dir=tmp_path)
    assert err.value.path == "tracking.csv_log.decimals"
    run = TrackedRun(experiment="toys", run_id=1, run_key="k1", arm="a", seed=0, model="m",
                     steps=4, output_dir=tmp_path / "out")
    session = TrackingSession([TRACKERS.get("csv_log")(options, run)], run)
    session.on_log(2, 1.23456, 1e-3, None)
    session.close()
    assert session.warnings == []
    assert (tmp_path / "out" / "toys" / "k1.csv").read_text().splitlines() == [
        "step,name,value", "2,train/loss,1.23", "2,train/learning_rate,0.0"]
