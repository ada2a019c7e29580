"""Blob bookkeeping: accepting uploads, and collecting the ones nobody kept.

Uploads
    `store_upload` streams an upload into the blob store (size limit, CID, sniffed MIME type)
    and records it as a temporary blob of the uploading account. Uploading bytes the account
    already has keeps the copy that exists and restarts its collection clock; if a record
    already references the bytes, the upload is made permanent at once, as the reference PDS
    does.

Garbage collection, every `interval`
    1. *expired uploads*: temporary rows older than `max_age` (an hour by default) that no
       record references, with their temporary bytes and any permanent copy (left by a commit
       that moved the upload and then rolled back);
    2. *stray temporary files*: temporary bytes older than `max_age` that no row names
       (uploads whose request died before its row was written, say);
    3. *dereferenced blobs*: permanent rows no record references any more, with their bytes.
       The repo writer deletes these as it commits; this pass is the backstop.

Why this is safe against concurrent writes
    Both sides follow the protocol of `pds.repo.blobs`: the recording of an upload and each
    collection batch hold the `BlobLocks` of their (did, cid)s, taken before the write
    transaction, and the collector checks each row again inside its transaction. A commit holds
    the same locks from reading its blob rows until its transaction ends, so the collector never
    sees a blob halfway through a commit, and a commit never relies on a row the collector is
    removing. Expired uploads lose their bytes before their rows (a crash in between leaves a
    temporary row without bytes, which no commit can claim and the next pass removes);
    dereferenced blobs lose their rows first (a crash in between leaves unreachable bytes, never
    a row without bytes).

`BlobGarbageCollector.run_once()` does one full pass (tests call it directly, optionally with a
shorter `max_age`); `blob_gc_context` runs it periodically for the application's lifetime.
"""

from __future__ import annotations

import asyncio
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
from pds.background import in_background, repeat
from pds.blobstore import BlobStore, TempBlob
from pds.context import CONTEXT
from pds.db import blobs as blob_sql
from pds.db.engine import Database
from pds.repo.blobs import BlobLocks

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = timedelta(hours=1)
DEFAULT_INTERVAL: Final = timedelta(minutes=10)
# Rows per write transaction: small, because the transaction is held while bytes are deleted.
BATCH_SIZE: Final = 50


# -- uploads ----------------------------------------------------------------------------------
async def store_upload(
    db: Database,
    store: BlobStore,
    locks: BlobLocks,
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
        async with locks.hold([(did, str(temp.cid))]), db.transaction() as conn:
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
            key = found.temp_key  # one temporary copy is enough
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
        locks: BlobLocks,
        max_age: timedelta = DEFAULT_MAX_AGE,
        interval: timedelta = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.time,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if max_age < timedelta(0) or interval <= timedelta(0) or batch_size < 1:
            raise ValueError("max_age must be >= 0, interval and batch_size positive")
        self._db = db
        self._store = store
        self._locks = locks
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
        await repeat(
            self.run_once,
            interval=self.interval,
            first_delay=self.interval,
            what="blob garbage collection",
            worth_logging=lambda report: report != CollectionReport(),
        )

    async def _collect_expired_uploads(self, age: timedelta) -> int:
        cutoff_ms = int((self._clock() - age.total_seconds()) * 1000)
        removed = 0
        after: blob_sql.ExpiredUpload | None = None
        while True:
            async with self._db.read() as conn:
                batch = await blob_sql.expired_uploads(
                    conn, created_before=cutoff_ms, after=after, limit=self._batch_size
                )
            if batch:
                removed += await self._discard_uploads(batch, cutoff_ms)
            if len(batch) < self._batch_size:
                return removed
            after = batch[-1]

    async def _discard_uploads(self, listed: list[blob_sql.ExpiredUpload], cutoff_ms: int) -> int:
        """Remove the listed uploads that, checked again under their locks, are still expired."""
        keys = [(row.did, row.cid) for row in listed]
        async with self._locks.hold(keys), self._db.transaction() as conn:
            # A re-upload may have restarted the clock, or a commit claimed one, since listing.
            rows = await blob_sql.expired_uploads_among(conn, keys, created_before=cutoff_ms)
            permanent: dict[str, list[CID]] = {}
            for row in rows:
                await self._store.delete_temp(row.temp_key)
                cid = _parse_cid(row.cid)
                if cid is not None:
                    permanent.setdefault(row.did, []).append(cid)
            # A permanent copy beside a temporary row was left by a commit that moved the
            # upload and then rolled back; under the lock no commit relies on it.
            for did, cids in permanent.items():
                await self._store.delete_many(did, cids)
            await blob_sql.delete_blob_rows(conn, [(row.did, row.cid) for row in rows])
        return len(rows)

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
        after: tuple[str, str] | None = None
        while True:
            async with self._db.read() as conn:
                batch = await blob_sql.unreferenced_permanent_blobs(
                    conn, after=after, limit=self._batch_size
                )
            if batch:
                removed += await self._discard_dereferenced(batch)
            if len(batch) < self._batch_size:
                return removed
            after = batch[-1]

    async def _discard_dereferenced(self, listed: list[tuple[str, str]]) -> int:
        """Remove the listed blobs that, checked again under their locks, nothing references."""
        async with self._locks.hold(listed):
            async with self._db.transaction() as conn:
                gone = await blob_sql.unreferenced_permanent_among(conn, listed)
                await blob_sql.delete_blob_rows(conn, gone)
            # Rows first: from here on no commit can claim these blobs (it finds no row).
            by_did: dict[str, list[CID]] = {}
            for did, text in gone:
                cid = _parse_cid(text)
                if cid is not None:
                    by_did.setdefault(did, []).append(cid)
            for did, cids in by_did.items():
                await self._store.delete_many(did, cids)
        return len(gone)


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
        collector = BlobGarbageCollector(
            ctx.db,
            ctx.blobstore,
            locks=ctx.repo_writer.blob_locks,
            max_age=max_age,
            interval=interval,
        )
        app[BLOB_GC] = collector
        async with in_background(collector.run_forever(), "blob-gc"):
            yield

    return run
