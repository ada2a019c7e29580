"""Opening the PDS database and running its transactions.

SQLite allows one writer at a time. Rather than letting concurrent writers collide on the file lock
(and spin on SQLITE_BUSY), all writes go through a write engine with a single pooled connection
whose transactions start with `BEGIN IMMEDIATE`; reads use a separate pool and see the last
committed state thanks to WAL. Per-repo ordering is the writer's job (a lock per DID), not the
database's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself (pysqlite's implicit transactions are unreliable).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL" if not immediate else "PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The PDS's SQLite database: one serialized writer, a pool of readers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        url = _sqlite_url(path)
        self.write_engine = create_async_engine(url, pool_size=1, max_overflow=0)
        self.read_engine = create_async_engine(url, pool_size=8, max_overflow=8)
        _configure_sqlite(self.write_engine, immediate=True)
        _configure_sqlite(self.read_engine, immediate=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed when the block exits normally, rolled back otherwise."""
        async with self.write_engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only snapshot (one deferred transaction)."""
        async with self.read_engine.connect() as conn, conn.begin():
            yield conn

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(upgrade_to_head, f"sqlite:///{self.path}")

    async def close(self) -> None:
        await self.write_engine.dispose()
        await self.read_engine.dispose()


def alembic_config(sync_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url)
    return config


def upgrade_to_head(sync_url: str) -> None:
    command.upgrade(alembic_config(sync_url), "head")
