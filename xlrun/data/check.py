"""Read and check, at submit time, the data a spec's runs will use.

``xlrun submit`` calls :func:`check_run_data` after compiling a spec and before writing
anything, so that a truncated ``.json.xz``, a JSONL line without a ``query``, a folder given
as a file, ``sampling.clusters`` naming languages the data lacks, or ``n_clusters`` above
the number of training languages are errors with exit code 2 instead of failed runs. Each
distinct training corpus and local evaluation dataset is read once.

Not read here: Hugging Face hub data (``source = "hf"``, ``mldr``/``miracl`` without a
local path) and URL bases, which need the network, and the local MLDR/MIRACL collections,
which can be very large.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from xlrun.data.types import TrainCorpus
from xlrun.errors import SpecError, UsageError
from xlrun.spec.grid import CompiledRun, canonical_json
from xlrun.spec.schema import EvalSection, RunConfig, SamplingSection, TrainDataSection

READ_EVAL_DATASETS: tuple[str, ...] = ("xquad-r", "mlqa-r", "local")
"""Evaluation datasets read at submit time (when they have a local path)."""


def _is_remote(path: str) -> bool:
    return "://" in path


def _reads_offline(section: TrainDataSection) -> bool:
    if section.source in ("lareqa", "jsonl"):
        return bool(section.path) and not _is_remote(section.path)
    return section.source == "quickstart"


def _where(run: CompiledRun) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in run.overrides)


def _in_point(e: SpecError, run: CompiledRun) -> SpecError:
    if not run.overrides:
        return e
    msg = e.args[0].split(": ", 1)[1] if ": " in e.args[0] else e.args[0]
    return SpecError(e.path, f"{msg} (in the grid point {_where(run)})", has_value=False)


def check_sampling(config: RunConfig, corpus: TrainCorpus) -> None:
    """The sampling section fits the training corpus: clusters name languages it has,
    ``n_clusters`` is at most its number of languages, and the sampler can be built (batch
    size within every language, cross-lingual partners, pairing).

    Raises:
        SpecError: naming the key and the languages the data has.
    """
    from xlrun.langsim.cluster import manual_clusters
    from xlrun.train.samplers import make_sampler

    s: SamplingSection = config.sampling
    langs = corpus.languages
    clusters: list[list[str]] | None = None
    check = s
    if s.language_sampling == "clustered":
        if s.similarity == "manual":
            for i, c in enumerate(s.clusters):
                for lang in c:
                    if lang not in langs:
                        raise SpecError(f"sampling.clusters[{i}]",
                                        f"names {lang!r}, which the training data does not have",
                                        value=lang, allowed=langs)
            clusters = manual_clusters(s.clusters, langs)
        else:
            if s.n_clusters > len(langs):
                raise SpecError("sampling.n_clusters", f"more clusters than the {len(langs)} "
                                f"languages of the training data ({', '.join(langs)})",
                                value=s.n_clusters, allowed=f"1 to {len(langs)}")
            # the clusters come from language similarity at run time: check the rest
            check = dataclasses.replace(s, language_sampling="size")
    make_sampler(check, corpus, config.train.batch_size * max(1, config.train.gpus),
                 config.train.seed, clusters)


def _load_corpus(section: TrainDataSection) -> TrainCorpus:
    from xlrun.data.sources import load_train_corpus

    try:
        return load_train_corpus(section)
    except SpecError:
        raise
    except UsageError as e:
        raise UsageError(f"train_data ({section.source}): {e}") from e


def _load_eval(i: int, cfg: EvalSection) -> None:
    from xlrun.evaluate.tasks import load_dataset

    try:
        data = load_dataset(cfg)
    except SpecError:
        raise
    except UsageError as e:
        raise UsageError(f"eval[{i}] ({cfg.dataset}): {e}") from e
    if not any(data.queries.values()):
        raise UsageError(f"eval[{i}] ({cfg.dataset}): {cfg.path} holds no queries"
                         + (f" in {', '.join(cfg.languages)}" if cfg.languages else ""))


def check_run_data(runs: Sequence[CompiledRun]) -> None:
    """Read every local training corpus and evaluation dataset the runs use (each once) and
    check each run's sampling against its corpus.

    Raises:
        UsageError: a data file that cannot be used (the message names the file, the line or
            record, and the fault).
        SpecError: a spec value that does not fit the data.
    """
    corpora: dict[str, TrainCorpus] = {}
    evals: set[str] = set()
    for run in runs:
        cfg = run.config
        if cfg.train.steps > 0 and _reads_offline(cfg.train_data):
            key = canonical_json(dataclasses.asdict(cfg.train_data))
            if key not in corpora:
                try:
                    corpora[key] = _load_corpus(cfg.train_data)
                except SpecError as e:
                    raise _in_point(e, run) from e
            try:
                check_sampling(cfg, corpora[key])
            except SpecError as e:
                raise _in_point(e, run) from e
        for i, e in enumerate(cfg.eval):
            if e.dataset not in READ_EVAL_DATASETS or not e.path or _is_remote(e.path):
                continue
            key = canonical_json(dataclasses.asdict(e))
            if key in evals:
                continue
            evals.add(key)
            try:
                _load_eval(i, e)
            except SpecError as err:
                raise _in_point(err, run) from err
