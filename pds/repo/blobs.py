"""Blob bookkeeping for one write batch: which blobs new records pin, checked before the commit.

* `load` reads the rows of every blob the batch's records reference (one query per repo).
* `claim` checks a planned commit's new records: every referenced blob must exist in this repo;
  a temporary one must match the ref's MIME type and size (as the reference PDS checks) and is
  moved into permanent storage right away, i.e. before the transaction commits, so an
  acknowledged write never points at a temp file. A blob an earlier, failed attempt already
  moved is recognised and accepted.
* The transaction then rewrites `record_blob` and clears the claimed temp keys
  (`pds.db.repo_batch`); `delete_files` removes the files of blobs it dereferenced, after commit.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from atcore.cid import CID
from pds.blobstore.contract import BlobNotFound as StoredBlobNotFound
from pds.db import repo as repo_sql
from pds.db.engine import Database
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
        self.claimed: dict[str, list[str]] = {}  # did -> temp blobs made permanent

    async def load(self, db: Database, writes: Iterable[PreparedWrite]) -> None:
        wanted: dict[str, set[str]] = {}
        for write in writes:
            for ref in write.blobs:
                wanted.setdefault(write.did, set()).add(str(ref.ref))
        if not wanted:
            return
        async with db.read() as conn:
            for did, cids in wanted.items():
                for cid, row in (await repo_sql.find_blobs(conn, did, sorted(cids))).items():
                    self._rows[(did, cid)] = row

    async def claim(self, writes: Sequence[PreparedWrite]) -> None:
        """Check (and make permanent) the blobs of the records a commit writes."""
        for write in writes:
            for ref in write.blobs:
                cid = str(ref.ref)
                row = self._rows.get((write.did, cid))
                if row is None:
                    raise BlobNotFound(f"Could not find blob: {cid}")
                if row.temp_key is None or cid in self.claimed.get(write.did, ()):
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
                self.claimed.setdefault(write.did, []).append(cid)

    async def _make_permanent(self, did: str, cid: CID, temp_key: str) -> None:
        if self._store is None:
            raise RuntimeError("this PDS has no blob store configured")
        try:
            await self._store.make_permanent(temp_key, did, cid)
        except StoredBlobNotFound:
            # An earlier attempt may have moved it and then failed to commit.
            if not await self._store.exists(did, cid):
                raise BlobNotFound(f"Could not find blob: {cid}") from None

    async def delete_files(self, blobs: Sequence[tuple[str, str]]) -> None:
        """Remove the files of blobs the committed batch dereferenced (errors are logged)."""
        if self._store is None:
            return
        for did, cid in blobs:
            try:
                await self._store.delete(did, CID.parse(cid))
            except Exception:
                log.exception("could not delete dereferenced blob", extra={"did": did, "cid": cid})
