"""SQL for moderation (takedowns of records and blobs) and the account-status tallies.

Reads and flags rows of the repository tables, which the repo writer owns; nothing here adds or
removes repository data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from pds.db.schema import blob, record, record_blob, repo_block, repo_root


@dataclass(frozen=True, slots=True)
class RepoCounts:
    """What checkAccountStatus reports about an account's repository."""

    commit_cid: str | None
    rev: str | None
    blocks: int
    records: int
    expected_blobs: int
    imported_blobs: int


@dataclass(frozen=True, slots=True)
class TakedownState:
    """A record's or blob's moderation state (`ref` None: not taken down)."""

    cid: str
    ref: str | None


async def repo_counts(conn: AsyncConnection, did: str) -> RepoCounts:
    """Read-only tallies over the repository tables (which the repo writer owns)."""

    async def count(query: Any) -> int:
        return int((await conn.execute(query)).scalar_one())

    root = (
        await conn.execute(select(repo_root.c.cid, repo_root.c.rev).where(repo_root.c.did == did))
    ).first()
    return RepoCounts(
        commit_cid=root.cid if root else None,
        rev=root.rev if root else None,
        blocks=await count(select(func.count()).where(repo_block.c.did == did)),
        records=await count(select(func.count()).where(record.c.did == did)),
        expected_blobs=await count(
            select(func.count(func.distinct(record_blob.c.blob_cid))).where(
                record_blob.c.did == did
            )
        ),
        imported_blobs=await count(
            select(func.count()).where(blob.c.did == did, blob.c.temp_key.is_(None))
        ),
    )


async def set_record_takedown(conn: AsyncConnection, uri: str, ref: str | None) -> bool:
    result = await conn.execute(update(record).where(record.c.uri == uri).values(takedown_ref=ref))
    return result.rowcount > 0


async def get_record_takedown(conn: AsyncConnection, uri: str) -> TakedownState | None:
    query = select(record.c.cid, record.c.takedown_ref).where(record.c.uri == uri)
    row = (await conn.execute(query)).first()
    return None if row is None else TakedownState(cid=row.cid, ref=row.takedown_ref)


async def set_blob_takedown(conn: AsyncConnection, did: str, cid: str, ref: str | None) -> bool:
    result = await conn.execute(
        update(blob).where(blob.c.did == did, blob.c.cid == cid).values(takedown_ref=ref)
    )
    return result.rowcount > 0


async def get_blob_takedown(conn: AsyncConnection, did: str, cid: str) -> TakedownState | None:
    query = select(blob.c.cid, blob.c.takedown_ref).where(blob.c.did == did, blob.c.cid == cid)
    row = (await conn.execute(query)).first()
    return None if row is None else TakedownState(cid=row.cid, ref=row.takedown_ref)
