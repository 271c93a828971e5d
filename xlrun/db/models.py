"""ORM models. Table and column names are a public contract (see ``docs/sql.md``):
change them only with an Alembic migration and a changelog note.

Every table that receives results has a primary key made of its natural key, so a result
can never be stored twice; child rows cascade with their run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

RUN_STATUSES = ("queued", "running", "done", "failed")


def utcnow() -> datetime:
    """Timezone-aware now (stored as UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of all xlrun tables."""


class Experiment(Base):
    """A named experiment: the spec it was last submitted with."""

    __tablename__ = "experiments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    spec_toml: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 nullable=False)

    runs: Mapped[list[Run]] = relationship(back_populates="experiment")


class Run(Base):
    """One run of an experiment: a resolved config, its status and its arm columns."""

    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("experiment_id", "run_key", name="uq_runs_experiment_run_key"),
        CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                        name="ck_runs_status"),
        Index("ix_runs_status", "status"),
        Index("ix_runs_experiment_id", "experiment_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False)
    run_key: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="queued")
    config_json: Mapped[str] = mapped_column(Text, nullable=False)
    model: Mapped[str] = mapped_column(String(500), nullable=False)
    sampler: Mapped[str] = mapped_column(String(64), nullable=False)
    language_sampling: Mapped[str | None] = mapped_column(String(64))
    clustering: Mapped[str | None] = mapped_column(String(200))
    seed: Mapped[int] = mapped_column(Integer, nullable=False)
    device: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # work queue (see xlrun.db.queue)
    worker: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    # seconds per stage of the last execution (load, data, clustering, train, encode, search,
    # metrics, write, other, total) as a JSON object; see xlrun.execute.pipeline.STAGES
    timings_json: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow,
                                                 nullable=False)

    experiment: Mapped[Experiment] = relationship(back_populates="runs")


class TrainLog(Base):
    """One logged training step."""

    __tablename__ = "train_log"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    loss: Mapped[float] = mapped_column(Float, nullable=False)
    lr: Mapped[float] = mapped_column(Float, nullable=False)
    examples_per_s: Mapped[float | None] = mapped_column(Float)


class QueryResult(Base):
    """One query's metrics in one setting (mono X→X, cross X→Y, multi X→all)."""

    __tablename__ = "query_results"
    __table_args__ = (
        Index("ix_query_results_pair", "dataset", "setting", "query_lang", "doc_lang"),
    )

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    split: Mapped[str] = mapped_column(String(32), primary_key=True)
    setting: Mapped[str] = mapped_column(String(8), primary_key=True)
    query_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    doc_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    query_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    n_relevant: Mapped[int] = mapped_column(Integer, nullable=False)
    ap: Mapped[float] = mapped_column(Float, nullable=False)
    ndcg_at_10: Mapped[float] = mapped_column(Float, nullable=False)
    mrr_at_10: Mapped[float] = mapped_column(Float, nullable=False)
    recall_at_100: Mapped[float] = mapped_column(Float, nullable=False)
    first_relevant_rank: Mapped[int] = mapped_column(Integer, nullable=False)
    # language bias in the multilingual pool (NULL in other settings)
    rank_distance: Mapped[float | None] = mapped_column(Float)
    same_lang_at_10: Mapped[float | None] = mapped_column(Float)
    same_lang_expected: Mapped[float | None] = mapped_column(Float)


class QueryMeasure(Base):
    """One query's value of one measure named by ir_measures (``nDCG@100``, ``R@1000``, …)
    in one setting: the measures an ``[[eval]]`` table lists in ``measures``, keyed like
    ``query_results`` plus the measure's canonical name. SQLite stores it WITHOUT ROWID (the
    key is the table: about half the size)."""

    __tablename__ = "query_measures"
    __table_args__ = ({"sqlite_with_rowid": False},)

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    split: Mapped[str] = mapped_column(String(32), primary_key=True)
    measure: Mapped[str] = mapped_column(String(32), primary_key=True)
    setting: Mapped[str] = mapped_column(String(8), primary_key=True)
    query_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    doc_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    query_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[float] = mapped_column(Float, nullable=False)


class Retrieved(Base):
    """The top-k documents of one query in one setting."""

    __tablename__ = "retrieved"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    split: Mapped[str] = mapped_column(String(32), primary_key=True)
    setting: Mapped[str] = mapped_column(String(8), primary_key=True)
    query_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    doc_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    query_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(256), nullable=False)
    score: Mapped[float] = mapped_column(Float, nullable=False)
    is_relevant: Mapped[bool] = mapped_column(Boolean, nullable=False)


class RunMetric(Base):
    """An aggregate metric (mean over queries) per run, dataset, setting and language pair."""

    __tablename__ = "run_metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), primary_key=True)
    split: Mapped[str] = mapped_column(String(32), primary_key=True)
    setting: Mapped[str] = mapped_column(String(8), primary_key=True)
    query_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    doc_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float, nullable=False)


class LanguageCluster(Base):
    """The cluster a language was in for a run's clustered sampling."""

    __tablename__ = "language_clusters"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    cluster: Mapped[int] = mapped_column(Integer, nullable=False)


class LanguageDistance(Base):
    """A pairwise language distance a run used (or could regress on)."""

    __tablename__ = "language_distances"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    source: Mapped[str] = mapped_column(String(200), primary_key=True)
    lang_a: Mapped[str] = mapped_column(String(8), primary_key=True)
    lang_b: Mapped[str] = mapped_column(String(8), primary_key=True)
    distance: Mapped[float] = mapped_column(Float, nullable=False)


class BatchLanguages(Base):
    """What the sampler did: the language pairs of each training batch."""

    __tablename__ = "batch_languages"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_kind: Mapped[str] = mapped_column(String(16), nullable=False)
    query_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    doc_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    pairs: Mapped[int] = mapped_column(Integer, nullable=False)


class SamplingPlan(Base):
    """What the sampler meant to do: per batch kind and language cell, its probability within
    the kind (monolingual languages sum to 1, cross-lingual pairs sum to 1) and how many
    parallel ids its queue can put in one batch (``pool``). Realised counts are in
    ``batch_languages``; ``pairs / pool`` there is how often a cell's ids were seen (epochs)."""

    __tablename__ = "sampling_plan"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"),
                                        primary_key=True)
    batch_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    query_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    doc_lang: Mapped[str] = mapped_column(String(8), primary_key=True)
    probability: Mapped[float] = mapped_column(Float, nullable=False)
    pool: Mapped[int] = mapped_column(Integer, nullable=False)


VIEWS: dict[str, str] = {
    "pair_metrics": """
        SELECT run_id, dataset, split, setting, query_lang, doc_lang,
               AVG(ap) AS map, AVG(ndcg_at_10) AS ndcg_at_10, AVG(mrr_at_10) AS mrr_at_10,
               AVG(recall_at_100) AS recall_at_100, COUNT(*) AS n_queries
        FROM query_results
        GROUP BY run_id, dataset, split, setting, query_lang, doc_lang
    """,
    "arm_pair_metrics": """
        SELECT r.experiment_id, r.model, r.sampler, r.language_sampling, r.clustering,
               q.dataset, q.split, q.setting, q.query_lang, q.doc_lang,
               AVG(q.ap) AS map, AVG(q.ndcg_at_10) AS ndcg_at_10,
               AVG(q.mrr_at_10) AS mrr_at_10, AVG(q.recall_at_100) AS recall_at_100,
               COUNT(*) AS n_queries, COUNT(DISTINCT q.run_id) AS n_runs
        FROM query_results q JOIN runs r ON r.id = q.run_id
        WHERE r.status = 'done'
        GROUP BY r.experiment_id, r.model, r.sampler, r.language_sampling, r.clustering,
                 q.dataset, q.split, q.setting, q.query_lang, q.doc_lang
    """,
}
"""SQL views (created by migrations on every backend; the text here is what tests compare)."""
