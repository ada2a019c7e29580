"""Reading repositories: records, collections, block sets, proofs and whole-repo CAR exports.

All reads use the read pool (WAL snapshots), never the writer. A CAR export runs in one read
transaction so it is a consistent snapshot even while writes continue; it streams blocks in
pages in CID order, the commit block's CID as the root. With `since`, only blocks first stored by
a later commit are sent (the reference PDS's `getRepo?since=` semantics).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

from atcore import dagcbor
from atcore.car import encode_car_header, write_car
from atcore.cid import CID, encode_varint
from atcore.commit import SignedCommit
from atcore.datajson import data_to_json
from atcore.mst import MST, proof_blocks
from pds.db import repo as repo_sql
from pds.db.engine import Database
from pds.repo.errors import RepoNotFound
from pds.repo.storage import BlockCache, RepoView, with_blocks

EXPORT_PAGE_ROWS: Final = 500
EXPORT_CHUNK_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class RecordView:
    uri: str
    cid: str
    value: dict[str, Any]  # JSON form

    def to_json(self) -> dict[str, Any]:
        return {"uri": self.uri, "cid": self.cid, "value": self.value}


def _record_json(block: bytes) -> dict[str, Any]:
    value: dict[str, Any] = data_to_json(dagcbor.decode(block))
    return value


class RepoReader:
    """Queries over the repositories stored in the PDS database."""

    def __init__(self, db: Database, cache: BlockCache | None = None) -> None:
        self.db = db
        self.cache = cache or BlockCache()

    async def get_head(self, did: str) -> tuple[CID, str] | None:
        """(commit CID, rev) of the repo, or None when the DID has none here."""
        async with self.db.read() as conn:
            return await repo_sql.get_root(conn, did)

    async def get_record(
        self, did: str, collection: str, rkey: str, cid: str | None = None
    ) -> RecordView | None:
        uri = f"at://{did}/{collection}/{rkey}"
        async with self.db.read() as conn:
            found = await repo_sql.get_record(conn, uri, cid)
        if found is None:
            return None
        return RecordView(uri, found[0], _record_json(found[1]))

    async def list_records(
        self, did: str, collection: str, *, limit: int, cursor: str | None, reverse: bool
    ) -> tuple[list[RecordView], str | None]:
        """A page of records by rkey (newest first unless `reverse`) and the next cursor.

        The cursor is the last rkey returned, given only when the page is full.
        """
        async with self.db.read() as conn:
            rows = await repo_sql.list_records(
                conn, did, collection, limit=limit, cursor=cursor, reverse=reverse
            )
        records = [RecordView(uri, cid, _record_json(block)) for uri, cid, block in rows]
        next_cursor = records[-1].uri.rsplit("/", 1)[1] if len(rows) == limit and rows else None
        return records, next_cursor

    async def list_collections(self, did: str) -> list[str]:
        async with self.db.read() as conn:
            return await repo_sql.list_collections(conn, did)

    async def get_blocks(self, did: str, cids: Sequence[CID]) -> dict[CID, bytes]:
        async with self.db.read() as conn:
            return await repo_sql.get_blocks(conn, did, cids)

    async def export_car(self, did: str, since: str | None = None) -> AsyncIterator[bytes]:
        """The repo (or the blocks added after rev `since`) as CAR chunks; raises RepoNotFound."""
        async with self.db.read() as conn:
            head = await repo_sql.get_root(conn, did)
            if head is None:
                raise RepoNotFound(f"Could not find repo for DID: {did}")
            pending = bytearray(encode_car_header([head[0]]))
            after: bytes | None = None
            while True:
                page = await repo_sql.block_page(
                    conn, did, since=since, after=after, limit=EXPORT_PAGE_ROWS
                )
                for cid_bytes, block in page:
                    pending += encode_varint(len(cid_bytes) + len(block))
                    pending += cid_bytes
                    pending += block
                    if len(pending) >= EXPORT_CHUNK_BYTES:
                        yield bytes(pending)
                        pending.clear()
                if len(page) < EXPORT_PAGE_ROWS:
                    break
                after = page[-1][0]
            if pending:
                yield bytes(pending)

    async def record_proof_car(self, did: str, collection: str, rkey: str) -> bytes:
        """CAR proving a record's presence (commit, MST path, record) or absence (no record)."""
        path = f"{collection}/{rkey}"
        async with self.db.read() as conn:
            head = await repo_sql.get_root(conn, did)
            if head is None:
                raise RepoNotFound(f"Could not find repo for DID: {did}")
            commit_cid = head[0]

            async def fetch(cid: CID) -> bytes | None:
                return (await repo_sql.get_blocks(conn, did, [cid])).get(cid)

            commit_block = self.cache.get(commit_cid) or await fetch(commit_cid)
            if commit_block is None:
                raise RepoNotFound(f"Repo {did} has no commit block")
            data = SignedCommit.decode(commit_block).data

            def prove() -> tuple[dict[CID, bytes], CID | None]:
                tree = MST.load(RepoView(self.cache), data)
                return proof_blocks(tree, path), tree.get(path)

            nodes, record_cid = await with_blocks(prove, fetch, self.cache)
            blocks = [(commit_cid, commit_block), *nodes.items()]
            if record_cid is not None:
                record_block = await fetch(record_cid)
                if record_block is not None:
                    blocks.append((record_cid, record_block))
        return write_car([commit_cid], blocks)
