"""Evaluate a ranking made elsewhere (a TREC run file: BM25 from pyserini or bm25s, another
model's run) on a dataset xlrun knows, into the same tables as xlrun's own evaluation.

The run's query ids follow xlrun's scheme (``<setting>/<query_lang>/<doc_lang>/<query_id>``,
:mod:`xlrun.formats.trec`; ``xlrun export-trec --topics`` writes the queries under those
ids), so each line lands in the cell (setting, languages) and query xlrun evaluates, and the
result pairs query by query with xlrun's runs. Documents are ranked as trec_eval ranks them
(score descending, then docno descending; the file's rank column is ignored) and measured
exactly as trec_eval measures a run of that depth: a relevant document the run did not
return counts as not retrieved (AP, recall and the ideal DCG still count it), a query the
file has no line for retrieved nothing (its measures are 0, as ``trec_eval -c`` counts it).

``first_relevant_rank`` is 0 where the run returned no relevant document; in the ``multi``
setting ``rank_distance`` is left empty where a relevant document was not returned, and
``same_lang_at_10`` is the share among the documents returned when fewer than 10 were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from xlrun.errors import UsageError
from xlrun.evaluate.measures import parse_measures
from xlrun.evaluate.runner import (
    RETRIEVED_SCHEMA,
    Collection,
    EvalOutput,
    ResultFrames,
    setting_cells,
)
from xlrun.evaluate.types import POOL, EvalData
from xlrun.formats.trec import QueryKey, parse_query_id, trec_order
from xlrun.spec.schema import EvalSection


@dataclass(frozen=True)
class RunCoverage:
    """How the run file met the dataset: queries evaluated, those the file has no line for
    (scored as retrieving nothing), run queries outside the evaluated cells (ignored, with
    examples) and the lines used."""

    evaluated: int
    without_results: int
    ignored: int
    lines_used: int
    ignored_examples: tuple[str, ...] = field(default=())


def _collection(ids: list[str], langs: list[str]) -> Collection:
    return Collection(np.zeros((len(ids), 0), dtype=np.float32), None,
                      np.array(ids, dtype=object), np.array(langs, dtype=object))


def _examples(values: list[str], limit: int = 3) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f" … ({len(values)} in all)" if len(values) > limit else "")


def evaluate_run(data: EvalData, cfg: EvalSection, run: Mapping[str, Mapping[str, float]]
                 ) -> tuple[EvalOutput, RunCoverage]:
    """Score ``run`` (``{trec query id: {doc id: score}}``) on ``data`` in every setting of
    ``cfg``, with ``cfg.measures``; the top ``cfg.top_k`` documents of each query go to
    ``retrieved``.

    Raises:
        UsageError: query ids not in xlrun's scheme, none of them an evaluated query, or
            documents that are not in the collection of their query's cell.
    """
    bad = [q for q in run if parse_query_id(q) is None]
    if bad:
        raise UsageError(
            f"{len(bad)} query id(s) of the run are not xlrun TREC ids "
            f"(<setting>/<query_lang>/<doc_lang>/<query_id>, e.g. mono/de/de/q1): "
            f"{_examples(bad)}; `xlrun export-trec RUN_ID --topics --out DIR` writes the "
            "queries under these ids for the system that makes the run")
    qlangs = sorted(lang for lang, qs in data.queries.items() if qs)
    dlangs = sorted(lang for lang, docs in data.corpus.items() if docs)
    cells = setting_cells(cfg.settings, qlangs, dlangs, data, cfg.pairs)
    frames = ResultFrames(data, parse_measures(cfg.measures, "measures"))
    by_lang = {lang: _collection([d.id for d in data.corpus[lang]],
                                 [d.lang for d in data.corpus[lang]]) for lang in dlangs}
    pool = _collection([d for lang in dlangs for d in by_lang[lang].ids],
                       [x for lang in dlangs for x in by_lang[lang].langs])
    members = {lang: set(c.ids) for lang, c in by_lang.items()}
    members[POOL] = set(pool.ids)
    lang_of = dict(zip(pool.ids, pool.langs, strict=True))
    used: set[str] = set()
    evaluated = without = lines = 0
    share = {x: float(np.mean(pool.langs == x)) if len(pool.ids) else np.nan for x in qlangs}
    for setting, x, y in cells:
        col = pool if y == POOL else by_lang[y]
        inside = members[y]
        scope = data.cross.get((x, y)) if setting == "cross" and data.cross else None
        if scope is not None and scope.doc_ids is not None:  # a pair's own documents only
            inside = inside & scope.doc_ids
        qids, ranks, grades, tops, bias_rows = [], [], [], [], []
        for q in data.queries[x]:
            if scope is not None and scope.query_ids is not None and q.id not in scope.query_ids:
                continue
            rel = sorted(d for d in data.relevant(q) if d in inside)
            if not rel:
                continue
            key = QueryKey(setting, x, y, q.id).trec_id()
            scores = run.get(key, {})
            if key in run:
                used.add(key)
            outside = [d for d in scores if d not in inside]
            if outside:
                raise UsageError(
                    f"query {key} of the run ranks {len(outside)} document(s) that are not in "
                    f"the {setting} collection of {y!r}: {_examples(outside)} (document ids "
                    "must be xlrun's, as in the qrels `xlrun export-trec` writes)")
            order = trec_order(dict(scores))
            rank_of = {d: i + 1 for i, d in enumerate(order)}
            qids.append(q.id)
            ranks.append([float(rank_of.get(d, np.inf)) for d in rel])
            grades.append([float(data.grade(q, d)) for d in rel])
            tops.append([(d, scores[d], d in data.relevant(q)) for d in order[:cfg.top_k]])
            evaluated += 1
            without += not scores
            lines += len(scores)
            if setting == "multi":
                top10 = [lang_of[d] for d in order[:10]]
                found = [rank_of[d] for d in rel if d in rank_of]
                bias_rows.append((
                    float(max(found) - min(found)) if data.parallel and len(found) == len(rel)
                    else np.nan,
                    float(np.mean([lang == x for lang in top10])) if top10 else np.nan,
                    share[x]))
        if not qids:
            continue
        width = max(len(r) for r in ranks)
        r_arr = np.full((len(qids), width), np.inf)
        g_arr = np.zeros((len(qids), width))
        for i, (r, g) in enumerate(zip(ranks, grades, strict=True)):
            r_arr[i, :len(r)], g_arr[i, :len(g)] = r, g
        bias_cols = None
        if setting == "multi":
            b = np.array(bias_rows, dtype=np.float64)
            bias_cols = {"rank_distance": b[:, 0], "same_lang_at_10": b[:, 1],
                         "same_lang_expected": b[:, 2]}
        qid_arr = np.array(qids, dtype=object)
        frames.add(setting, x, y, qid_arr, r_arr, np.zeros((len(qids), 0), dtype=np.int64),
                   np.zeros((len(qids), 0), dtype=np.float32), col,
                   np.zeros((len(qids), width), dtype=np.int64), 0, bias_cols, g_arr)
        frames.rt.append(_retrieved(data, setting, x, y, qids, tops))
    ignored = sorted(set(run) - used)
    if run and not used:
        raise UsageError(f"none of the run's {len(run)} queries is one xlrun evaluates here "
                         f"(e.g. {_examples(ignored)}); check --settings and --langs, and that "
                         "the query ids name this dataset's queries")
    coverage = RunCoverage(evaluated, without, len(ignored), lines, tuple(ignored[:3]))
    return frames.output({"n_pairs": len(cells)}), coverage


def _retrieved(data: EvalData, setting: str, x: str, y: str, qids: list[str],
               tops: list[list[tuple[str, float, bool]]]) -> pa.Table:
    n = sum(len(t) for t in tops)
    cols = {"dataset": [data.dataset] * n, "split": [data.split] * n, "setting": [setting] * n,
            "query_lang": [x] * n, "doc_lang": [y] * n,
            "query_id": [q for q, t in zip(qids, tops, strict=True) for _ in t],
            "rank": [i + 1 for t in tops for i in range(len(t))],
            "doc_id": [d for t in tops for d, _, _ in t],
            "score": [float(s) for t in tops for _, s, _ in t],
            "is_relevant": [r for t in tops for _, _, r in t]}
    return pa.table({name: pa.array(cols[name], type=RETRIEVED_SCHEMA.field(name).type)
                     for name in RETRIEVED_SCHEMA.names}, schema=RETRIEVED_SCHEMA)
