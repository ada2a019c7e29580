"""SQL for blobs outside the repo writer: uploads, serving, listings and garbage collection.

A `blob` row exists per (did, cid) the account uploaded. `temp_key` is set while no committed
record references the blob (its bytes then sit in the store's temporary area under that key);
the repo writer clears it in the commit that first references the blob and adds `record_blob`
rows, one per referencing record. Everything here takes the caller's connection, so the upload
bookkeeping and each garbage-collection batch are single transactions (see `pds.blobs` for why
they must be write transactions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from pds.db import schema

_blob = schema.blob
_record_blob = schema.record_blob
_record = schema.record

# SQLite's limit on host parameters is far above this; it only keeps IN lists reasonable.
_IN_CHUNK = 500


# -- uploads ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadRow:
    temp_key: str | None  # None: permanent


async def find_upload(conn: AsyncConnection, did: str, cid: str) -> UploadRow | None:
    """The repo's row for the blob (temporary or permanent), taken down or not."""
    query = select(_blob.c.temp_key).where(_blob.c.did == did, _blob.c.cid == cid)
    row = (await conn.execute(query)).first()
    return UploadRow(row[0]) if row else None


async def insert_upload(
    conn: AsyncConnection,
    *,
    did: str,
    cid: str,
    mime_type: str,
    size: int,
    temp_key: str,
    now: int,
) -> None:
    await conn.execute(
        insert(_blob).values(
            did=did, cid=cid, mime_type=mime_type, size=size, temp_key=temp_key, created_at=now
        )
    )


async def restart_upload(
    conn: AsyncConnection, *, did: str, cid: str, temp_key: str, mime_type: str, now: int
) -> None:
    """Point a temporary blob at `temp_key` and restart its garbage-collection clock."""
    await conn.execute(
        update(_blob)
        .where(_blob.c.did == did, _blob.c.cid == cid, _blob.c.temp_key.is_not(None))
        .values(temp_key=temp_key, mime_type=mime_type, created_at=now)
    )


async def has_record_references(conn: AsyncConnection, did: str, cid: str) -> bool:
    """Whether some indexed record of the repo already points at the blob."""
    query = select(exists().where(_record_blob.c.did == did, _record_blob.c.blob_cid == cid))
    return bool(await conn.scalar(query))


async def mark_permanent(conn: AsyncConnection, did: str, cid: str) -> None:
    await conn.execute(
        update(_blob).where(_blob.c.did == did, _blob.c.cid == cid).values(temp_key=None)
    )


# -- serving ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServedBlob:
    mime_type: str
    size: int


async def get_served_blob(conn: AsyncConnection, did: str, cid: str) -> ServedBlob | None:
    """A permanent, not taken-down blob of the repo (temporary uploads are never served)."""
    row = (
        await conn.execute(
            select(_blob.c.mime_type, _blob.c.size).where(
                _blob.c.did == did,
                _blob.c.cid == cid,
                _blob.c.temp_key.is_(None),
                _blob.c.takedown_ref.is_(None),
            )
        )
    ).first()
    return ServedBlob(row[0], int(row[1])) if row else None


async def list_blob_cids(
    conn: AsyncConnection, did: str, *, since: str | None, cursor: str | None, limit: int
) -> list[str]:
    """CIDs of blobs the repo's records reference, ascending after `cursor`.

    With `since`, only blobs referenced by records written in a later rev.
    """
    query = (
        select(_record_blob.c.blob_cid)
        .where(_record_blob.c.did == did)
        .group_by(_record_blob.c.blob_cid)
        .order_by(_record_blob.c.blob_cid)
        .limit(limit)
    )
    if since is not None:
        query = query.join(_record, _record.c.uri == _record_blob.c.record_uri).where(
            _record.c.repo_rev > since
        )
    if cursor is not None:
        query = query.where(_record_blob.c.blob_cid > cursor)
    return [row[0] for row in await conn.execute(query)]


async def list_missing_blobs(
    conn: AsyncConnection, did: str, *, cursor: str | None, limit: int
) -> list[tuple[str, str]]:
    """(blob cid, one referencing record URI) of referenced blobs the repo has no row for."""
    has_row = exists().where(_blob.c.did == did, _blob.c.cid == _record_blob.c.blob_cid)
    query = (
        select(_record_blob.c.blob_cid, func.min(_record_blob.c.record_uri))
        .where(_record_blob.c.did == did, ~has_row)
        .group_by(_record_blob.c.blob_cid)
        .order_by(_record_blob.c.blob_cid)
        .limit(limit)
    )
    if cursor is not None:
        query = query.where(_record_blob.c.blob_cid > cursor)
    return [(cid, uri) for cid, uri in await conn.execute(query)]


# -- garbage collection -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExpiredUpload:
    did: str
    cid: str
    temp_key: str
    created_at: int


def _unreferenced() -> ColumnElement[bool]:
    return ~exists().where(
        _record_blob.c.did == _blob.c.did, _record_blob.c.blob_cid == _blob.c.cid
    )


def _is_expired_upload(created_before: int) -> ColumnElement[bool]:
    return and_(_blob.c.temp_key.is_not(None), _blob.c.created_at < created_before, _unreferenced())


def _is_dereferenced() -> ColumnElement[bool]:
    # Taken-down blobs are kept, so moderation can still inspect them.
    return and_(_blob.c.temp_key.is_(None), _blob.c.takedown_ref.is_(None), _unreferenced())


def _among(keys: Sequence[tuple[str, str]]) -> ColumnElement[bool]:
    return tuple_(_blob.c.did, _blob.c.cid).in_(list(keys))


_EXPIRED_COLUMNS = (_blob.c.did, _blob.c.cid, _blob.c.temp_key, _blob.c.created_at)


async def expired_uploads(
    conn: AsyncConnection,
    *,
    created_before: int,
    after: ExpiredUpload | None,
    limit: int,
) -> list[ExpiredUpload]:
    """Temporary blob rows older than `created_before` that no record references, in
    (created_at, did, cid) order after `after` (so rows a pass keeps are not listed again)."""
    query = (
        select(*_EXPIRED_COLUMNS)
        .where(_is_expired_upload(created_before))
        .order_by(_blob.c.created_at, _blob.c.did, _blob.c.cid)
        .limit(limit)
    )
    if after is not None:
        position = tuple_(_blob.c.created_at, _blob.c.did, _blob.c.cid)
        query = query.where(
            position > tuple_(literal(after.created_at), literal(after.did), literal(after.cid))
        )
    return [
        ExpiredUpload(did, cid, key, int(created))
        for did, cid, key, created in await conn.execute(query)
    ]


async def expired_uploads_among(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]], *, created_before: int
) -> list[ExpiredUpload]:
    """Those of the (did, cid) `keys` that are still expired uploads (the check under lock)."""
    if not keys:
        return []
    query = select(*_EXPIRED_COLUMNS).where(_among(keys), _is_expired_upload(created_before))
    return [
        ExpiredUpload(did, cid, key, int(created))
        for did, cid, key, created in await conn.execute(query)
    ]


async def unreferenced_permanent_blobs(
    conn: AsyncConnection, *, after: tuple[str, str] | None, limit: int
) -> list[tuple[str, str]]:
    """(did, cid) of permanent blobs no record references any more, in order after `after`."""
    query = (
        select(_blob.c.did, _blob.c.cid)
        .where(_is_dereferenced())
        .order_by(_blob.c.did, _blob.c.cid)
        .limit(limit)
    )
    if after is not None:
        position = tuple_(_blob.c.did, _blob.c.cid)
        query = query.where(position > tuple_(literal(after[0]), literal(after[1])))
    return [(did, cid) for did, cid in await conn.execute(query)]


async def unreferenced_permanent_among(
    conn: AsyncConnection, keys: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Those of the (did, cid) `keys` that are still unreferenced permanent blobs."""
    if not keys:
        return []
    query = select(_blob.c.did, _blob.c.cid).where(_among(keys), _is_dereferenced())
    return [(did, cid) for did, cid in await conn.execute(query)]


async def temp_keys_in_use(conn: AsyncConnection, keys: Sequence[str]) -> set[str]:
    """Which of `keys` some blob row still names."""
    found: set[str] = set()
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        rows = await conn.execute(select(_blob.c.temp_key).where(_blob.c.temp_key.in_(chunk)))
        found.update(row[0] for row in rows)
    return found


async def delete_blob_rows(conn: AsyncConnection, rows: Sequence[tuple[str, str]]) -> None:
    """Delete the (did, cid) blob rows."""
    if rows:
        stmt = delete(_blob).where(
            and_(_blob.c.did == bindparam("b_did"), _blob.c.cid == bindparam("b_cid"))
        )
        await conn.execute(stmt, [{"b_did": did, "b_cid": cid} for did, cid in rows])
