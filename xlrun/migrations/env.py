"""Alembic environment for xlrun.

Run through ``xlrun db upgrade`` (or automatically on first use). Plain ``alembic`` works
too: ``alembic -c xlrun/migrations/alembic.ini upgrade head`` with ``XLRUN_DB`` set.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from xlrun.db.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ.get("XLRUN_DB", "sqlite:///xlrun.db")


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against a live connection (the one xlrun passes in, or a new one)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
