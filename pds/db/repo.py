"""SQL for repositories: roots, blocks, the record index, backlinks and record → blob references.

Blocks are keyed by (did, binary CID); `repo_rev` is the rev of the commit that first stored the
block, which is what `getRepo?since=` filters on. Records are indexed by AT URI with their CID
as text. Every writer function takes the caller's connection so a whole commit is one
transaction; batch writers take row lists and run one `executemany` each.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.cid import CID
from pds.db import schema

_block = schema.repo_block
_root = schema.repo_root
_record = schema.record
_blob = schema.blob
_record_blob = schema.record_blob
_backlink = schema.backlink
_account = schema.account

# SQLite's default limit on host parameters is 32766; stay well below it per IN list.
_IN_CHUNK = 500


def _chunks(items: Sequence[object], size: int = _IN_CHUNK) -> Iterable[Sequence[object]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- roots -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RepoHead:
    """A repository's current commit, with the account's signing key and status."""

    did: str
    commit_cid: CID
    rev: str
    signing_key: bytes
    taken_down: bool
    deactivated: bool


async def load_heads(conn: AsyncConnection, dids: Sequence[str]) -> dict[str, RepoHead]:
    """Current heads of the repos of `dids` (those without a repo are absent)."""
    heads: dict[str, RepoHead] = {}
    for chunk in _chunks(list(dids)):
        rows = await conn.execute(
            select(
                _root.c.did,
                _root.c.cid,
                _root.c.rev,
                _account.c.signing_key,
                _account.c.takedown_ref,
                _account.c.deactivated_at,
            )
            .join(_account, _account.c.did == _root.c.did)
            .where(_root.c.did.in_(chunk))
        )
        for did, cid, rev, key, takedown, deactivated in rows:
            heads[did] = RepoHead(
                did, CID.parse(cid), rev, bytes(key), takedown is not None, deactivated is not None
            )
    return heads


async def get_root(conn: AsyncConnection, did: str) -> tuple[CID, str] | None:
    """(commit CID, rev) of a repo, or None when the DID has no repo here."""
    row = (await conn.execute(select(_root.c.cid, _root.c.rev).where(_root.c.did == did))).first()
    return (CID.parse(row[0]), row[1]) if row else None


async def insert_root(conn: AsyncConnection, did: str, cid: CID, rev: str, now: int) -> None:
    await conn.execute(insert(_root).values(did=did, cid=str(cid), rev=rev, indexed_at=now))


async def list_repo_dids(conn: AsyncConnection, after: str | None, limit: int) -> list[str]:
    query = select(_root.c.did).order_by(_root.c.did).limit(limit)
    if after is not None:
        query = query.where(_root.c.did > after)
    return [row[0] for row in await conn.execute(query)]


# -- blocks ----------------------------------------------------------------------------------


async def get_blocks(conn: AsyncConnection, did: str, cids: Sequence[CID]) -> dict[CID, bytes]:
    """The blocks among `cids` that the repo holds."""
    found: dict[CID, bytes] = {}
    by_bytes = {cid.cid_bytes: cid for cid in cids}
    for chunk in _chunks(list(by_bytes)):
        rows = await conn.execute(
            select(_block.c.cid, _block.c.content).where(
                _block.c.did == did, _block.c.cid.in_(chunk)
            )
        )
        for raw, content in rows:
            found[by_bytes[bytes(raw)]] = bytes(content)
    return found


async def put_blocks(conn: AsyncConnection, rows: Sequence[tuple[str, CID, str, bytes]]) -> None:
    """Store (did, cid, rev, block) rows; blocks already stored keep their first rev."""
    if not rows:
        return
    # `prefix_with` rather than the dialect's on_conflict_do_nothing(): that construct is not
    # cacheable and would be recompiled on every commit.
    stmt = insert(_block).prefix_with("OR IGNORE")
    await conn.execute(
        stmt,
        [
            {"did": did, "cid": cid.cid_bytes, "repo_rev": rev, "size": len(b), "content": b}
            for did, cid, rev, b in rows
        ],
    )


async def block_page(
    conn: AsyncConnection, did: str, *, since: str | None, after: bytes | None, limit: int
) -> list[tuple[bytes, bytes]]:
    """One page of (binary cid, block) for an export, in CID order after `after`."""
    query = (
        select(_block.c.cid, _block.c.content)
        .where(_block.c.did == did)
        .order_by(_block.c.cid)
        .limit(limit)
    )
    if since is not None:
        query = query.where(_block.c.repo_rev > since)
    if after is not None:
        query = query.where(_block.c.cid > after)
    return [(bytes(c), bytes(b)) for c, b in await conn.execute(query)]


# -- records ---------------------------------------------------------------------------------


async def get_record(
    conn: AsyncConnection, uri: str, cid: str | None = None
) -> tuple[str, bytes] | None:
    """(cid, block) of an indexed, not taken-down record (optionally only at `cid`)."""
    row = (
        await conn.execute(
            select(_record.c.did, _record.c.cid).where(
                _record.c.uri == uri, _record.c.takedown_ref.is_(None)
            )
        )
    ).first()
    if row is None or (cid is not None and row[1] != cid):
        return None
    did, record_cid = row
    content = await conn.scalar(
        select(_block.c.content).where(
            _block.c.did == did, _block.c.cid == CID.parse(record_cid).cid_bytes
        )
    )
    return (record_cid, bytes(content)) if content is not None else None


async def list_records(
    conn: AsyncConnection,
    did: str,
    collection: str,
    *,
    limit: int,
    cursor: str | None,
    reverse: bool,
) -> list[tuple[str, str, bytes]]:
    """(uri, cid, block) of a collection's records by rkey: descending, or ascending if reverse.

    `record.cid` is text while blocks are keyed by binary CID, so the blocks come from a second
    query (one IN list) rather than a join.
    """
    query = (
        select(_record.c.uri, _record.c.cid)
        .where(
            _record.c.did == did,
            _record.c.collection == collection,
            _record.c.takedown_ref.is_(None),
        )
        .order_by(_record.c.rkey.asc() if reverse else _record.c.rkey.desc())
        .limit(limit)
    )
    if cursor is not None:
        query = query.where(_record.c.rkey > cursor if reverse else _record.c.rkey < cursor)
    rows = [(uri, cid, CID.parse(cid)) for uri, cid in await conn.execute(query)]
    blocks = await get_blocks(conn, did, [parsed for _, _, parsed in rows])
    return [(uri, cid, blocks[parsed]) for uri, cid, parsed in rows if parsed in blocks]


async def list_collections(conn: AsyncConnection, did: str) -> list[str]:
    rows = await conn.execute(
        select(_record.c.collection)
        .where(_record.c.did == did)
        .group_by(_record.c.collection)
        .order_by(_record.c.collection)
    )
    return [row[0] for row in rows]


async def backlink_sources(
    conn: AsyncConnection, did: str, links: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], set[str]]:
    """For each (path, link_to), the URIs of the repo's records with that backlink."""
    found: dict[tuple[str, str], set[str]] = {}
    for path, link_to in dict.fromkeys(links):
        rows = await conn.execute(
            select(_backlink.c.uri).where(
                _backlink.c.did == did, _backlink.c.path == path, _backlink.c.link_to == link_to
            )
        )
        found[(path, link_to)] = {row[0] for row in rows}
    return found


# -- blobs -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlobRow:
    cid: str
    mime_type: str
    size: int
    temp_key: str | None


async def find_blobs(conn: AsyncConnection, did: str, cids: Sequence[str]) -> dict[str, BlobRow]:
    """The repo's blob rows among `cids` (text), taken-down ones excluded."""
    found: dict[str, BlobRow] = {}
    for chunk in _chunks(list(cids)):
        rows = await conn.execute(
            select(_blob.c.cid, _blob.c.mime_type, _blob.c.size, _blob.c.temp_key).where(
                _blob.c.did == did, _blob.c.cid.in_(chunk), _blob.c.takedown_ref.is_(None)
            )
        )
        for cid, mime, size, temp_key in rows:
            found[cid] = BlobRow(cid, mime, int(size), temp_key)
    return found


async def existing_blob_rows(conn: AsyncConnection, did: str, cids: Sequence[str]) -> set[str]:
    """Which of `cids` (text) have a blob row in the repo, in any state."""
    found: set[str] = set()
    for chunk in _chunks(list(cids)):
        rows = await conn.execute(
            select(_blob.c.cid).where(_blob.c.did == did, _blob.c.cid.in_(chunk))
        )
        found.update(row[0] for row in rows)
    return found


# -- whole repositories ----------------------------------------------------------------------


async def delete_repo_rows(conn: AsyncConnection, did: str) -> list[str]:
    """Delete everything stored for a repo; returns the CIDs (text) of its blobs."""
    blob_cids = [
        row[0] for row in await conn.execute(select(_blob.c.cid).where(_blob.c.did == did))
    ]
    for table in (_record_blob, _blob, _backlink, _record, _block, _root):
        await conn.execute(delete(table).where(table.c.did == did))
    return blob_cids
