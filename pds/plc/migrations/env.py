"""Alembic environment for the local PLC directory's database.

Run programmatically (`PlcStore.migrate`), which hands over an open connection in
`config.attributes["connection"]`, so the async engine's own driver does the work. Invoked by a
developer without one (`alembic revision --autogenerate`), it opens `sqlalchemy.url`, which must
then name a synchronous driver.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from pds.plc.store import VERSION_TABLE, metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations() -> None:
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
