"""Races between commits, uploads and blob deletions (the protocol of `pds.repo.blobs`).

Each race is held open deterministically with a real disk store whose deletions of permanent
blobs wait at a gate the test opens: the deleter is stopped mid-way, the other side gets every
chance to interleave, and then the deletion finishes. Whatever the interleaving, an
acknowledged write must reference bytes that are still stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from atcore.cid import CID
from atcore.datajson import BlobRef
from pds.blobs import BlobGarbageCollector, CollectionReport, store_upload
from pds.blobstore import BlobNotFound, DiskBlobStore
from pds.db import schema
from pds.repo.errors import BlobNotFound as RepoBlobNotFound
from tests.pds.blobstore.samples import png_1x1
from tests.pds.repo_support import RepoEnv, make_env

COLLECTION = "com.example.photo"
# How long the test lets the other side run while a deletion is held at the gate.
INTERLEAVE_SECONDS = 0.5


class GatedDiskStore(DiskBlobStore):
    """A disk store whose permanent-blob deletions wait until `gate` is set."""

    def __init__(self, location: Path) -> None:
        super().__init__(location)
        self.gate = asyncio.Event()
        self.gate.set()
        self.deleting = asyncio.Event()

    async def delete(self, did: str, cid: CID) -> None:
        await self._wait_at_gate()
        await super().delete(did, cid)

    async def delete_many(self, did: str, cids: Iterable[CID]) -> None:
        await self._wait_at_gate()
        await super().delete_many(did, cids)

    async def _wait_at_gate(self) -> None:
        self.deleting.set()
        await self.gate.wait()

    def hold_next_deletion(self) -> None:
        self.deleting.clear()
        self.gate.clear()

    async def deletion_started(self) -> None:
        await asyncio.wait_for(self.deleting.wait(), timeout=10)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[GatedDiskStore]:
    disk = GatedDiskStore(tmp_path / "blobs")
    yield disk
    disk.gate.set()
    await disk.close()


@pytest.fixture
async def env(tmp_path: Path, store: GatedDiskStore) -> AsyncIterator[RepoEnv]:
    async for value in make_env(tmp_path, store):
        try:
            yield value
        finally:
            store.gate.set()  # a failed test must not leave the writer's clean-up waiting


async def upload(env: RepoEnv, store: GatedDiskStore, did: str, content: bytes) -> BlobRef:
    async def chunks() -> AsyncIterator[bytes]:
        yield content

    return await store_upload(
        env.db,
        store,
        env.writer.blob_locks,
        did,
        chunks(),
        max_size=1 << 20,
        declared_mime="*/*",
    )


async def reference(env: RepoEnv, did: str, ref: BlobRef, rkey: str) -> None:
    record = {"image": ref.to_json(), "alt": rkey}
    await env.writer.apply_writes(did, [env.prep.create(did, COLLECTION, record, rkey=rkey)])


async def blob_row(env: RepoEnv, did: str, cid: CID) -> Any:
    async with env.db.read() as conn:
        query = select(schema.blob).where(schema.blob.c.did == did, schema.blob.c.cid == str(cid))
        return (await conn.execute(query)).first()


async def stored_bytes(store: GatedDiskStore, did: str, cid: CID) -> bytes | None:
    try:
        reader = await store.get(did, cid)
    except BlobNotFound:
        return None
    async with reader:
        return await reader.read_all()


async def let_it_interleave(task: asyncio.Task[Any]) -> None:
    """Give `task` the chance to run (it may finish, or block on a lock meanwhile)."""
    await asyncio.wait({task}, timeout=INTERLEAVE_SECONDS)


async def test_reupload_and_reference_while_the_old_copy_awaits_deletion(
    env: RepoEnv, store: GatedDiskStore
) -> None:
    """A commit dereferences a blob; before its file is deleted the same bytes are uploaded
    and referenced again. The new record must keep its bytes."""
    did = await env.new_account("alice")
    content = png_1x1()
    ref = await upload(env, store, did, content)
    await reference(env, did, ref, "one")
    store.hold_next_deletion()
    await env.writer.apply_writes(did, [env.prep.delete(did, COLLECTION, "one")])
    await store.deletion_started()

    async def upload_and_reference_again() -> None:
        again = await upload(env, store, did, content)
        assert again == ref
        await reference(env, did, again, "two")

    second = asyncio.create_task(upload_and_reference_again())
    await let_it_interleave(second)
    store.gate.set()
    await second
    await env.writer.close()  # the post-commit deletion has run
    assert (await blob_row(env, did, ref.ref)).temp_key is None
    assert await stored_bytes(store, did, ref.ref) == content


async def test_reference_racing_the_dereferenced_pass(env: RepoEnv, store: GatedDiskStore) -> None:
    """The collector removes a permanent blob nothing references while a commit references it:
    the commit must fail with `BlobNotFound` rather than point at deleted bytes."""
    did = await env.new_account("alice")
    content = png_1x1()
    ref = await upload(env, store, did, content)
    await reference(env, did, ref, "one")
    # As if the referencing record's index rows vanished without the writer cleaning up.
    async with env.db.transaction() as conn:
        await conn.execute(schema.record_blob.delete())
    collector = BlobGarbageCollector(env.db, store, locks=env.writer.blob_locks)
    store.hold_next_deletion()
    collecting = asyncio.create_task(collector.run_once())
    await store.deletion_started()
    writing = asyncio.create_task(reference(env, did, ref, "two"))
    await let_it_interleave(writing)
    store.gate.set()
    report, written = await asyncio.gather(collecting, writing, return_exceptions=True)
    assert report == CollectionReport(dereferenced_blobs=1)
    assert isinstance(written, RepoBlobNotFound), written
    assert await blob_row(env, did, ref.ref) is None
    assert await stored_bytes(store, did, ref.ref) is None


async def test_upload_waits_for_a_deletion_in_progress(env: RepoEnv, store: GatedDiskStore) -> None:
    """An upload of bytes whose old copy is being deleted ends with its own temporary copy,
    which a later commit makes permanent."""
    did = await env.new_account("alice")
    content = png_1x1()
    ref = await upload(env, store, did, content)
    await reference(env, did, ref, "one")
    store.hold_next_deletion()
    await env.writer.apply_writes(did, [env.prep.delete(did, COLLECTION, "one")])
    await store.deletion_started()
    uploading = asyncio.create_task(upload(env, store, did, content))
    await let_it_interleave(uploading)
    assert not uploading.done()  # it waits for the blob's lock
    store.gate.set()
    assert await uploading == ref
    await env.writer.close()
    row = await blob_row(env, did, ref.ref)
    assert row.temp_key is not None
    assert await store.temp_exists(row.temp_key)
    await reference(env, did, ref, "two")
    assert await stored_bytes(store, did, ref.ref) == content
    assert len(env.writer.blob_locks) == 0  # every lock entry was released
