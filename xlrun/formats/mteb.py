"""MTEB result files: a run's measures in the JSON layout MTEB's own loader reads.

MTEB (``mteb.ResultCache(folder).load_results()``, ``mteb.TaskResult.from_disk(file)``)
reads a results folder laid out as::

    <folder>/results/<model name, "/" → "__">/<revision>/model_meta.json
    <folder>/results/<model name, "/" → "__">/<revision>/<task name>.json

A task file holds ``task_name``, ``dataset_revision``, ``mteb_version`` (``null`` here: the
numbers are xlrun's, not MTEB's), ``evaluation_time``, ``date`` and ``scores``: per split, one
entry per subset with ``hf_subset``, ``languages`` (ISO 639-3 plus script, ``deu-Latn``),
``main_score`` and the measures under MTEB's keys (``ndcg_at_10``, ``map``, ``mrr_at_10``,
``recall_at_100``, ``precision_at_1``, ``hit_rate_at_5``; :func:`mteb_key`).

xlrun writes one task per evaluated dataset and setting, named ``xlrun-<dataset>-<setting>``
(``xlrun-xquad-r-mono``): xlrun's settings are not MTEB's tasks (its candidate pools, the
cross-lingual pairs and the pooled multilingual search differ), so the names say whose
evaluation it is. Subsets: ``de`` for a query language (``mono``, ``multi``), ``de-en`` for a
query-document language pair (``cross``). A setting's mean over all queries is not a subset:
MTEB averages the subsets itself. The key ``xlrun`` (ignored by MTEB's loader) records the
run (experiment, run key, arm, seed, xlrun version) and the main measure's name.

This module builds and writes the files; it does not import ``mteb``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from xlrun.errors import UnknownLanguageError
from xlrun.languages import LANGUAGES, normalize

NO_REVISION = "no_revision_available"
"""MTEB's revision folder for a model without a revision (a local folder, a trained run)."""
MAIN_SCORES = ("ndcg_at_10", "map", "mrr_at_10", "recall_at_100")
"""The first of these that a setting has is its ``main_score`` (MTEB's retrieval tasks use
nDCG@10); without any, the first measure in name order."""
POOL = "all"

_BASES = {"ndcg": "ndcg", "ap": "map", "map": "map", "rr": "mrr", "mrr": "mrr", "r": "recall",
          "recall": "recall", "p": "precision", "precision": "precision",
          "success": "hit_rate"}
_MEASURE = re.compile(r"(?P<base>[A-Za-z]+)(?:\((?P<params>[^)]*)\))?(?:@(?P<cutoff>\d+))?")


def mteb_key(measure: str) -> str:
    """A measure name (xlrun's ``ndcg@10`` or ir_measures' ``nDCG@10``) as MTEB's key:
    ``ndcg_at_10``; ``AP`` → ``map``, ``RR@10`` → ``mrr_at_10``, ``R@100`` →
    ``recall_at_100``, ``P@1`` → ``precision_at_1``, ``Success@5`` → ``hit_rate_at_5``;
    parameters join the name (``P(rel=2)@5`` → ``precision_rel_2_at_5``); other names are
    lower-cased with ``_`` for anything but letters and digits."""
    m = _MEASURE.fullmatch(measure.strip())
    if m is None:
        return re.sub(r"[^a-z0-9]+", "_", measure.lower()).strip("_")
    key = _BASES.get(m["base"].lower(), m["base"].lower())
    if m["params"]:
        key += "_" + re.sub(r"[^a-z0-9]+", "_", m["params"].lower()).strip("_")
    if m["cutoff"]:
        key += f"_at_{m['cutoff']}"
    return key


def mteb_language(code: str) -> str:
    """An ISO 639-1 code as MTEB writes languages: ISO 639-3 and ISO 15924 script
    (``de`` → ``deu-Latn``); a code xlrun does not know is kept as it is."""
    try:
        lang = LANGUAGES[normalize(code)]
    except (UnknownLanguageError, KeyError):
        return code
    return f"{lang.iso3}-{lang.script}"


def task_name(dataset: str, setting: str) -> str:
    """``xlrun-<dataset>-<setting>``, with anything but letters, digits, ``.``, ``-`` and
    ``_`` as ``_`` (it names the task's file)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", f"xlrun-{dataset}-{setting}")


def model_folder_name(name: str) -> str:
    """A model name as MTEB names its folder (``org/model`` → ``org__model``; spaces and
    other characters a folder name cannot hold → ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name.replace("/", "__"))


def _subsets(rows: Iterable[Mapping[str, Any]], setting: str
             ) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        if r["setting"] != setting or r["query_lang"] == POOL:
            continue
        out.setdefault((r["query_lang"], r["doc_lang"]), {})[mteb_key(r["metric"])] = float(r["value"])
    return out


def main_score_key(scores: Mapping[str, float]) -> str | None:
    """The key :data:`MAIN_SCORES` picks for a subset's ``scores``."""
    for key in MAIN_SCORES:
        if key in scores:
            return key
    return min(scores) if scores else None


def task_result(rows: Iterable[Mapping[str, Any]], *, dataset: str, split: str, setting: str,
                dataset_revision: str | None = None, evaluation_time: float | None = None,
                xlrun: Mapping[str, Any] | None = None,
                date: dt.datetime | None = None) -> dict[str, Any] | None:
    """The MTEB task result of one setting of a dataset split (``None`` when the rows hold no
    per-language measure of the setting).

    Args:
        rows: ``run_metrics`` rows (``setting``, ``query_lang``, ``doc_lang``, ``metric``,
            ``value``) of the dataset split.
        dataset, split, setting: what was evaluated.
        dataset_revision: the data's revision (default :data:`NO_REVISION`).
        evaluation_time: seconds.
        xlrun: what the key ``xlrun`` records (the run, xlrun's version).
        date: when it was evaluated (default: now, UTC).
    """
    subsets = _subsets(rows, setting)
    if not subsets:
        return None
    main = main_score_key(next(iter(subsets.values())))
    entries = []
    for (qlang, dlang), scores in sorted(subsets.items()):
        cross = setting == "cross"
        entries.append({
            "hf_subset": f"{qlang}-{dlang}" if cross else qlang,
            "languages": [mteb_language(qlang)] + ([mteb_language(dlang)] if cross else []),
            "main_score": scores.get(main) if main else None,
            **scores,
        })
    return {
        "dataset_revision": dataset_revision or NO_REVISION,
        "task_name": task_name(dataset, setting),
        "mteb_version": None,
        "scores": {split: entries},
        "evaluation_time": evaluation_time,
        "kg_co2_emissions": None,
        "date": (date or dt.datetime.now(dt.UTC)).isoformat(),
        "xlrun": {**(xlrun or {}), "dataset": dataset, "setting": setting, "main_score": main},
    }


def model_meta(name: str, revision: str | None = None,
               adapted_from: str | None = None) -> dict[str, Any]:
    """``model_meta.json``: the fields of MTEB's ``ModelMeta`` that xlrun knows (the name,
    the revision and, for a trained run, the model it was trained from); the rest unknown."""
    return {
        "name": name, "revision": revision or NO_REVISION, "release_date": None,
        "languages": None, "n_parameters": None, "memory_usage_mb": None, "max_tokens": None,
        "embed_dim": None, "license": None, "open_weights": None,
        "public_training_code": None, "public_training_data": None, "framework": [],
        "reference": None, "similarity_fn_name": None, "use_instructions": None,
        "training_datasets": None, "adapted_from": adapted_from, "loader": None,
    }


def _write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, ensure_ascii=False, allow_nan=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _merged(path: Path, new: dict[str, Any]) -> dict[str, Any]:
    """``new``, with the other splits of the same run's file at ``path`` kept (a run that
    evaluates a dataset on two splits writes one task file)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return new
    same_run = (isinstance(old, dict) and isinstance(old.get("xlrun"), dict)
                and old["xlrun"].get("run_key") == new["xlrun"].get("run_key")
                and isinstance(old.get("scores"), dict))
    if not same_run:
        return new
    times = [t for t in (old.get("evaluation_time"), new["evaluation_time"]) if t is not None]
    return {**new, "scores": {**old["scores"], **new["scores"]},
            "evaluation_time": sum(times) if times else None}


def write_results(folder: str | Path, model: Mapping[str, Any],
                  results: Iterable[dict[str, Any]]) -> list[Path]:
    """Write ``model_meta.json`` and each task result into ``folder`` in MTEB's layout.

    Args:
        folder: the results folder (what ``mteb.ResultCache`` is given).
        model: :func:`model_meta`'s dict.
        results: :func:`task_result`'s dicts.

    Returns:
        The task files written.
    """
    base = (Path(folder) / "results" / model_folder_name(model["name"])
            / model_folder_name(model["revision"] or NO_REVISION))
    _write_json(base / "model_meta.json", dict(model))
    written = []
    for result in results:
        path = base / f"{result['task_name']}.json"
        _write_json(path, _merged(path, result))
        written.append(path)
    return written
