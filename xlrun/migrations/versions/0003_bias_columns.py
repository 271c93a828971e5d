"""Language-bias columns on query_results (multilingual pool only).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

COLUMNS = ("rank_distance", "same_lang_at_10", "same_lang_expected")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("query_results", sa.Column(name, sa.Float, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("query_results") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
