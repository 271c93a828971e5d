"""Measures by ir_measures names, per query: query_measures.

Revision ID: 0007
Revises: 0006
Create Date: 2027-01-10
"""
import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "query_measures",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("dataset", sa.String(64), primary_key=True),
        sa.Column("split", sa.String(32), primary_key=True),
        sa.Column("measure", sa.String(32), primary_key=True),
        sa.Column("setting", sa.String(8), primary_key=True),
        sa.Column("query_lang", sa.String(8), primary_key=True),
        sa.Column("doc_lang", sa.String(8), primary_key=True),
        sa.Column("query_id", sa.String(128), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("query_measures")
