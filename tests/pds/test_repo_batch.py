"""`run_on_writer`: one transaction on the write connection's own thread (aiosqlite internals)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pds.db import schema
from pds.db.engine import Database
from pds.db.repo_batch import EventRow, insert_events, run_on_writer


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(tmp_path / "pds.sqlite")
    await database.migrate()
    yield database
    await database.close()


def event(did: str) -> EventRow:
    return EventRow(did, "identity", lambda seq, time_text: f"{seq}@{time_text}".encode())


async def count_events(db: Database) -> int:
    async with db.read() as conn:
        return int(await conn.scalar(select(func.count()).select_from(schema.repo_seq)) or 0)


async def test_commits_and_is_visible_to_readers(db: Database) -> None:
    seqs = await run_on_writer(db, lambda c: insert_events(c, [event("did:x:a")] * 3, 0, "t"))
    assert seqs == [1, 2, 3]
    assert await count_events(db) == 3


async def test_an_exception_rolls_everything_back(db: Database) -> None:
    def failing(conn: sqlite3.Connection) -> None:
        insert_events(conn, [event("did:x:a")], 0, "t")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await run_on_writer(db, failing)
    assert await count_events(db) == 0
    assert await run_on_writer(db, lambda c: insert_events(c, [event("did:x:b")], 0, "t")) == [1]


async def test_serialized_with_sqlalchemy_transactions(db: Database) -> None:
    """Both paths share the single write connection: interleaved writers never collide."""

    async def through_sqlalchemy(n: int) -> None:
        async with db.transaction() as conn:
            await conn.execute(
                schema.repo_seq.insert().values(
                    seq=10_000 + n,
                    did="did:x:s",
                    event_type="identity",
                    event=b"x",
                    invalidated=False,
                    sequenced_at=0,
                )
            )

    async def through_writer() -> list[int]:
        return await run_on_writer(db, lambda c: insert_events(c, [event("did:x:w")], 0, "t"))

    results = await asyncio.gather(
        *[through_sqlalchemy(n) for n in range(10)], *[through_writer() for _ in range(10)]
    )
    seqs = sorted(s for r in results if isinstance(r, list) for s in r)
    assert seqs == list(range(1, 11))
    assert await count_events(db) == 20
