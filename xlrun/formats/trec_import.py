"""``xlrun import-run``: a TREC run made elsewhere, evaluated on a dataset xlrun knows and
stored as a run of its own — a reference arm that reports compare like any other.

The run file's query ids are xlrun's (``<setting>/<query_lang>/<doc_lang>/<query_id>``;
``xlrun export-trec RUN_ID --topics`` writes the queries under them), its document ids the
dataset's as xlrun loads them. The evaluation section is built from the flags, like
``xlrun evaluate``'s, or copied from one of xlrun's own runs (``like``: the same dataset
folder, languages, settings, query sample and measures, so every query pairs with that
run's). :func:`prepare_import` scores the file without touching the database, so a bad file
or section writes nothing; :func:`store_import` stores it. How the ranking is scored: :mod:`xlrun.evaluate.external`. How it is stored:
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


def like_section(engine: Engine, run_id: int, dataset: str | None) -> dict[str, Any]:
    """The ``[[eval]]`` table run ``run_id`` used for ``dataset`` (its only one when
    ``dataset`` is None).

    Raises:
        UsageError: no such run, or not exactly one matching section.
    """
    run = store.get_run(engine, run_id)
    every = json.loads(run["config_json"]).get("eval", [])
    sections = [s for s in every if dataset is None or s.get("dataset") == dataset]
    if len(sections) != 1:
        have = ", ".join(sorted({str(s.get("dataset")) for s in every}))
        raise UsageError(f"--like {run_id}: the run evaluates {have or 'nothing'}; "
                         + ("name one with --dataset" if dataset is None and sections
                            else f"not {dataset!r}"))
    known = {f.name for f in dataclasses.fields(EvalSection)}
    return {k: v for k, v in sections[0].items() if k in known}


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


@dataclass(frozen=True)
class PreparedImport:
    """A run file scored and ready to store (:func:`store_import`)."""

    name: str
    experiment: str
    run_key: str
    config: dict[str, Any]
    model: str
    section: EvalSection
    coverage: RunCoverage
    output: EvalOutput


def prepare_import(path: str | Path, *, name: str, experiment: str, table: dict[str, Any],
                   measures: list[str] | None = None, top_k: int | None = None
                   ) -> PreparedImport:
    """Score the run file ``path`` on the ``[[eval]]`` ``table`` (built from the flags, or
    :func:`like_section`'s); ``measures`` and ``top_k`` override the table's. Touches no
    database.

    Raises:
        UsageError: a bad name, file, section or id.
    """
    check_name(name)
    file = Path(path)
    section_table = dict(table)
    if measures is not None:
        section_table["measures"] = list(measures)
    if top_k is not None:
        section_table["top_k"] = top_k
    DATASETS.get(str(section_table.get("dataset")), "--dataset")
    section = build_section(section_table)
    run = read_run(file)
    data = load_dataset(section)
    output, coverage = evaluate_run(data, section, run)
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    section_json = json.dumps(dataclasses.asdict(section), sort_keys=True)
    run_key = hashlib.sha256(f"{digest}\n{section_json}\n{name}".encode()).hexdigest()[:16]
    model = f"trec-run:{file.name}"
    config = RunConfig(model=ModelSection(name=model), train_data=TrainDataSection(),
                       sampling=SamplingSection(), train=TrainSection(steps=0),
                       eval=[section]).to_dict()
    config[EXTERNAL_KEY] = {"name": name, "file": str(file.resolve()), "sha256": digest,
                            "queries_without_results": coverage.without_results,
                            "run_queries_ignored": coverage.ignored}
    return PreparedImport(name, experiment, run_key, config, model, section, coverage, output)


def store_import(engine: Engine, prepared: PreparedImport) -> StoredRun:
    """Store a :class:`PreparedImport` as a done run (one transaction; a run with the same
    key is left as it is)."""
    spec_toml = (f"# created by `xlrun import-run` for {prepared.name}\n[experiment]\n"
                 f"name = {json.dumps(prepared.experiment)}\n")
    return store_external_run(engine, prepared.experiment, prepared.name, prepared.run_key,
                              prepared.config, prepared.model, prepared.output.tables(),
                              spec_toml)
