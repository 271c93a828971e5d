"""Checks before runs are enqueued that need the data: read it, build each arm's sampler.

``xlrun submit`` (and ``xlrun evaluate``) call :func:`check_runs` after compiling a spec and
before writing anything, so that

* a truncated ``.json.xz``, a JSONL line without a ``query``, a folder given as a file, or an
  evaluation folder without queries,
* ``sampling.clusters`` naming languages the data lacks, ``n_clusters`` above the number of
  training languages, a batch larger than a language's distinct examples, and
* a clustering that cannot be exposure-matched to the random arm (:mod:`xlrun.train.exposure`)

are errors with exit code 2 instead of failed runs. Each distinct training corpus and local
evaluation dataset is read once, and each arm's sampler is built once (runs that differ only by
seed share it), exactly as its runs will build it: clusters from the same function and, for
``embedding`` similarity, the same on-disk distance cache under
``<output_dir>/<experiment>/.langsim`` (so the runs find the distances the submit computed).
The clustered arms' plans are returned, for ``xlrun submit --dry-run`` to print.

Not read here: Hugging Face hub data (``source = "hf"``, ``mldr``/``miracl`` without a local
path) and URL bases, which need the network, and local MLDR/MIRACL collections, which can be
very large.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlrun.data.train_sources import TRAIN_SOURCES, load_train_corpus
from xlrun.data.types import TrainCorpus
from xlrun.errors import SpecError, UsageError
from xlrun.evaluate.tasks import DATASETS, load_dataset
from xlrun.execute.progress import NullProgress, Progress
from xlrun.langsim.cluster import clusters_for_run
from xlrun.langsim.distances import needs_context
from xlrun.langsim.embedding import SimilarityContext
from xlrun.spec.grid import CompiledRun, canonical_json
from xlrun.spec.schema import EvalSection, RunConfig, TrainDataSection
from xlrun.train.exposure import ExposurePlan
from xlrun.train.samplers import make_sampler

Log = Callable[[str], None]


@dataclass(frozen=True)
class ArmPlan:
    """The expected training composition of one arm (its runs differ only by seed).

    Attributes:
        arm: the arm's label (``sampler/language_sampling[clustering]``).
        run_keys: the arm's runs in this submission.
        plan: the arm's :class:`~xlrun.train.exposure.ExposurePlan`.
        reference: the random arm's plan on the same data (``size`` sampling with the same
            strategy, temperature and mono_ratio): what a matched arm is matched to.
        clusters: the clusters the arm trains with (empty for unclustered arms).
    """

    arm: str
    run_keys: tuple[str, ...]
    plan: ExposurePlan
    reference: ExposurePlan
    clusters: tuple[tuple[str, ...], ...]

    def rows(self) -> list[list[Any]]:
        """Per language: random-arm and arm query/passage shares, in percent."""
        ref = self.reference.shares()
        return [[lang, f"{100 * ref[lang][0]:.1f}", f"{100 * q:.1f}", f"{100 * ref[lang][1]:.1f}",
                 f"{100 * d:.1f}"] for lang, (q, d) in self.plan.shares().items()]


def _reads_offline(section: TrainDataSection) -> bool:
    return TRAIN_SOURCES.get(section.source, "train_data.source").read_offline(section)


def _in_point(e: SpecError, run: CompiledRun, arm: str | None = None) -> SpecError:
    where = ", ".join(f"{k}={v!r}" for k, v in run.overrides if k != "train.seed")
    if not where and arm is None:
        return e
    msg = e.args[0].split(": ", 1)[1] if ": " in e.args[0] else e.args[0]
    context = ", ".join(x for x in (f"arm {arm}" if arm else "",
                                    f"grid point {where}" if where else "") if x)
    return SpecError(e.path, f"{msg} ({context})", has_value=False)


def _load_corpus(section: TrainDataSection) -> TrainCorpus:
    try:
        return load_train_corpus(section)
    except SpecError:
        raise
    except UsageError as e:
        raise UsageError(f"train_data ({section.source}): {e}") from e


def _load_eval(i: int, cfg: EvalSection) -> None:
    try:
        data = load_dataset(cfg, f"eval[{i}].dataset")
    except SpecError:
        raise
    except UsageError as e:
        raise UsageError(f"eval[{i}] ({cfg.dataset}): {e}") from e
    if not any(data.queries.values()):
        raise UsageError(f"eval[{i}] ({cfg.dataset}): {cfg.path} holds no queries"
                         + (f" in {', '.join(cfg.languages)}" if cfg.languages else ""))


def _check_cluster_spec(config: RunConfig, langs: Sequence[str]) -> None:
    """Manual clusters name languages the data has; ``n_clusters`` fits the languages."""
    s = config.sampling
    if s.language_sampling != "clustered":
        return
    if s.similarity == "manual":
        for i, c in enumerate(s.clusters):
            for lang in c:
                if lang not in langs:
                    raise SpecError(f"sampling.clusters[{i}]",
                                    f"names {lang!r}, which the training data does not have",
                                    value=lang, allowed=list(langs))
    elif s.n_clusters > len(langs):
        raise SpecError("sampling.n_clusters", f"more clusters than the {len(langs)} "
                        f"languages of the training data ({', '.join(langs)})",
                        value=s.n_clusters, allowed=f"1 to {len(langs)}")


def _without_seed(config: RunConfig) -> str:
    d = config.to_dict()
    d["train"].pop("seed", None)
    d.pop("eval", None)  # evaluation does not change what training sees
    return canonical_json(d)


def check_runs(runs: Sequence[CompiledRun], *, experiment: str = "",
               output_dir: str | Path = "xlrun-out", device: str = "cpu",
               include_unclustered: bool = False, log: Log | None = None,
               progress: Progress | None = None) -> list[ArmPlan]:
    """Read every local training corpus and evaluation dataset the runs use (each once), build
    each arm's sampler as its runs will, and return the plans of the clustered arms (of every
    trained arm with ``include_unclustered``). ``progress`` shows a bar while an embedding
    similarity encodes its texts.

    Raises:
        UsageError: a data file that cannot be used (the message names the file, the line or
            record, and the fault).
        SpecError: a spec value that does not fit the data — including clusters that cannot
            be exposure-matched; the message names the arm and its grid values.
    """
    corpora: dict[str, TrainCorpus] = {}
    evals: set[str] = set()
    arms: dict[str, list[CompiledRun]] = {}
    for run in runs:
        cfg = run.config
        if cfg.train.steps > 0 and _reads_offline(cfg.train_data):
            key = canonical_json(dataclasses.asdict(cfg.train_data))
            if key not in corpora:
                try:
                    corpora[key] = _load_corpus(cfg.train_data)
                except SpecError as e:
                    raise _in_point(e, run) from e
            arms.setdefault(_without_seed(cfg), []).append(run)
        for i, e in enumerate(cfg.eval):
            if not DATASETS.get(e.dataset, f"eval[{i}].dataset").read_offline(e):
                continue
            key = canonical_json(dataclasses.asdict(e))
            if key not in evals:
                evals.add(key)
                try:
                    _load_eval(i, e)
                except SpecError as err:
                    raise _in_point(err, run) from err
    encoders: dict[str, Any] = {}
    plans: list[ArmPlan] = []
    for members in arms.values():
        first = members[0]
        cfg = first.config
        corpus = corpora[canonical_json(dataclasses.asdict(cfg.train_data))]
        try:
            plan = _arm_plan(members, corpus, encoders, experiment, Path(output_dir), device, log,
                             progress)
        except SpecError as e:
            raise _in_point(e, first, cfg.arm) from e
        if include_unclustered or cfg.sampling.language_sampling == "clustered":
            plans.append(plan)
    return plans


def _arm_plan(members: Sequence[CompiledRun], corpus: TrainCorpus, encoders: dict[str, Any],
              experiment: str, output_dir: Path, device: str, log: Log | None,
              progress: Progress | None = None) -> ArmPlan:
    cfg = members[0].config
    _check_cluster_spec(cfg, corpus.languages)
    clusters = None
    if cfg.sampling.language_sampling == "clustered":
        clusters = _clusters(cfg, corpus, encoders, experiment, output_dir, device, log,
                             progress)
    batch = cfg.train.batch_size * max(1, cfg.train.gpus)
    sampler = make_sampler(cfg.sampling, corpus, batch, cfg.train.seed, clusters,
                           total_batches=cfg.train.steps * cfg.train.grad_accum)
    reference = sampler.plan
    if clusters is not None or cfg.sampling.language_sampling != "size":
        reference = make_sampler(
            dataclasses.replace(cfg.sampling, language_sampling="size", schedule="random"),
            corpus, batch, cfg.train.seed).plan
    return ArmPlan(cfg.arm, tuple(r.run_key for r in members), sampler.plan, reference,
                   tuple(tuple(c) for c in sampler.clusters))


class _LazyEncoder:
    """The arm's base model, loaded only when distances are not in the cache yet."""

    def __init__(self, cfg: RunConfig, output_dir: Path, device: str, log: Log | None) -> None:
        self._args = (cfg, output_dir, device, log)
        self._encoder: Any = None

    def _load(self) -> Any:
        if self._encoder is None:
            # deferred on purpose: PyTorch and the model load only when an embedding
            # distance is not cached yet (submitting a spec needs neither otherwise)
            from xlrun.execute.training import load_encoder
            from xlrun.train.encoder import resolve_device

            cfg, output_dir, device, log = self._args
            if log:
                log(f"loading {cfg.model.name} for the embedding similarity of {cfg.arm} "
                    "(the distances are cached for the runs) …")
            self._encoder = load_encoder(cfg.model, str(resolve_device(device)),
                                         output_dir / ".models")
        return self._encoder

    def full_precision(self) -> contextlib.AbstractContextManager:
        """The loaded encoder's :meth:`~xlrun.train.encoder.Encoder.full_precision` (what
        :meth:`SimilarityContext.from_corpus` asks of every encoder)."""
        return self._load().full_precision()

    def encode(self, texts: list[str], side: str, **kwargs: Any) -> Any:
        return self._load().encode(texts, side, **kwargs)  # e.g. progress=


def _clusters(cfg: RunConfig, corpus: TrainCorpus, encoders: dict[str, Any], experiment: str,
              output_dir: Path, device: str, log: Log | None,
              progress: Progress | None = None) -> list[list[str]]:
    if not needs_context(cfg.sampling.similarity):
        return clusters_for_run(cfg.sampling, corpus.languages, None)[0]
    key = json.dumps(dataclasses.asdict(cfg.model), sort_keys=True)
    if key not in encoders:
        encoders[key] = _LazyEncoder(cfg, output_dir, device, log)
    # a bar while the texts are encoded (minutes for a real model on a CPU); silent when
    # the distances are cached
    with (progress or NullProgress()).task(f"embedding similarity of {cfg.arm}: texts "
                                           "encoded", None) as bar:
        context = SimilarityContext.from_corpus(
            corpus, encoders[key], cache_dir=output_dir / experiment / ".langsim",
            model_id=cfg.model.name, progress=bar.update)
        return clusters_for_run(cfg.sampling, corpus.languages, context)[0]
