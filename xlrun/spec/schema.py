"""The spec schema, as code.

Each TOML section is a frozen dataclass; field types drive validation in
:mod:`xlrun.spec.load` (unknown keys are errors; ``Literal`` fields list what is allowed; a
field that names a component is a string checked against its registry, see
:class:`Registered`). A :class:`RunConfig` is one fully resolved run: every default filled in,
every path and language code normalised, so that its hash (:func:`xlrun.spec.grid.run_key`)
is stable.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal


@dataclass(frozen=True)
class Registered:
    """Marks a string field whose value names a registered component (see
    :mod:`xlrun.registry`): the spec loader checks the name against the registry called
    ``registry`` in :data:`xlrun.spec.load.REGISTRIES` and has the component validate its
    section. ``also``: values the field accepts besides the registered names."""

    registry: str
    also: tuple[str, ...] = ()


SamplerName = Annotated[str, Registered("samplers", also=("none",))]
"""``sampling.strategy``: a sampler (``none``: the run does not train)."""
TrainSourceName = Annotated[str, Registered("train_sources", also=("none",))]
"""``train_data.source``: a training-data source (``none``: no training data)."""
DatasetName = Annotated[str, Registered("datasets")]
"""``[[eval]] dataset``: an evaluation dataset."""
ExecutorName = Annotated[str, Registered("executors")]
"""``executor.kind``: an executor."""
TrackerName = Annotated[str, Registered("trackers")]
"""``tracking.report_to``: an experiment tracker."""

LanguageSampling = Literal["uniform", "size", "clustered"]
Pairing = Literal["within", "across", "cluster_batch"]
Setting = Literal["mono", "cross", "multi"]


def arm_label(sampler: str | None, language_sampling: str | None,
              clustering: str | None) -> str:
    """The whole arm of a run: ``hybrid/size``, ``hybrid/clustered[script/k=3/average/within]``,
    ``monolingual/size``, ``none`` (an untrained run has no language sampling)."""
    label = sampler or "none"
    if language_sampling:
        label += f"/{language_sampling}"
    if clustering:
        label += f"[{clustering}]"
    return label


@dataclass(frozen=True)
class ExperimentSection:
    """``[experiment]``: the name that groups runs, and where run artefacts go."""

    name: str
    description: str = ""
    output_dir: str = "xlrun-out"
    main_metric: str = "map"
    """The column ``xlrun status`` shows: ``map``, ``ndcg@10``, ``mrr@10``, ``recall@100``, or
    a measure an ``[[eval]]`` table lists in ``measures`` (its ir_measures name, e.g. ``P@1``
    for Tatoeba's accuracy); stored under its canonical name."""
    max_runs: int = 0
    """The most runs this spec may compile to; 0 = the default limit
    (:data:`xlrun.spec.grid.GRID_CONFIRM_RUNS`), above which ``submit`` asks for ``--yes``."""


Pooling = Literal["mean", "cls", "max", "lasttoken", "weightedmean"]


@dataclass(frozen=True)
class ModelSection:
    """``[model]``: the encoder (hub id or local path) and how it embeds text.

    A field left out (``None``) takes what a sentence-transformers model declares (pooling,
    ``include_prompt``, prompts, lengths), else xlrun's default (``mean``, no prefix, 64/256
    tokens; see :data:`xlrun.train.encoder.DEFAULTS`); a field set here overrides the model.
    ``query_prompt_name`` / ``passage_prompt_name`` pick one of the model's named prompts.
    ``trust_remote_code = true`` lets a model that ships its own modelling code (a config
    ``auto_map``, e.g. ``Alibaba-NLP/gte-multilingual-base``) run that code; off by default,
    as in Hugging Face and sentence-transformers: only for models whose code you trust.
    """

    name: str
    pooling: Pooling | None = None
    query_prefix: str | None = None
    passage_prefix: str | None = None
    query_max_length: int | None = None
    passage_max_length: int | None = None
    include_prompt: bool | None = None
    query_prompt_name: str | None = None
    passage_prompt_name: str | None = None
    trust_remote_code: bool = False


@dataclass(frozen=True)
class TrainDataSection:
    """``[train_data]``: where training pairs come from.

    ``source``: ``lareqa`` (XQuAD-R / MLQA-R JSON in ``path``), ``jsonl`` (a file with
    ``query``, ``passage``, ``lang``, optional ``parallel_id``), ``hf`` (a Hugging Face
    dataset ``name`` with the same columns), ``mmarco`` (mMARCO's TSV files, from the hub or
    ``path``), ``quickstart`` (the generated corpus).
    """

    source: TrainSourceName = "none"
    path: str = ""
    name: str = ""
    split: str = "train"
    languages: list[str] = field(default_factory=list)
    max_per_language: int = 0
    revision: str = ""
    """Sources read from the hub (``hf``, ``mmarco``): the revision (commit hash, tag or
    branch); empty = the source's default."""
    negatives: int = 0
    """Mined hard negatives to read per example, from sources that have them (``mmarco``:
    its triples file); ``train.hard_negatives`` draws from them first."""


@dataclass(frozen=True)
class SamplingSection:
    """``[sampling]``: how batches choose their languages."""

    strategy: SamplerName = "hybrid"
    language_sampling: LanguageSampling = "size"
    temperature: float = 1.0
    mono_ratio: float = 0.5
    pairing: Pairing = "within"
    cluster_choice: Literal["size", "uniform"] = "size"
    clusters: list[list[str]] = field(default_factory=list)
    similarity: str = "manual"
    n_clusters: int = 0
    distance_threshold: float = 0.0
    linkage: Literal["average", "complete", "ward"] = "average"
    min_cluster_size: int = 0
    """Similarity clustering: a cluster with fewer languages joins its nearest cluster (average
    distance) until none is smaller; 0 or 1 = no minimum."""
    exposure: Literal["matched", "free"] = "matched"
    exposure_tolerance: float = 0.005
    """``matched``: the largest deviation (a share: 0.005 = 0.5 percentage points) of a
    language's query or passage share from the random arm's that a clustering may need."""
    """Clustered sampling: ``matched`` keeps each language's query and passage shares equal to
    the random arm's (clustering only decides which languages meet); ``free`` is xlrun 0.1's
    cluster-first choice, which also changes how often each language is trained."""
    schedule: Literal["random", "exact"] = "random"
    """``random``: each batch draws its kind and languages independently; ``exact``: the run's
    batches are allocated in exact proportions (``round(mono_ratio × batches)`` monolingual
    batches, languages and pairs by their probabilities), order shuffled by the seed."""


@dataclass(frozen=True)
class TrainSection:
    """``[train]``: optimisation. ``steps = 0`` evaluates the base model (a reference arm)."""

    steps: int = 100
    batch_size: int = 32
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    temperature: float = 0.05
    symmetric: bool = False
    hard_negatives: int = 0
    grad_accum: int = 1
    grad_cache_chunk: int = 0
    max_grad_norm: float = 1.0
    checkpoint_every: int = 0
    log_every: int = 10
    save_model: bool = False
    gpus: int = 1
    seed: int = 0


@dataclass(frozen=True)
class EvalSection:
    """``[[eval]]``: one zero-shot evaluation dataset."""

    dataset: DatasetName
    path: str = ""
    split: str = "test"
    languages: list[str] = field(default_factory=list)
    settings: list[Setting] = field(default_factory=lambda: ["mono", "cross", "multi"])
    top_k: int = 100
    batch_size: int = 128
    max_length: int = 0
    chunk_long_documents: bool = False
    dedupe: Literal["text", "position"] = "text"
    max_queries_per_language: int = 0
    revision: str = ""
    """Hub datasets read online (``mldr``, ``miracl`` without ``path``): the revision
    (commit hash, tag or branch) to load; empty = the dataset's default in xlrun."""
    measures: list[str] = field(default_factory=list)
    """Measures by their ir_measures names (``nDCG@10``, ``R@1000``, ``P@1``, ...), stored
    per query in ``query_measures`` (see :mod:`xlrun.evaluate.measures`); canonical names
    after loading. The ``query_results`` columns (AP, nDCG@10, MRR@10, Recall@100) are
    always stored."""
    pairs: list[list[str]] = field(default_factory=list)
    """The ``cross`` setting's ordered pairs ``[query language, document language]`` to
    evaluate (``"*"``: any language, e.g. ``[["*", "en"], ["en", "*"]]``); empty = every
    pair the dataset has."""


@dataclass(frozen=True)
class ExecutorSection:
    """``[executor]``: where runs execute (overridable on the command line)."""

    kind: ExecutorName = "local"
    partition: str = ""
    gpus_per_node: int = 1
    time_limit_min: int = 240
    heartbeat_s: int = 30
    stale_after_s: int = 300


@dataclass(frozen=True)
class TrackingSection:
    """``[tracking]``: where runs are mirrored besides the database (no part of a run key).

    ``report_to`` names trackers (the transformers convention: ``tensorboard``, ``mlflow``,
    ``wandb``, and ``mteb`` for MTEB result files); each may have a table
    ``[tracking.<name>]`` of its options, held here in ``options`` as the tracker's own
    dataclass. ``close_timeout_s``: how long a run waits, at its end, for its trackers.
    """

    report_to: list[TrackerName] = field(default_factory=list)
    close_timeout_s: float = 60.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunConfig:
    """One fully resolved run: the unit of work, storage and hashing."""

    model: ModelSection
    train_data: TrainDataSection
    sampling: SamplingSection
    train: TrainSection
    eval: list[EvalSection]

    @property
    def sampler(self) -> str:
        """The sampler name as stored in ``runs.sampler`` (``none`` without training)."""
        return "none" if self.train.steps == 0 else self.sampling.strategy

    @property
    def language_sampling(self) -> str | None:
        """``runs.language_sampling``; ``None`` for runs that do not train."""
        return None if self.sampler == "none" else self.sampling.language_sampling

    @property
    def clustering(self) -> str | None:
        """``runs.clustering``: a short label of the clustering a clustered run used."""
        if self.sampler == "none" or self.sampling.language_sampling != "clustered":
            return None
        s = self.sampling
        if s.similarity == "manual":
            how = "manual"
        elif s.n_clusters:
            how = f"{s.similarity}/k={s.n_clusters}/{s.linkage}"
        else:
            how = f"{s.similarity}/t={s.distance_threshold:g}/{s.linkage}"
        if s.similarity != "manual" and s.min_cluster_size > 1:
            how += f"/min={s.min_cluster_size}"
        label = f"{how}/{s.pairing}"
        return label + "/free" if s.exposure == "free" else label

    @property
    def arm(self) -> str:
        """The arm label reports use (:func:`arm_label`)."""
        return arm_label(self.sampler, self.language_sampling, self.clustering)

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-ready dict (the form stored in ``runs.config_json``)."""
        return asdict(self)


@dataclass(frozen=True)
class CompiledRun:
    """One run of an experiment: its key, its config and the grid values that made it."""

    run_key: str
    config: RunConfig
    overrides: tuple[tuple[str, Any], ...]

    @property
    def seed(self) -> int:
        """The run's seed (``train.seed``)."""
        return self.config.train.seed


@dataclass(frozen=True)
class GridSection:
    """``[grid]``: axes (dotted key → list of values), zipped axes and seeds."""

    axes: dict[str, list[Any]]
    zip: list[list[str]]
    seeds: list[int]


@dataclass(frozen=True)
class Spec:
    """A whole parsed spec: the base run, the grid and the executor."""

    experiment: ExperimentSection
    base: RunConfig
    grid: GridSection
    executor: ExecutorSection
    source_toml: str
    raw: dict[str, Any]
    base_dir: str | None = None  # relative paths (also in [grid] values) resolve against it
    tracking: TrackingSection = field(default_factory=TrackingSection)
    env: dict[str, str | None] = field(default_factory=dict)
    """What ``${VAR}`` expanded: name → value (``None``: the default was used)."""
