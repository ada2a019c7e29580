"""Alembic environment for the check-in index.

Run programmatically (`atcore.index.engine.migrate`), which hands over an open connection in
`config.attributes["connection"]`; the async engine's own driver does the work. Invoked without a
connection (e.g. `alembic revision --autogenerate` by a developer), it opens `sqlalchemy.url`,
which must then name a synchronous driver. In offline mode (`engine.migration_sql`) it prints the
SQL for the dialect named by the `dialect_name` option.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from atcore.index.schema import VERSION_TABLE, metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Emit the SQL instead of running it (`alembic upgrade --sql`; the DDL golden test)."""
    context.configure(
        dialect_name=context.config.get_main_option("dialect_name"),
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
    if context.is_offline_mode():
        run_offline()
        return
    connection = context.config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic config lacks both a connection and sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        run_on(conn)
    engine.dispose()


run_migrations()
