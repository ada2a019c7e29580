"""`run_on_writer`: one transaction on the write connection's own thread (aiosqlite internals)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from sqlalchemy import func, select

from pds.db import schema
from pds.db.engine import Database
from pds.db.repo_batch import (
    BatchWrite,
    BlobRefs,
    BlobsChanged,
    EventRow,
    apply_batch,
    insert_events,
    run_on_writer,
)


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


async def test_a_blob_ref_without_its_row_rolls_the_batch_back(db: Database) -> None:
    """The writer read the blob rows before the transaction; if one is gone by then, nothing of
    the batch may be written (the writer plans it again and refuses that write)."""
    did, cid = "did:x:a", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    uri = f"at://{did}/com.example.photo/one"
    batch = BatchWrite(
        now=0,
        time_text="t",
        events=[event(did)],
        blobs={did: BlobRefs(touched_uris=[uri], rows=[(cid, uri)])},
    )
    with pytest.raises(BlobsChanged) as refused:
        await run_on_writer(db, lambda conn: apply_batch(conn, batch))
    assert (refused.value.did, refused.value.cids) == (did, [cid])
    assert await count_events(db) == 0
    async with db.read() as conn:
        assert (await conn.execute(select(schema.record_blob))).first() is None
