"""Opening the check-in index on SQLite, PostgreSQL or CockroachDB (async SQLAlchemy engines).

`DATABASE_URL` forms accepted (the async driver is filled in when omitted):

- `sqlite:///./data/index.sqlite` or `sqlite+aiosqlite:///...` - the default. WAL mode; the writer
  engine has ONE pooled connection whose transactions start with `BEGIN IMMEDIATE`, so the consumer
  never spins on SQLITE_BUSY against itself; readers see the last commit thanks to WAL.
- `postgresql://...` / `postgresql+asyncpg://...` - asyncpg, every transaction SERIALIZABLE.
- `cockroachdb://...` / `cockroachdb+asyncpg://...` - the `sqlalchemy-cockroachdb` dialect over
  asyncpg (SERIALIZABLE is CockroachDB's default).

asyncpg is the one PostgreSQL driver: it is the fastest, and both dialects support it.

`read_only=True` gives the feed generator an engine that cannot write: SQLite connections run
`PRAGMA query_only`, PostgreSQL/CockroachDB sessions start with `default_transaction_read_only`.

Migrations are Alembic (`atcore/index/migrations/`, version table `index_alembic_version`) and run
over the async engine itself (`await migrate(engine)`), so no sync driver is needed;
`migration_sql(dialect)` shows the DDL they would run (CockroachDB's includes `USING HASH`).

Errors: `IndexDatabaseError` (a `ValueError`) for a URL naming an unsupported database.
"""

from __future__ import annotations

import io
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from atcore.index.schema import VERSION_TABLE

MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")
DEFAULT_URL: Final = "sqlite+aiosqlite:///./data/index.sqlite"
DEFAULT_SQLITE_BUSY_TIMEOUT_MS: Final = 5000


class IndexDatabaseError(ValueError):
    """A database URL the index cannot use."""


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    COCKROACHDB = "cockroachdb"


_ASYNC_DRIVERS: Final = {
    Backend.SQLITE: "aiosqlite",
    Backend.POSTGRESQL: "asyncpg",
    Backend.COCKROACHDB: "asyncpg",
}


def parse_database_url(url: str | URL) -> tuple[Backend, URL]:
    """The backend and the URL with its async driver (`sqlite://` -> `sqlite+aiosqlite://`)."""
    parsed = make_url(url)
    try:
        backend = Backend(parsed.get_backend_name())
    except ValueError:
        raise IndexDatabaseError(f"unsupported database {parsed.get_backend_name()!r}") from None
    driver = _ASYNC_DRIVERS[backend]
    if "+" in parsed.drivername and parsed.get_driver_name() != driver:
        raise IndexDatabaseError(f"{backend} needs the {driver} driver, not {parsed.drivername}")
    return backend, parsed.set(drivername=f"{backend.value}+{driver}")


def backend_of(engine: AsyncEngine) -> Backend:
    return Backend(engine.dialect.name)


def create_index_engine(
    url: str | URL,
    *,
    read_only: bool = False,
    pool_size: int = 8,
    sqlite_busy_timeout_ms: int = DEFAULT_SQLITE_BUSY_TIMEOUT_MS,
) -> AsyncEngine:
    """An async engine on the index; writers get one serialized connection on SQLite."""
    backend, async_url = parse_database_url(url)
    if backend is Backend.SQLITE:
        return _sqlite_engine(async_url, read_only, pool_size, sqlite_busy_timeout_ms)
    connect_args: dict[str, Any] = {}
    if read_only:
        connect_args["server_settings"] = {"default_transaction_read_only": "on"}
    return create_async_engine(
        async_url,
        isolation_level="SERIALIZABLE",
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,  # a restarted server leaves dead pooled connections behind
        connect_args=connect_args,
    )


WRITER_CACHE_KIB: Final = 64 * 1024  # the SQLite writer's page cache


def _sqlite_engine(url: URL, read_only: bool, pool_size: int, busy_ms: int) -> AsyncEngine:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    size = pool_size if read_only else 1
    engine = create_async_engine(url, pool_size=size, max_overflow=0)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # SQLAlchemy issues BEGIN itself (the driver's implicit transactions are unreliable).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        # First, so that the journal-mode switch below waits for other connections' locks.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")  # WAL is a property of the file: writers set it
        else:
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (only an OS crash can lose the last
            # commits), and the cursor row is in the same transaction, so nothing is skipped.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # The check-in table's six indexes outgrow the default 2 MiB page cache at once;
            # 64 MiB for the one writer connection cut the write path's CPU by about a tenth
            # (scripts/bench/consumer.py --sections writes).
            cursor.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def alembic_config(output: io.StringIO | None = None) -> Config:
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    return config


def upgrade_on(connection: Connection, revision: str = "head") -> None:
    """Run the index migrations on an open (sync-facing) connection."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def downgrade_on(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def migration_sql(dialect_name: str) -> str:
    """The DDL the migrations run on `dialect_name` ("sqlite", "postgresql", "cockroachdb")."""
    output = io.StringIO()
    config = alembic_config(output)
    config.set_main_option("dialect_name", dialect_name)
    command.upgrade(config, "head", sql=True)
    return output.getvalue()


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the index schema to `revision` (the newest by default)."""
    async with engine.begin() as conn:
        await conn.run_sync(upgrade_on, revision)
