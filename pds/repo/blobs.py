"""Blob bookkeeping around commits, and the protocol that keeps referenced bytes in place.

The invariant
    When a commit is acknowledged, every blob its records reference has a `blob` row with no
    `temp_key` (permanent) and its bytes in permanent storage; the bytes stay as long as the row.

Who touches a blob's row and bytes, and how
    Five actors change the row or the bytes of a repo's blob (did, cid): the upload path
    (`pds.blobs.store_upload`), a commit that references it, the commit-time clean-up of blobs a
    commit dereferenced, the garbage collector (`pds.blobs.BlobGarbageCollector`) and account
    deletion. Rows change in SQLite write transactions, which run one at a time; bytes live in
    the blob store, outside any transaction. So every actor that changes both holds the
    in-process `BlobLocks` entry of that (did, cid) for the whole change, taken *before* its
    write transaction opens (never while holding one, so no lock waits on the database writer
    while the writer waits on it; several entries are taken in sorted order).

    * Commit (`RepoWriter`): holds the locks of every blob the batch's records reference from
      reading their rows (`BlobPlan.load`) until the transaction has committed or rolled back.
      Under them it moves claimed uploads into permanent storage (`claim`); the transaction then
      checks that each referenced blob still has a row (`pds.db.repo_batch.BlobsChanged` rolls
      the batch back and it is planned again, refusing the write with `BlobNotFound`), adds the
      `record_blob` rows and clears the claimed temp keys.
    * Dereferenced blobs: the transaction deletes the rows of blobs no record references any
      more; the files go afterwards (`delete_unowned`), each under its lock and only if, read
      again under the lock, no row exists for it. A blob uploaded again in between has a row
      again and keeps the bytes (a later claim finds them in place).
    * Uploads, the collector and account deletion take the same locks (see `pds.blobs`).

States of one (did, cid), and what they mean
    * no row, no permanent file: unknown blob.
    * no row, permanent file: bytes waiting for `delete_unowned` (or left by a crash).
    * temporary row, temp file: an upload no committed record references yet.
    * temporary row, permanent file: a commit moved the upload and then rolled back. Still
      claimable (`make_permanent` finds the bytes in place); if it expires instead, the
      collector removes the row and both copies (under the lock no commit is mid-claim, so a
      permanent file beside a temporary row is never one a commit relies on).
    * permanent row, permanent file: referenced by committed records.

The locks are per process: the PDS owns its SQLite database and blob store alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

from atcore.cid import CID, CidError
from pds.blobstore.contract import BlobNotFound as StoredBlobNotFound
from pds.db import repo as repo_sql
from pds.db.engine import Database
from pds.repo.errors import BlobNotFound, InvalidWrite
from pds.repo.prepare import PreparedWrite

log = logging.getLogger(__name__)

BlobKey = tuple[str, str]  # (did, cid as text)


class BlobStoreLike(Protocol):
    """The part of `pds.blobstore`'s `BlobStore` the writer uses."""

    async def make_permanent(self, temp_key: str, did: str, cid: CID) -> None: ...

    async def exists(self, did: str, cid: CID) -> bool: ...

    async def delete_many(self, did: str, cids: Iterable[CID]) -> None: ...


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class BlobLocks:
    """One `asyncio.Lock` per (did, cid) in use; entries vanish when nobody holds or awaits one."""

    def __init__(self) -> None:
        self._entries: dict[BlobKey, _Entry] = {}

    @asynccontextmanager
    async def hold(self, keys: Iterable[BlobKey]) -> AsyncIterator[None]:
        """Hold the locks of `keys` (taken in sorted order, so holders never deadlock)."""
        held: list[BlobKey] = []
        try:
            for key in sorted(set(keys)):
                entry = self._entries.setdefault(key, _Entry())
                entry.users += 1
                try:
                    await entry.lock.acquire()
                except BaseException:
                    self._check_in(key, entry)
                    raise
                held.append(key)
            yield
        finally:
            for key in reversed(held):
                entry = self._entries[key]
                entry.lock.release()
                self._check_in(key, entry)

    def _check_in(self, key: BlobKey, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0:
            del self._entries[key]

    def __len__(self) -> int:
        """How many (did, cid) entries are held or awaited (for tests and metrics)."""
        return len(self._entries)


def blob_keys(writes: Iterable[PreparedWrite]) -> set[BlobKey]:
    """The (did, cid) of every blob the writes' records reference."""
    return {(write.did, str(ref.ref)) for write in writes for ref in write.blobs}


class BlobPlan:
    """Blob rows and blob moves of one write batch (run under the batch's `BlobLocks`)."""

    def __init__(self, store: BlobStoreLike | None) -> None:
        self._store = store
        self._rows: dict[BlobKey, repo_sql.BlobRow] = {}
        self.claimed: dict[str, list[str]] = {}  # did -> temp blobs made permanent

    async def load(self, db: Database, keys: Iterable[BlobKey]) -> None:
        wanted: dict[str, set[str]] = {}
        for did, cid in keys:
            wanted.setdefault(did, set()).add(cid)
        if not wanted:
            return
        async with db.read() as conn:
            for did, cids in wanted.items():
                for cid, row in (await repo_sql.find_blobs(conn, did, sorted(cids))).items():
                    self._rows[(did, cid)] = row

    async def claim(self, writes: Sequence[PreparedWrite]) -> None:
        """Check (and make permanent) the blobs of the records a commit writes.

        Every referenced blob must exist in this repo; a temporary one must match the ref's
        MIME type and size (as the reference PDS checks) and is moved into permanent storage
        now, before the transaction, so an acknowledged write never points at a temp file.
        """
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
            # An earlier attempt moved it and then rolled back (see the module notes).
            if not await self._store.exists(did, cid):
                raise BlobNotFound(f"Could not find blob: {cid}") from None


async def delete_unowned(
    db: Database, store: BlobStoreLike | None, locks: BlobLocks, blobs: Iterable[BlobKey]
) -> None:
    """Delete the permanent files of `blobs` that, under their locks, have no row (any more).

    For the files of rows a commit or an account deletion removed: a blob uploaded again since
    has a row again and keeps its bytes. Errors are logged (the files are then left behind).
    """
    if store is None:
        return
    by_did: dict[str, set[str]] = {}
    for did, cid in blobs:
        by_did.setdefault(did, set()).add(cid)
    for did, cids in by_did.items():
        async with locks.hold((did, cid) for cid in cids):
            try:
                async with db.read() as conn:
                    owned = await repo_sql.existing_blob_rows(conn, did, sorted(cids))
                doomed = [_cid(text) for text in sorted(cids - owned)]
                await store.delete_many(did, [cid for cid in doomed if cid is not None])
            except Exception:
                log.exception("could not delete %d dereferenced blobs of %s", len(cids), did)


def _cid(text: str) -> CID | None:
    try:
        return CID.parse(text)
    except CidError:
        log.warning("blob with an unparseable CID: %r", text)
        return None
