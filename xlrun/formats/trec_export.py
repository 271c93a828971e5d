"""``xlrun export-trec``: runs and their qrels as TREC files, for trec_eval, ir_measures, ranx.

For every run and every (dataset, split) it has results for, one run file
``run<ID>.<dataset>.<split>.run`` holds the top ``k`` documents of every query the run
evaluated, with full-precision scores, under xlrun's query ids
(``<setting>/<query_lang>/<doc_lang>/<query_id>``, :mod:`xlrun.formats.trec`); one qrels file
``<dataset>.<split>.qrels`` per (dataset, split) holds, for each of those queries, its
relevant documents *within the collection that setting searched* (``mono``: the query's
language, ``cross``: the document language, ``multi``: all languages) with their grades.
``--topics`` adds ``<dataset>.<split>.topics.tsv`` (``qid<TAB>query text``), the input an
external system needs to make a run xlrun can import.

The top ``k`` comes from the stored top-k lists (``retrieved``) when the run kept at least
``k`` per query (``[[eval]] top_k >= k``); otherwise the run's model evaluates the dataset
again (an untrained run's model, or the model a trained run saved with
``train.save_model = true``), and the export notes how far the recomputed AP is from the
stored one (0 on the same device; bf16 on a GPU against fp32 on a CPU may move a tie).
Qrels come from the evaluation data itself (xlrun stores measures, not judgements), loaded
from the run's ``[[eval]]`` section or ``data_path``.

trec_eval (or ir_measures) on these files gives xlrun's stored values for every measure
whose cutoff is ≤ k (nDCG@10, RR@10, P@k, R@k, …); measures over the whole ranking (AP,
nDCG without cutoff) need ``k`` ≥ the collection size.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from xlrun.db import run_results, store
from xlrun.db.external_runs import EXTERNAL_KEY
from xlrun.errors import UsageError
from xlrun.evaluate.tasks import load_dataset
from xlrun.evaluate.types import POOL, EvalData
from xlrun.formats.trec import QueryKey, write_qrels, write_run
from xlrun.spec.schema import EvalSection


@dataclass(frozen=True)
class ExportedFile:
    """One file written: its path, kind (``run``, ``qrels``, ``topics``) and line count."""

    path: Path
    kind: str
    lines: int


@dataclass(frozen=True)
class TrecExport:
    """What :func:`export_trec` wrote, and notes for the reader."""

    files: tuple[ExportedFile, ...]
    notes: tuple[str, ...] = field(default=())


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _section(config: dict[str, Any], dataset: str, split: str, data_path: str | None
             ) -> EvalSection:
    known = {f.name for f in dataclasses.fields(EvalSection)}
    for sec in config.get("eval", []):
        if sec.get("dataset") == dataset and sec.get("split", "test") == split:
            cfg = EvalSection(**{k: v for k, v in sec.items() if k in known})
            return dataclasses.replace(cfg, path=data_path) if data_path else cfg
    raise UsageError(f"the run's config has no [[eval]] section for {dataset}/{split}")


def _collections(data: EvalData) -> dict[str, set[str]]:
    out = {lang: {d.id for d in docs} for lang, docs in data.corpus.items()}
    out[POOL] = set().union(*out.values()) if out else set()
    return out


def qrels_rows(data: EvalData, keys: Iterable[tuple[str, str, str, str]]
               ) -> dict[str, dict[str, int]]:
    """The judgements of each query key within the collection its setting searched."""
    members = _collections(data)
    queries = {(q.lang, q.id): q for qs in data.queries.values() for q in qs}
    out: dict[str, dict[str, int]] = {}
    for setting, x, y, qid in keys:
        q = queries.get((x, qid))
        if q is None:
            raise UsageError(f"query {qid!r} ({x}) of the stored results is not in the "
                             f"evaluation data loaded for {data.dataset}/{data.split}: the "
                             "data changed since the run (give the run's data with --data-path)")
        inside = members.get(y, set())
        out[QueryKey(setting, x, y, qid).trec_id()] = {
            d: data.grade(q, d) for d in sorted(data.relevant(q)) if d in inside}
    return out


def _reencoded(run: dict[str, Any], config: dict[str, Any], section: EvalSection,
               data: EvalData, k: int, device: str) -> tuple[list[tuple[str, str, int, float]],
                                                             dict[tuple[str, ...], float]]:
    """The top ``k`` of every query from the run's model, and the recomputed AP per key."""
    from xlrun.evaluate.runner import evaluate_dataset  # deferred on purpose: needs torch
    from xlrun.execute.run_context import config_from_json, output_dir_of, run_dir
    from xlrun.execute.training import load_encoder

    if EXTERNAL_KEY in config:
        fix = (f"export it with --top-k {section.top_k} or less" if section.top_k
               else "import it again with --top-k K to keep its top K")
        raise UsageError(f"run {run['id']} was imported from a run file with top-k "
                         f"{section.top_k}: {fix}")
    cfg = config_from_json(json.dumps(config))
    out = (Path(config["output_dir"]) if config.get("output_dir")
           else output_dir_of(run["spec_toml"]))
    model = cfg.model
    if cfg.train.steps > 0:
        folder = run_dir(out, run["experiment"], run["run_key"]) / "model"
        if not cfg.train.save_model or not folder.is_dir():
            raise UsageError(
                f"run {run['id']} kept top-{section.top_k} lists only and its trained model "
                f"is not at {folder} (train.save_model = {str(cfg.train.save_model).lower()}): "
                f"export with --top-k {section.top_k} or less, or rerun with a larger "
                "[[eval]] top_k or train.save_model = true")
        model = dataclasses.replace(model, name=str(folder))
    encoder = load_encoder(model, device, out / ".models")
    result = evaluate_dataset(encoder, data, dataclasses.replace(section, top_k=k))
    rt = result.retrieved.to_pydict()
    rows = [(QueryKey(s, x, y, q).trec_id(), d, int(r), float(v)) for s, x, y, q, r, d, v in zip(
        rt["setting"], rt["query_lang"], rt["doc_lang"], rt["query_id"], rt["rank"],
        rt["doc_id"], rt["score"], strict=True)]
    qr = result.query_results.to_pydict()
    ap = {(s, x, y, q): float(a) for s, x, y, q, a in zip(
        qr["setting"], qr["query_lang"], qr["doc_lang"], qr["query_id"], qr["ap"], strict=True)}
    return rows, ap


def export_trec(engine: Engine, run_ids: Sequence[int], out_dir: str | Path, top_k: int = 100,
                dataset: str | None = None, split: str | None = None,
                data_path: str | None = None, topics: bool = False, device: str = "auto",
                log: Callable[[str], None] | None = None) -> TrecExport:
    """Write the TREC files of ``run_ids`` (see the module docstring) into ``out_dir``.

    Raises:
        UsageError: an unknown or unfinished run, no results for ``dataset``/``split``, a
            top-k the run cannot give, data that no longer match the stored results, or an
            id that cannot stand in a TREC file. Runs and results are checked before any
            file is written; files are then written one run at a time.
    """
    if top_k < 1:
        raise UsageError(f"--top-k must be 1 or more, got {top_k}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a folder")
    plans = []
    for rid in dict.fromkeys(run_ids):
        run = store.get_run(engine, rid)
        if run["status"] != "done":
            raise UsageError(f"run {rid} is {run['status']}, not done: it has no complete "
                             "results to export")
        sets = [s for s in run_results.result_sets(engine, rid)
                if (dataset is None or s.dataset == dataset) and (split is None or s.split == split)]
        if not sets:
            where = "/".join(x for x in (dataset, split) if x) or "any dataset"
            raise UsageError(f"run {rid} has no results for {where}")
        plans.append((run, sets))
    files: list[ExportedFile] = []
    notes: list[str] = []
    qrels: dict[tuple[str, str], dict[str, dict[str, int]]] = {}
    texts: dict[tuple[str, str], dict[str, str]] = {}
    data_cache: dict[str, EvalData] = {}
    out.mkdir(parents=True, exist_ok=True)
    for run, sets in plans:
        config = json.loads(run["config_json"])
        for rs in sets:
            section = _section(config, rs.dataset, rs.split, data_path)
            key = json.dumps(dataclasses.asdict(section), sort_keys=True)
            if key not in data_cache:
                if log:
                    log(f"loading {rs.dataset}/{rs.split}")
                data_cache[key] = load_dataset(section)
            data = data_cache[key]
            keys = run_results.query_keys(engine, run["id"], rs.dataset, rs.split)
            judged = qrels_rows(data, keys)
            merged = qrels.setdefault((rs.dataset, rs.split), {})
            for qid, docs in judged.items():
                if merged.setdefault(qid, docs) != docs:
                    raise UsageError(f"query {qid} of {rs.dataset}/{rs.split} has other "
                                     f"judgements for run {run['id']} than for an earlier run "
                                     "(different data): export the runs separately")
            if topics:
                queries = {(q.lang, q.id): q.text for qs in data.queries.values() for q in qs}
                texts.setdefault((rs.dataset, rs.split), {}).update(
                    {QueryKey(*k).trec_id(): queries[(k[1], k[3])] for k in keys})
            if section.top_k >= top_k and rs.top_k > 0:
                rows: Iterable[tuple[str, str, int, float]] = (
                    (QueryKey(s, x, y, q).trec_id(), d, r, v) for s, x, y, q, r, d, v in
                    run_results.top_lists(engine, run["id"], rs.dataset, rs.split, top_k))
            else:
                if log:
                    log(f"run {run['id']}: re-encoding {rs.dataset}/{rs.split} for its top "
                        f"{top_k} (it kept {section.top_k})")
                rows, ap = _reencoded(run, config, section, data, top_k, device)
                diff = _ap_difference(engine, run["id"], rs, ap, keys)
                notes.append(f"run {run['id']} {rs.dataset}/{rs.split}: re-encoded with its "
                             f"model; recomputed AP differs from the stored AP by at most "
                             f"{diff:.2g}")
            path = out / f"run{run['id']}.{_safe(rs.dataset)}.{_safe(rs.split)}.run"
            n = write_run(path, rows, f"xlrun-run{run['id']}")
            files.append(ExportedFile(path, "run", n))
    for (ds, sp), judged in sorted(qrels.items()):
        path = out / f"{_safe(ds)}.{_safe(sp)}.qrels"
        n = write_qrels(path, ((q, d, g) for q in sorted(judged)
                               for d, g in sorted(judged[q].items())))
        files.append(ExportedFile(path, "qrels", n))
    for (ds, sp), by_id in sorted(texts.items()):
        path = out / f"{_safe(ds)}.{_safe(sp)}.topics.tsv"
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for qid in sorted(by_id):
                f.write(f"{qid}\t{' '.join(by_id[qid].split())}\n")
        files.append(ExportedFile(path, "topics", len(by_id)))
    return TrecExport(tuple(files), tuple(notes))


def _ap_difference(engine: Engine, run_id: int, rs: run_results.ResultSet,
                   recomputed: dict[tuple[str, ...], float],
                   keys: Sequence[tuple[str, str, str, str]]) -> float:
    """The largest |stored AP − recomputed AP| over the run's queries."""
    stored = run_results.stored_ap(engine, run_id, rs.dataset, rs.split)
    diffs = [abs(stored[k] - recomputed[k]) for k in keys if k in stored and k in recomputed]
    missing = [k for k in keys if k not in recomputed]
    if missing:
        raise UsageError(f"re-encoding run {run_id} did not evaluate {len(missing)} of its "
                         f"stored queries (e.g. {'/'.join(missing[0])}): the data changed")
    return max(diffs, default=0.0)
