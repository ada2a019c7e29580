"""Blob bookkeeping: accepting uploads, and collecting the ones nobody kept.

`store_upload` streams an upload into the blob store (size limit, CID, sniffed MIME type) and
records it as a temporary blob of the uploading account. If the account uploads bytes it already
stores permanently, the new copy is dropped at once; if a record already references them (the
blob row went missing), the upload is made permanent straight away, as the reference PDS does.

An upload stays temporary until a committed record references it. The collector removes, every
`interval`:

1. *expired uploads*: temporary blob rows older than `max_age` (an hour by default) that no
   record references, together with their temporary bytes and any permanent copy an aborted
   commit may have moved into place;
2. *stray temporary files*: bytes in the store's temporary area older than `max_age` that no
   blob row names (re-uploads of blobs already stored, uploads whose request died before its
   row was written);
3. *dereferenced blobs*: permanent rows no record references any more. The repo writer deletes
   these as it commits; this pass is the backstop for a delete that failed or was interrupted.

Why each batch deletes its files inside a write transaction: the repo writer moves a temporary
blob into permanent storage inside *its* write transaction, and SQLite admits one writer at a
time. Holding the write lock while deleting means no commit can claim, or re-reference, a blob
between the moment the collector decides it is garbage and the moment its bytes are gone.

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

from atcore.cid import CID, CidError
from atcore.datajson import BlobRef
from pds.blobstore import BlobStore
from pds.context import CONTEXT
from pds.db import blobs as blob_sql
from pds.db.blobs import UploadOutcome
from pds.db.engine import Database

log = logging.getLogger(__name__)

DEFAULT_MAX_AGE: Final = timedelta(hours=1)
DEFAULT_INTERVAL: Final = timedelta(minutes=10)
BATCH_SIZE: Final = 200


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
    cid = str(temp.cid)
    try:
        async with db.transaction() as conn:
            tracked = await blob_sql.track_upload(
                conn,
                did=did,
                cid=cid,
                mime_type=temp.mime_type,
                size=temp.size,
                temp_key=temp.key,
                now=int(time.time() * 1000),
            )
            if tracked.outcome is not UploadOutcome.PERMANENT and (
                await blob_sql.has_record_references(conn, did, cid)
            ):
                await store.make_permanent(temp.key, did, temp.cid)
                await blob_sql.mark_permanent(conn, did, cid)
    except BaseException:
        await store.delete_temp(temp.key)
        raise
    if tracked.stale_temp_key is not None:
        await _delete_temp_quietly(store, tracked.stale_temp_key)
    return BlobRef(temp.cid, temp.mime_type, temp.size)


async def _delete_temp_quietly(store: BlobStore, key: str) -> None:
    """Drop a redundant temporary copy; if that fails, the collector gets it later."""
    try:
        await store.delete_temp(key)
    except Exception:
        log.exception("could not delete a redundant temporary blob")


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

    # -- the three passes --------------------------------------------------------------------
    async def _collect_expired_uploads(self, age: timedelta) -> int:
        cutoff_ms = int((self._clock() - age.total_seconds()) * 1000)
        removed = 0
        while True:
            async with self._db.transaction() as conn:
                batch = await blob_sql.expired_uploads(
                    conn, created_before=cutoff_ms, limit=self._batch_size
                )
                await blob_sql.delete_blob_rows(conn, [(row.did, row.cid) for row in batch])
                for row in batch:
                    await self._store.delete_temp(row.temp_key)
                    cid = _parse_cid(row.cid)
                    if cid is not None:
                        # A commit that moved the upload into place and then rolled back leaves a
                        # permanent copy behind; the row was temporary, so nothing else uses it.
                        await self._store.delete(row.did, cid)
            removed += len(batch)
            if len(batch) < self._batch_size:
                return removed

    async def _collect_stray_temp_files(self, age: timedelta) -> int:
        keys = await self._store.list_temp_older_than(age)
        removed = 0
        for start in range(0, len(keys), self._batch_size):
            chunk = keys[start : start + self._batch_size]
            async with self._db.transaction() as conn:
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
                await blob_sql.delete_blob_rows(conn, batch)
                by_did: dict[str, list[CID]] = {}
                for did, text in batch:
                    cid = _parse_cid(text)
                    if cid is not None:
                        by_did.setdefault(did, []).append(cid)
                for did, cids in by_did.items():
                    await self._store.delete_many(did, cids)
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
