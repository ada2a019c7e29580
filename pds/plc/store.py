"""The local PLC directory's storage: one table of operations, SQLite (WAL) via SQLAlchemy async.

Rows are keyed by (did, cid); `seq` is a global sequence number the writer assigns as
max(seq) + 1 inside its transaction (no autoincrement), and `created_at` is epoch milliseconds.
Accepting an operation reads the DID's log, runs the did:plc chain rules and writes, all in one
write transaction. On SQLite every write transaction starts with `BEGIN IMMEDIATE` on a single
pooled write connection, so submissions are serialized and validation always sees the log it
extends, even across processes sharing the file.

The directory's clock is the authority for `created_at`, but it is kept strictly increasing per
DID (never earlier than 1 ms after the DID's previous operation): a wall clock stepping backwards
must not make a valid recovery look misordered. Bumping only ever moves time forward, so it can
never sneak a late recovery into the 72 h window.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    MetaData,
    String,
    Table,
    Text,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from atcore.cid import CID
from atcore.identity.errors import MisorderedOperation
from atcore.identity.plc import PlcOp, op_cid, op_to_json
from atcore.identity.plc_log import assure_valid_next_op
from atcore.identity.plc_parse import LogEntry, parse_operation
from atcore.syntax import Did

metadata: Final = MetaData()
VERSION_TABLE: Final = "plc_alembic_version"
MIGRATIONS_DIR: Final = Path(__file__).with_name("migrations")

plc_operation: Final = Table(
    "plc_operation",
    metadata,
    Column("did", String, primary_key=True),
    Column("cid", String, primary_key=True),
    Column("seq", BigInteger, nullable=False, unique=True),
    Column("operation", Text, nullable=False),  # the signed operation's JSON wire form
    Column("nullified", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),  # epoch milliseconds
    Index("ix_plc_operation_did_seq", "did", "seq"),
    Index("ix_plc_operation_created_at", "created_at", "cid"),
)


@dataclass(frozen=True, slots=True)
class Submitted:
    """The outcome of an accepted submission."""

    cid: CID
    created_at: datetime
    nullified: tuple[CID, ...]
    duplicate: bool


@dataclass(frozen=True, slots=True)
class SequencedEntry:
    seq: int
    entry: LogEntry


class PlcStore:
    """All reads and writes of the directory's operation log."""

    def __init__(self, database_url: str) -> None:
        self._sqlite = make_url(database_url).get_backend_name() == "sqlite"
        options: dict[str, Any] = {"pool_size": 1, "max_overflow": 0} if self._sqlite else {}
        self._write_engine = create_async_engine(database_url, **options)
        self._read_engine = create_async_engine(database_url)
        if self._sqlite:
            _configure_sqlite(self._write_engine, begin="BEGIN IMMEDIATE")
            _configure_sqlite(self._read_engine, begin="BEGIN")

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (see `upgrade_on`)."""
        async with self._write_engine.begin() as conn:
            await conn.run_sync(upgrade_on)

    async def close(self) -> None:
        await self._write_engine.dispose()
        await self._read_engine.dispose()

    async def check_health(self) -> None:
        async with self._reading() as conn:
            await conn.execute(select(1))

    # -- writes -----------------------------------------------------------------------------------
    async def submit(self, did: Did, op: PlcOp, now: datetime) -> Submitted:
        """Validate `op` against the DID's log and store it; raises `PlcOperationError`."""
        cid = op_cid(op)
        async with self._write_engine.begin() as conn:
            entries = await _entries(conn, did, include_nullified=True)
            existing = next((e for e in entries if e.cid == cid), None)
            if existing is not None:
                if existing.nullified:
                    raise MisorderedOperation(f"operation {cid} was nullified by a recovery")
                return Submitted(cid, existing.created_at, (), duplicate=True)
            created_at = _next_timestamp(now, entries)
            history = [entry for entry in entries if not entry.nullified]
            verdict = assure_valid_next_op(did, history, op, created_at)
            await conn.execute(
                plc_operation.insert().values(
                    did=did,
                    cid=str(cid),
                    seq=await _next_seq(conn),
                    operation=_to_text(op),
                    nullified=False,
                    created_at=_to_millis(created_at),
                )
            )
            if verdict.nullified:
                await conn.execute(
                    update(plc_operation)
                    .where(plc_operation.c.did == did)
                    .where(plc_operation.c.cid.in_([str(c) for c in verdict.nullified]))
                    .values(nullified=True)
                )
        return Submitted(cid, created_at, verdict.nullified, duplicate=False)

    # -- reads ------------------------------------------------------------------------------------
    async def log(self, did: str, *, include_nullified: bool) -> list[LogEntry]:
        """The DID's operations, oldest first (empty when the DID is unknown)."""
        async with self._reading() as conn:
            return await _entries(conn, did, include_nullified=include_nullified)

    async def last_active(self, did: str) -> LogEntry | None:
        entries = await self.log(did, include_nullified=False)
        return entries[-1] if entries else None

    async def export_after_seq(self, after: int, count: int) -> list[SequencedEntry]:
        query = (
            select(plc_operation)
            .where(plc_operation.c.seq > after)
            .order_by(plc_operation.c.seq)
            .limit(count)
        )
        async with self._reading() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [SequencedEntry(row["seq"], _entry(row)) for row in rows]

    async def export_after_time(self, after: datetime | None, count: int) -> list[LogEntry]:
        query = select(plc_operation).order_by(plc_operation.c.created_at, plc_operation.c.cid)
        if after is not None:
            query = query.where(plc_operation.c.created_at > _to_millis(after))
        async with self._reading() as conn:
            rows = (await conn.execute(query.limit(count))).mappings().all()
        return [_entry(row) for row in rows]

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        async with self._read_engine.connect() as conn, conn.begin():
            yield conn


def sqlite_url(path: str) -> str:
    return f"sqlite+aiosqlite:///{path}"


def upgrade_on(connection: Connection) -> None:
    """Run the migrations on an open connection.

    Directories created before the schema had migrations made the table with `create_all`; such
    a database (the table, no version table) is stamped as revision 0001, which is exactly what
    `create_all` made, and then upgraded like any other.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    tables = set(inspect(connection).get_table_names())
    if plc_operation.name in tables and VERSION_TABLE not in tables:
        command.stamp(config, "0001")
    command.upgrade(config, "head")


def _configure_sqlite(engine: AsyncEngine, *, begin: str) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # SQLAlchemy issues BEGIN itself (pysqlite's implicit transactions are unreliable).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)


async def _entries(conn: AsyncConnection, did: str, *, include_nullified: bool) -> list[LogEntry]:
    query = select(plc_operation).where(plc_operation.c.did == did).order_by(plc_operation.c.seq)
    if not include_nullified:
        query = query.where(plc_operation.c.nullified.is_(False))
    rows = (await conn.execute(query)).mappings().all()
    return [_entry(row) for row in rows]


async def _next_seq(conn: AsyncConnection) -> int:
    current = (await conn.execute(select(func.max(plc_operation.c.seq)))).scalar()
    return int(current or 0) + 1


def _next_timestamp(now: datetime, entries: list[LogEntry]) -> datetime:
    millis = _to_millis(now)
    if entries:
        millis = max(millis, max(_to_millis(e.created_at) for e in entries) + 1)
    return _from_millis(millis)


def _entry(row: Any) -> LogEntry:
    return LogEntry(
        did=Did(row["did"]),
        operation=parse_operation(json.loads(row["operation"])),
        cid=CID.parse(row["cid"]),
        nullified=bool(row["nullified"]),
        created_at=_from_millis(row["created_at"]),
    )


def _to_text(op: PlcOp) -> str:
    return json.dumps(op_to_json(op), separators=(",", ":"), ensure_ascii=False)


def _to_millis(moment: datetime) -> int:
    return (moment - _EPOCH) // _MILLISECOND


def _from_millis(millis: int) -> datetime:
    return _EPOCH + millis * _MILLISECOND


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
