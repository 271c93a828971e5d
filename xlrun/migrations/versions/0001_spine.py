"""The spine: experiments, runs, train_log, query_results, retrieved, run_metrics,
language_clusters.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _run_fk() -> sa.Column:
    return sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                     primary_key=True)


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("spec_toml", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("experiment_id", sa.Integer,
                  sa.ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
        sa.Column("run_key", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("config_json", sa.Text, nullable=False),
        sa.Column("model", sa.String(500), nullable=False),
        sa.Column("sampler", sa.String(64), nullable=False),
        sa.Column("language_sampling", sa.String(64)),
        sa.Column("clustering", sa.String(200)),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("device", sa.String(64)),
        sa.Column("host", sa.String(200)),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
        sa.Column("error", sa.Text),
        sa.Column("worker", sa.String(200)),
        sa.Column("heartbeat_at", TS),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("experiment_id", "run_key", name="uq_runs_experiment_run_key"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name="ck_runs_status"),
    )
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_index("ix_runs_experiment_id", "runs", ["experiment_id"])
    op.create_table(
        "train_log",
        _run_fk(),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("loss", sa.Float, nullable=False),
        sa.Column("lr", sa.Float, nullable=False),
        sa.Column("examples_per_s", sa.Float),
    )
    key = [sa.Column("dataset", sa.String(64), primary_key=True),
           sa.Column("split", sa.String(32), primary_key=True),
           sa.Column("setting", sa.String(8), primary_key=True),
           sa.Column("query_lang", sa.String(8), primary_key=True),
           sa.Column("doc_lang", sa.String(8), primary_key=True)]
    op.create_table(
        "query_results",
        _run_fk(),
        *[c.copy() for c in key],
        sa.Column("query_id", sa.String(128), primary_key=True),
        sa.Column("n_relevant", sa.Integer, nullable=False),
        sa.Column("ap", sa.Float, nullable=False),
        sa.Column("ndcg_at_10", sa.Float, nullable=False),
        sa.Column("mrr_at_10", sa.Float, nullable=False),
        sa.Column("recall_at_100", sa.Float, nullable=False),
        sa.Column("first_relevant_rank", sa.Integer, nullable=False),
    )
    op.create_index("ix_query_results_pair", "query_results",
                    ["dataset", "setting", "query_lang", "doc_lang"])
    op.create_table(
        "retrieved",
        _run_fk(),
        *[c.copy() for c in key],
        sa.Column("query_id", sa.String(128), primary_key=True),
        sa.Column("rank", sa.Integer, primary_key=True),
        sa.Column("doc_id", sa.String(256), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("is_relevant", sa.Boolean, nullable=False),
    )
    op.create_table(
        "run_metrics",
        _run_fk(),
        *[c.copy() for c in key],
        sa.Column("metric", sa.String(32), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_table(
        "language_clusters",
        _run_fk(),
        sa.Column("lang", sa.String(8), primary_key=True),
        sa.Column("cluster", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    for table in ("language_clusters", "run_metrics", "retrieved", "query_results",
                  "train_log", "runs", "experiments"):
        op.drop_table(table)
