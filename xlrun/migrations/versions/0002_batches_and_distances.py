"""Training batch composition and language distances: batch_languages, language_distances.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batch_languages",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("step", sa.Integer, primary_key=True),
        sa.Column("batch_kind", sa.String(16), nullable=False),
        sa.Column("query_lang", sa.String(8), primary_key=True),
        sa.Column("doc_lang", sa.String(8), primary_key=True),
        sa.Column("pairs", sa.Integer, nullable=False),
    )
    op.create_table(
        "language_distances",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("source", sa.String(200), primary_key=True),
        sa.Column("lang_a", sa.String(8), primary_key=True),
        sa.Column("lang_b", sa.String(8), primary_key=True),
        sa.Column("distance", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("language_distances")
    op.drop_table("batch_languages")
