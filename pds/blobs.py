"""Blob bookkeeping: accepting uploads, and collecting the ones nobody kept.

Uploads
    `store_upload` streams an upload into the blob store (size limit, CID, sniffed MIME type)
    and records it as a temporary blob of the uploading account. Uploading bytes the account
    already has keeps the copy that exists (so a commit about to claim it is not disturbed) and
    restarts its collection clock; if a record already references the bytes, the upload is made
    permanent at once, as the reference PDS does.

Garbage collection, every `interval`
    1. *expired uploads*: temporary rows older than `max_age` (an hour by default) that no
       record references, with their temporary bytes;
    2. *stray temporary files*: temporary bytes older than `max_age` that no row names
       (uploads whose request died before its row was written, say);
    3. *dereferenced blobs*: permanent rows no record references any more, with their bytes.
       The repo writer deletes these as it commits; this pass is the backstop.

Why this is safe against concurrent writes
    Uploads and the collector change rows and files only inside write transactions, which
    SQLite runs one at a time, so an upload never sees a half-collected blob. The repo writer
    is different: it reads blob rows from a snapshot and moves a claimed upload into permanent
    storage *before* its own transaction. So the collector deletes an expired upload's
    temporary bytes first and only then looks for a permanent copy: if a commit moved the bytes
    before the delete, the copy is there and the row is left alone (the commit makes it
    permanent); if not, the move can no longer happen (the commit fails cleanly with
    `BlobNotFound`) and the row goes. The copy left by a commit that moved the bytes and then
    rolled back stays, still claimable by a retry of that commit.

`BlobGarbageCollector.run_once()` does one full pass (tests call it directly, optionally with a
shorter `max_age`); `blob_gc_context` runs it periodically for the application's lifetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from atcore.cid import CID, CidError
from atcore.datajson import BlobRef
from pds.blobstore import BlobStore, TempBlob
from pds.context import CONTEXT
from pds.db import blobs as blob_sql
from pds.db.engine import Database

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = timedelta(hours=1)
DEFAULT_INTERVAL: Final = timedelta(minutes=10)
# Rows per write transaction: small, because the transaction is held while bytes are deleted.
BATCH_SIZE: Final = 50


# -- uploads ----------------------------------------------------------------------------------
async def store_upload(
    db: Database,
    store: BlobStore,
    did: str,
    chunks: AsyncIterator[bytes],
    *,
    max_size: int,
    declared_mime: str | None,
) -> BlobRef:
    """Stream an upload into `store` as a temporary blob of `did`; returns its reference.

    Raises the store's `BlobTooLarge` / `UploadTimedOut` / `BlobStoreError` (nothing is kept).
    """
    temp = await store.put_temp(chunks, max_size=max_size, declared_mime=declared_mime)
    try:
        async with db.transaction() as conn:
            kept_new_copy = await _track_upload(conn, store, did, temp)
    except BaseException:
        await store.delete_temp(temp.key)
        raise
    if not kept_new_copy:
        try:
            await store.delete_temp(temp.key)
        except Exception:  # the collector removes it later
            log.exception("could not delete a redundant temporary blob")
    return BlobRef(temp.cid, temp.mime_type, temp.size)


async def _track_upload(conn: AsyncConnection, store: BlobStore, did: str, temp: TempBlob) -> bool:
    """Record the upload in the caller's transaction; False when the new copy is redundant."""
    cid, now = str(temp.cid), int(time.time() * 1000)
    found = await blob_sql.find_upload(conn, did, cid)
    if found is not None and found.temp_key is None:
        return False  # already permanent
    key = temp.key
    if found is None:
        await blob_sql.insert_upload(
            conn, did=did, cid=cid, mime_type=temp.mime_type, size=temp.size, temp_key=key, now=now
        )
    else:
        assert found.temp_key is not None
        if await store.temp_exists(found.temp_key):
            key = found.temp_key  # keep the copy a commit may be claiming right now
        await blob_sql.restart_upload(
            conn, did=did, cid=cid, temp_key=key, mime_type=temp.mime_type, now=now
        )
    if await blob_sql.has_record_references(conn, did, cid):
        await store.make_permanent(key, did, temp.cid)
        await blob_sql.mark_permanent(conn, did, cid)
    return key == temp.key


# -- garbage collection -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CollectionReport:
    """What one pass removed."""

    expired_uploads: int = 0
    stray_temp_files: int = 0
    dereferenced_blobs: int = 0


class BlobGarbageCollector:
    """Deletes unreferenced blobs (rows and bytes); see the module notes for what and why."""

    def __init__(
        self,
        db: Database,
        store: BlobStore,
        *,
        max_age: timedelta = DEFAULT_MAX_AGE,
        interval: timedelta = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if max_age < timedelta(0) or interval <= timedelta(0) or batch_size < 1:
            raise ValueError("max_age must be >= 0, interval and batch_size positive")
        self._db = db
        self._store = store
        self.max_age = max_age
        self.interval = interval
        self._clock = clock
        self._batch_size = batch_size
        self._pass_lock = asyncio.Lock()

    async def run_once(self, *, max_age: timedelta | None = None) -> CollectionReport:
        """One full pass; `max_age` overrides the configured age for this pass only."""
        age = self.max_age if max_age is None else max_age
        async with self._pass_lock:  # the periodic task and a direct call never overlap
            expired = await self._collect_expired_uploads(age)
            stray = await self._collect_stray_temp_files(age)
            dereferenced = await self._collect_dereferenced()
        return CollectionReport(expired, stray, dereferenced)

    async def run_forever(self) -> None:
        """Collect every `interval` until cancelled; a failed pass is logged and retried later."""
        while True:
            await asyncio.sleep(self.interval.total_seconds())
            try:
                report = await self.run_once()
            except Exception:
                log.exception("blob garbage collection failed")
                continue
            if report != CollectionReport():
                log.info("blob garbage collection: %s", report)

    async def _collect_expired_uploads(self, age: timedelta) -> int:
        cutoff_ms = int((self._clock() - age.total_seconds()) * 1000)
        removed = 0
        after: blob_sql.ExpiredUpload | None = None
        while True:
            async with self._db.transaction() as conn:
                batch = await blob_sql.expired_uploads(
                    conn, created_before=cutoff_ms, after=after, limit=self._batch_size
                )
                gone = [(row.did, row.cid) for row in batch if await self._discard_upload(row)]
                await blob_sql.delete_blob_rows(conn, gone)
            removed += len(gone)
            if len(batch) < self._batch_size:
                return removed
            after = batch[-1]

    async def _discard_upload(self, row: blob_sql.ExpiredUpload) -> bool:
        """Delete an expired upload's bytes; False when a commit has already moved them."""
        await self._store.delete_temp(row.temp_key)
        cid = _parse_cid(row.cid)
        if cid is not None and await self._store.exists(row.did, cid):
            log.info("expired upload %s of %s was moved by a commit; keeping it", row.cid, row.did)
            return False
        return True

    async def _collect_stray_temp_files(self, age: timedelta) -> int:
        keys = await self._store.list_temp_older_than(age)
        removed = 0
        for start in range(0, len(keys), self._batch_size):
            chunk = keys[start : start + self._batch_size]
            async with self._db.transaction() as conn:  # no upload can adopt a key meanwhile
                in_use = await blob_sql.temp_keys_in_use(conn, chunk)
                for key in chunk:
                    if key not in in_use:
                        await self._store.delete_temp(key)
                        removed += 1
        return removed

    async def _collect_dereferenced(self) -> int:
        removed = 0
        while True:
            async with self._db.transaction() as conn:
                batch = await blob_sql.unreferenced_permanent_blobs(conn, limit=self._batch_size)
                # Bytes first, inside the transaction: an upload of the same bytes must not
                # find the old copy in place (and skip storing its own) just before it goes.
                by_did: dict[str, list[CID]] = {}
                for did, text in batch:
                    cid = _parse_cid(text)
                    if cid is not None:
                        by_did.setdefault(did, []).append(cid)
                for did, cids in by_did.items():
                    await self._store.delete_many(did, cids)
                await blob_sql.delete_blob_rows(conn, batch)
            removed += len(batch)
            if len(batch) < self._batch_size:
                return removed


def _parse_cid(text: str) -> CID | None:
    try:
        return CID.parse(text)
    except CidError:
        log.warning("blob row with an unparseable CID: %r", text)
        return None


# -- running it with the application ----------------------------------------------------------
BLOB_GC: Final = web.AppKey("pds_blob_gc", BlobGarbageCollector)


def blob_gc_context(
    *, max_age: timedelta = DEFAULT_MAX_AGE, interval: timedelta = DEFAULT_INTERVAL
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A `cleanup_ctx` entry running the collector in the background for the app's lifetime.

    Append it after the entry that builds the application context (it reads the database and
    the blob store from there). The collector is published under `BLOB_GC`, so tests and admin
    tooling can run a pass on demand.
    """

    async def run(app: web.Application) -> AsyncIterator[None]:
        ctx = app[CONTEXT]
        collector = BlobGarbageCollector(ctx.db, ctx.blobstore, max_age=max_age, interval=interval)
        app[BLOB_GC] = collector
        task = asyncio.create_task(collector.run_forever(), name="blob-gc")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return run
