"""SQL for signing keys reserved ahead of an account (`com.atproto.server.reserveSigningKey`).

A reservation is a K-256 private key under its did:key, optionally bound to the DID of the account
it is for (at most one reservation per DID). `createAccount` for that DID takes the key and
deletes the row in its own transaction; reservations nobody claimed are deleted once they are
older than the caller's cutoff. Every function takes the caller's connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from pds.db.schema import reserved_signing_key as _reserved


@dataclass(frozen=True, slots=True)
class ReservedKey:
    key_did: str
    private_key: bytes


async def reserved_for_did(conn: AsyncConnection, did: str) -> ReservedKey | None:
    row = (
        await conn.execute(
            select(_reserved.c.key_did, _reserved.c.private_key).where(_reserved.c.did == did)
        )
    ).first()
    return ReservedKey(row[0], bytes(row[1])) if row else None


async def insert_reserved(
    conn: AsyncConnection, *, key_did: str, did: str | None, private_key: bytes, now: int
) -> None:
    await conn.execute(
        insert(_reserved).values(key_did=key_did, did=did, private_key=private_key, created_at=now)
    )


async def delete_reserved(conn: AsyncConnection, *, key_did: str, did: str) -> None:
    """Forget a reservation once its key is in use (by key, and whatever was reserved for did)."""
    await conn.execute(
        delete(_reserved).where(or_(_reserved.c.key_did == key_did, _reserved.c.did == did))
    )


async def delete_reserved_before(conn: AsyncConnection, cutoff: int) -> None:
    """Drop reservations created before `cutoff` (epoch ms) that no account claimed."""
    await conn.execute(delete(_reserved).where(_reserved.c.created_at < cutoff))
