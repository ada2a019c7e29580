"""Blob bookkeeping for one write batch: which blobs records pin, and which they let go.

* `load` reads the rows of every blob the batch's records reference (one query per repo).
* `claim` checks a planned commit's new records: every referenced blob must exist in this repo;
  a temporary one must match the ref's MIME type and size (as the reference PDS checks) and is
  moved into permanent storage right away, i.e. before the transaction commits. A blob that a
  failed earlier attempt already moved is recognised and accepted.
* `persist` rewrites `record_blob` for every record the batch touched, clears `temp_key` of the
  claimed blobs, and deletes the rows of blobs no record references any more; their files are
  removed by `delete_dereferenced` once the transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.cid import CID
from pds.blobstore.contract import BlobNotFound as StoredBlobNotFound
from pds.db import repo as repo_sql
from pds.repo.errors import BlobNotFound, InvalidWrite
from pds.repo.prepare import PreparedWrite

log = logging.getLogger(__name__)


class BlobStoreLike(Protocol):
    """The part of `pds.blobstore`'s `BlobStore` the writer uses."""

    async def make_permanent(self, temp_key: str, did: str, cid: CID) -> None: ...

    async def exists(self, did: str, cid: CID) -> bool: ...

    async def delete(self, did: str, cid: CID) -> None: ...


class BlobPlan:
    """Blob rows and blob moves of one write batch."""

    def __init__(self, store: BlobStoreLike | None) -> None:
        self._store = store
        self._rows: dict[tuple[str, str], repo_sql.BlobRow] = {}
        self._claimed: dict[tuple[str, str], str | None] = {}  # -> temp key it had, if any
        self._dereferenced: list[tuple[str, str]] = []

    async def load(self, conn: AsyncConnection, writes: Iterable[PreparedWrite]) -> None:
        wanted: dict[str, set[str]] = {}
        for write in writes:
            for ref in write.blobs:
                wanted.setdefault(write.did, set()).add(str(ref.ref))
        for did, cids in wanted.items():
            for cid, row in (await repo_sql.find_blobs(conn, did, sorted(cids))).items():
                self._rows[(did, cid)] = row

    async def claim(self, writes: Sequence[PreparedWrite]) -> None:
        """Check (and make permanent) the blobs of the records a commit writes."""
        for write in writes:
            for ref in write.blobs:
                key = (write.did, str(ref.ref))
                row = self._rows.get(key)
                if row is None:
                    raise BlobNotFound(f"Could not find blob: {ref.ref}")
                if row.temp_key is None or key in self._claimed:
                    continue
                if ref.mime_type != row.mime_type:
                    raise InvalidWrite(
                        "Referenced Mimetype does not match stored blob. "
                        f"Expected: {row.mime_type}, Got: {ref.mime_type}",
                        error="InvalidMimeType",
                    )
                if ref.size != row.size:
                    raise InvalidWrite(
                        "Referenced Size does not match stored blob. "
                        f"Expected: {row.size}, Got: {ref.size}",
                        error="InvalidSize",
                    )
                await self._make_permanent(write.did, ref.ref, row.temp_key)
                self._claimed[key] = row.temp_key

    async def _make_permanent(self, did: str, cid: CID, temp_key: str) -> None:
        if self._store is None:
            raise RuntimeError("this PDS has no blob store configured")
        try:
            await self._store.make_permanent(temp_key, did, cid)
        except StoredBlobNotFound:
            # An earlier attempt may have moved it and then failed to commit.
            if not await self._store.exists(did, cid):
                raise BlobNotFound(f"Could not find blob: {cid}") from None

    async def persist(
        self,
        conn: AsyncConnection,
        final: Mapping[str, PreparedWrite | None],
        superseded: Sequence[PreparedWrite],
    ) -> None:
        """Rewrite `record_blob` for the touched records (`final`: uri → last version or None)."""
        by_did: dict[str, list[str]] = {}
        for uri, write in final.items():
            did = write.did if write is not None else _did_of(uri)
            by_did.setdefault(did, []).append(uri)
        candidates: dict[str, set[str]] = {}
        for write in superseded:
            candidates.setdefault(write.did, set()).update(str(ref.ref) for ref in write.blobs)
        rows: list[tuple[str, str, str]] = []
        for did, uris in by_did.items():
            candidates.setdefault(did, set()).update(
                await repo_sql.blobs_of_records(conn, did, uris)
            )
            await repo_sql.delete_record_blobs(conn, did, uris)
        for uri, write in final.items():
            if write is not None:
                rows.extend((write.did, str(ref.ref), uri) for ref in write.blobs)
        await repo_sql.insert_record_blobs(conn, rows)
        await repo_sql.mark_blobs_permanent(
            conn, [key for key, temp in self._claimed.items() if temp is not None]
        )
        pinned = {(did, cid) for did, cid, _ in rows}
        for did, cids in candidates.items():
            loose = sorted(cid for cid in cids if (did, cid) not in pinned)
            if not loose:
                continue
            still = await repo_sql.referenced_blobs(conn, did, loose)
            gone = [cid for cid in loose if cid not in still]
            await repo_sql.delete_blob_rows(conn, did, gone)
            self._dereferenced.extend((did, cid) for cid in gone)

    async def delete_dereferenced(self) -> None:
        """Remove the files of blobs the committed batch dereferenced (errors are logged)."""
        if self._store is None:
            return
        for did, cid in self._dereferenced:
            try:
                await self._store.delete(did, CID.parse(cid))
            except Exception:
                log.exception("could not delete dereferenced blob", extra={"did": did, "cid": cid})


def _did_of(uri: str) -> str:
    return uri.removeprefix("at://").split("/", 1)[0]
