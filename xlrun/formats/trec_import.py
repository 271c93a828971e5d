"""``xlrun import-run``: a TREC run made elsewhere, evaluated on a dataset xlrun knows and
stored as a run of its own — a reference arm that reports compare like any other.

The run file's query ids are xlrun's (``<setting>/<query_lang>/<doc_lang>/<query_id>``;
``xlrun export-trec RUN_ID --topics`` writes the queries under them), its document ids the
dataset's as xlrun loads them. The evaluation section is built from the flags, like
``xlrun evaluate``'s, or copied from one of xlrun's own runs (``like``: the same dataset
folder, languages, settings, query sample and measures, so every query pairs with that
run's). How the ranking is scored: :mod:`xlrun.evaluate.external`. How it is stored:
:mod:`xlrun.db.external_runs`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xlrun.db import store
from xlrun.db.external_runs import EXTERNAL_KEY, StoredRun, store_external_run
from xlrun.errors import UsageError
from xlrun.evaluate.external import RunCoverage, evaluate_run
from xlrun.evaluate.runner import EvalOutput
from xlrun.evaluate.tasks import DATASETS, load_dataset
from xlrun.formats.trec import read_run
from xlrun.spec.schema import (
    EvalSection,
    ModelSection,
    RunConfig,
    SamplingSection,
    TrainDataSection,
    TrainSection,
)

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
"""An imported run's name: its arm label (``--baseline bm25``)."""


@dataclass(frozen=True)
class ImportedRun:
    """What :func:`import_trec_run` did."""

    stored: StoredRun
    experiment: str
    section: EvalSection
    coverage: RunCoverage
    output: EvalOutput


def check_name(name: str) -> str:
    """``name`` if it can label an arm: letters, digits and ``_ . + -``, at most 64, and not
    the name of a sampler (nor ``none``, the untrained arm).

    Raises:
        UsageError: saying what is allowed.
    """
    from xlrun.train.samplers import SAMPLERS

    if not NAME_PATTERN.fullmatch(name or ""):
        raise UsageError(f"--name {name!r}: use 1 to 64 letters, digits and _ . + - (starting "
                         "with a letter or digit), e.g. bm25 or bge-m3")
    taken = {"none", *SAMPLERS.names()}
    if name in taken:
        raise UsageError(f"--name {name!r} is the label of xlrun's own arms "
                         f"({', '.join(sorted(taken))}); choose another, e.g. bm25")
    return name


def _like_section(engine: Engine, run_id: int, dataset: str | None) -> EvalSection:
    run = store.get_run(engine, run_id)
    sections = json.loads(run["config_json"]).get("eval", [])
    if dataset is not None:
        sections = [s for s in sections if s.get("dataset") == dataset]
    if len(sections) != 1:
        have = ", ".join(sorted({str(s.get("dataset")) for s in
                                 json.loads(run["config_json"]).get("eval", [])}))
        raise UsageError(f"--like {run_id}: the run evaluates {have or 'nothing'}; "
                         + ("name one with --dataset" if dataset is None and sections
                            else f"not {dataset!r}"))
    known = {f.name for f in dataclasses.fields(EvalSection)}
    return EvalSection(**{k: v for k, v in sections[0].items() if k in known})


def build_section(table: dict[str, Any]) -> EvalSection:
    """An ``[[eval]]`` table checked as a spec checks it (languages normalised, measures
    canonical, paths absolute).

    Raises:
        SpecError: naming the key path, as for a spec.
    """
    from xlrun.spec.grid import compile_spec
    from xlrun.spec.load import parse_spec
    from xlrun.spec.toml_writer import dumps

    spec = {"experiment": {"name": "import"}, "model": {"name": "external"},
            "train": {"steps": 0}, "eval": [table]}
    runs = compile_spec(parse_spec(dumps(spec), base_dir=Path.cwd()))
    return runs[0].config.eval[0]


def import_trec_run(engine: Engine, path: str | Path, *, name: str, experiment: str,
                    table: dict[str, Any] | None = None, like: int | None = None,
                    dataset: str | None = None, measures: list[str] | None = None,
                    top_k: int | None = None) -> ImportedRun:
    """Evaluate the run file ``path`` and store it as run ``name`` of ``experiment``.

    The evaluation section is ``table`` (an ``[[eval]]`` table built from the flags) or,
    with ``like``, that run's section for ``dataset``; ``measures`` and ``top_k`` override
    either.

    Raises:
        UsageError: a bad name, file, section or id (nothing is written).
    """
    check_name(name)
    file = Path(path)
    if like is not None:
        section = _like_section(engine, like, dataset)
        section_table = dataclasses.asdict(section)
    elif table is not None:
        section_table = dict(table)
    else:
        raise UsageError("give --dataset (and its options) or --like RUN_ID")
    if measures is not None:
        section_table["measures"] = list(measures)
    if top_k is not None:
        section_table["top_k"] = top_k
    if section_table.get("dataset") is not None:
        DATASETS.get(str(section_table["dataset"]), "--dataset")
    section = build_section(section_table)
    run = read_run(file)
    data = load_dataset(section)
    output, coverage = evaluate_run(data, section, run)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    section_json = json.dumps(dataclasses.asdict(section), sort_keys=True)
    run_key = hashlib.sha256(f"{digest}\n{section_json}\n{name}".encode()).hexdigest()[:16]
    config = RunConfig(model=ModelSection(name=f"trec-run:{file.name}"),
                       train_data=TrainDataSection(), sampling=SamplingSection(),
                       train=TrainSection(steps=0), eval=[section]).to_dict()
    config[EXTERNAL_KEY] = {"name": name, "file": str(file.resolve()), "sha256": digest,
                            "queries_without_results": coverage.without_results,
                            "run_queries_ignored": coverage.ignored}
    spec_toml = (f"# created by `xlrun import-run` for {name}\n[experiment]\n"
                 f"name = {json.dumps(experiment)}\n")
    stored = store_external_run(engine, experiment, name, run_key, config,
                                f"trec-run:{file.name}", output.tables(), spec_toml)
    return ImportedRun(stored, experiment, section, coverage, output)
