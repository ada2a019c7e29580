"""Alembic environment for the PDS database (run programmatically by `Database.migrate`)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from pds.db.schema import metadata


def run_migrations() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic config lacks sqlalchemy.url")
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations()
