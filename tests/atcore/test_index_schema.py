"""The check-in index schema: migrations equal the metadata on every backend; CockroachDB DDL.

SQLite always runs; PostgreSQL runs on a throw-away PostgreSQL 15 cluster (tests/pg.py) and is
skipped, with the reason, only when its binaries are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.schema import CreateIndex, CreateTable

from atcore.index import schema
from atcore.index.engine import (
    WRITER_CACHE_KIB,
    Backend,
    IndexDatabaseError,
    create_index_engine,
    migrate,
    migration_sql,
    parse_database_url,
)
from tests.cockroach import fresh_cockroach_database
from tests.pg import pg_cluster, pg_url  # noqa: F401 - fixtures

GOLDEN = Path(__file__).with_name("golden") / "index_cockroachdb.sql"


def metadata_ddl(dialect: Any) -> str:
    statements = []
    for table in schema.metadata.sorted_tables:
        statements.append(str(CreateTable(table).compile(dialect=dialect)).strip())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            statements.append(str(CreateIndex(index).compile(dialect=dialect)).strip())
    return "\n".join(statements)


def test_cockroachdb_migration_ddl_matches_golden() -> None:
    assert migration_sql("cockroachdb") == GOLDEN.read_text()


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql", "cockroachdb"])
def test_hash_sharding_only_on_cockroachdb(dialect_name: str) -> None:
    migration = migration_sql(dialect_name)
    dialect = make_url(f"{dialect_name}://").get_dialect()()
    from_metadata = metadata_ddl(dialect)
    expected = 1 if dialect_name == "cockroachdb" else 0
    assert migration.count("USING HASH") == expected
    assert from_metadata.count("USING HASH") == expected
    assert "ix_checkin_sort_at_author_did_collection_rkey ON checkin" in migration


@pytest.mark.parametrize("dialect_name", ["sqlite", "postgresql", "cockroachdb"])
def test_no_sequences_or_autoincrement(dialect_name: str) -> None:
    ddl = migration_sql(dialect_name).upper()
    for word in ("SERIAL", "AUTOINCREMENT", "SEQUENCE", "NEXTVAL", "IDENTITY", "UNIQUE_ROWID"):
        assert word not in ddl


def test_metadata_tables_have_natural_primary_keys() -> None:
    keys = {
        t.name: [c.name for c in t.primary_key.columns] for t in schema.metadata.tables.values()
    }
    assert keys == {
        "checkin": ["author_did", "collection", "rkey"],
        "companion_post": ["author_did", "rkey"],
        "repo_state": ["did"],
        "source_cursor": ["source"],
    }


def _schema_diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"version_table": schema.VERSION_TABLE})
    return list(compare_metadata(context, schema.metadata))


def _index_names(conn: Connection) -> set[str]:
    inspector = inspect(conn)
    return {
        str(index["name"])
        for table in schema.metadata.tables
        for index in inspector.get_indexes(table)
    }


async def _check_migrated(engine: AsyncEngine) -> None:
    await migrate(engine)
    await migrate(engine)  # idempotent: already at head
    async with engine.connect() as conn:
        assert await conn.run_sync(_schema_diff) == []
        expected = {str(i.name) for t in schema.metadata.tables.values() for i in t.indexes}
        assert await conn.run_sync(_index_names) == expected


async def test_sqlite_migration_equals_metadata(tmp_path: Path) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path}/index.sqlite")
    try:
        await _check_migrated(engine)
        async with engine.connect() as conn:
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            cache = (await conn.execute(text("PRAGMA cache_size"))).scalar_one()
        assert mode == "wal"
        assert cache == -WRITER_CACHE_KIB  # the writer's page cache, in KiB
    finally:
        await engine.dispose()


async def test_postgresql_migration_equals_metadata(pg_url: str) -> None:  # noqa: F811
    engine = create_index_engine(pg_url)
    try:
        await _check_migrated(engine)
        async with engine.connect() as conn:
            sequences = (
                await conn.execute(text("SELECT count(*) FROM information_schema.sequences"))
            ).scalar_one()
            isolation = (await conn.execute(text("SHOW transaction_isolation"))).scalar_one()
        assert sequences == 0
        assert isolation == "serializable"
    finally:
        await engine.dispose()


async def test_downgrade_then_upgrade(tmp_path: Path) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path}/index.sqlite")
    try:
        await migrate(engine)
        async with engine.begin() as conn:
            from atcore.index.engine import downgrade_on

            await conn.run_sync(downgrade_on, "base")
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert names == {schema.VERSION_TABLE}
        await migrate(engine)
        async with engine.connect() as conn:
            assert await conn.run_sync(_schema_diff) == []
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("url", "backend", "driver"),
    [
        ("sqlite:///x.sqlite", Backend.SQLITE, "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:///x.sqlite", Backend.SQLITE, "sqlite+aiosqlite"),
        ("postgresql://u@h/db", Backend.POSTGRESQL, "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@h/db", Backend.POSTGRESQL, "postgresql+asyncpg"),
        ("cockroachdb://root@h:26257/db", Backend.COCKROACHDB, "cockroachdb+asyncpg"),
    ],
)
def test_database_urls_get_async_drivers(url: str, backend: Backend, driver: str) -> None:
    parsed_backend, parsed = parse_database_url(url)
    assert parsed_backend is backend
    assert parsed.drivername == driver


@pytest.mark.parametrize(
    "url", ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "sqlite+pysqlite:///x"]
)
def test_unsupported_database_urls_are_refused(url: str) -> None:
    with pytest.raises(IndexDatabaseError):
        parse_database_url(url)


@pytest.mark.cockroach
async def test_cockroachdb_migration_creates_the_hash_sharded_index() -> None:
    engine = create_index_engine(await fresh_cockroach_database())
    try:
        await _check_migrated(engine)
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT count(*) FROM [SHOW INDEXES FROM checkin] "
                    "WHERE index_name = 'ix_checkin_sort_at_author_did_collection_rkey' "
                    "AND column_name LIKE 'crdb_internal_%shard%'"
                )
            )
            assert rows.scalar_one() >= 1
    finally:
        await engine.dispose()
