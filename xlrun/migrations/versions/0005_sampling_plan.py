"""The sampler's plan per run: sampling_plan (language cells, probabilities, id pools).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sampling_plan",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("batch_kind", sa.String(16), primary_key=True),
        sa.Column("query_lang", sa.String(8), primary_key=True),
        sa.Column("doc_lang", sa.String(8), primary_key=True),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("pool", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("sampling_plan")
