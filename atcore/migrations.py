"""The online half of an Alembic environment, shared by the schemas migrated from a running
service (the check-in index, the local PLC directory).

A service migrates programmatically and hands its open connection over in
`config.attributes["connection"]`, so its async engine's own driver does the work. Invoked
without one (`alembic revision --autogenerate` by a developer), the environment opens
`sqlalchemy.url`, which must then name a synchronous driver. SQLite gets batch mode, the only way
it can alter a table.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, MetaData, create_engine


def run_online(metadata: MetaData, version_table: str) -> None:
    """Run the pending migrations on the handed-over connection, or on `sqlalchemy.url`."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run_on(connection, metadata, version_table)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("alembic config lacks both a connection and sqlalchemy.url")
    engine = create_engine(url)
    with engine.begin() as conn:
        _run_on(conn, metadata, version_table)
    engine.dispose()


def _run_on(connection: Connection, metadata: MetaData, version_table: str) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=version_table,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
