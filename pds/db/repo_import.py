"""SQL for `com.atproto.repo.importRepo`: replacing a repository's whole content at once.

An import swaps the repository for the verified content of a CAR: every block, every record row,
backlink and record → blob reference of the repo go, the new ones come in, and the root moves to
the new commit, all in the caller's one transaction. Blob rows (uploads) are left alone: blobs
the new records reference but nobody uploaded yet are what `listMissingBlobs` reports, and the
collector removes uploads no record references any more.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.cid import CID
from pds.db import schema

_block = schema.repo_block
_root = schema.repo_root
_record = schema.record
_record_blob = schema.record_blob
_blob = schema.blob
_backlink = schema.backlink
_IN_CHUNK = 500


@dataclass(frozen=True, slots=True)
class ImportedRecord:
    uri: str
    cid: str
    collection: str
    rkey: str
    backlinks: tuple[tuple[str, str], ...] = ()  # (path, link_to), see `pds.repo.backlinks`


async def replace_repo_content(
    conn: AsyncConnection,
    *,
    did: str,
    commit_cid: CID,
    rev: str,
    blocks: Sequence[tuple[CID, bytes]],
    records: Sequence[ImportedRecord],
    record_blobs: Sequence[tuple[str, str]],
    now: int,
) -> bool:
    """Replace the repo's blocks, records, backlinks and blob references; move its root.

    `record_blobs` holds (blob cid, record uri) pairs. Returns False (changing nothing) when the
    DID has no repository here.
    """
    moved = await conn.execute(
        update(_root).where(_root.c.did == did).values(cid=str(commit_cid), rev=rev, indexed_at=now)
    )
    if moved.rowcount == 0:
        return False
    for table in (_record_blob, _backlink, _record, _block):
        await conn.execute(delete(table).where(table.c.did == did))
    if blocks:
        await conn.execute(
            insert(_block).prefix_with("OR IGNORE"),
            [
                {"did": did, "cid": c.cid_bytes, "repo_rev": rev, "size": len(b), "content": b}
                for c, b in blocks
            ],
        )
    if records:
        await conn.execute(
            insert(_record),
            [
                {
                    "uri": r.uri,
                    "cid": r.cid,
                    "did": did,
                    "collection": r.collection,
                    "rkey": r.rkey,
                    "repo_rev": rev,
                    "indexed_at": now,
                }
                for r in records
            ],
        )
    backlinks = [
        {"uri": r.uri, "path": path, "link_to": link_to, "did": did}
        for r in records
        for path, link_to in r.backlinks
    ]
    if backlinks:
        await conn.execute(insert(_backlink), backlinks)
    if record_blobs:
        await conn.execute(
            insert(_record_blob).prefix_with("OR IGNORE"),
            [{"did": did, "blob_cid": cid, "record_uri": uri} for cid, uri in record_blobs],
        )
    return True


async def temporary_uploads_among(
    conn: AsyncConnection, did: str, cids: Sequence[str]
) -> list[tuple[str, str]]:
    """(cid, temp key) of the repo's blobs among `cids` that are still temporary uploads."""
    found: list[tuple[str, str]] = []
    unique = sorted(set(cids))
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        rows = await conn.execute(
            select(_blob.c.cid, _blob.c.temp_key).where(
                _blob.c.did == did, _blob.c.cid.in_(chunk), _blob.c.temp_key.is_not(None)
            )
        )
        found.extend((cid, key) for cid, key in rows)
    return found
