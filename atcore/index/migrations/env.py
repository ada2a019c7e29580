"""Alembic environment for the check-in index.

Online (`atcore.index.engine.migrate`, or a developer's `alembic` command): `atcore.migrations`.
In offline mode (`engine.migration_sql`) it prints the SQL for the dialect named by the
`dialect_name` option.
"""

from __future__ import annotations

from alembic import context

from atcore.index.schema import VERSION_TABLE, metadata
from atcore.migrations import run_online


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


if context.is_offline_mode():
    run_offline()
else:
    run_online(metadata, VERSION_TABLE)
