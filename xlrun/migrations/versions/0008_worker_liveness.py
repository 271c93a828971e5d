"""Who holds a running run, in a form that survives PID namespaces: runs.worker_process
(``boot_id/pid_namespace/pid/start_time`` of the claiming process; see xlrun.processes).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("worker_process", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("worker_process")
