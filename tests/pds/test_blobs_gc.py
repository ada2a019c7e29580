"""Blob uploads and the garbage collector, on a real SQLite database and real blob stores.

Each test runs against the disk store and against the S3 store talking HTTP to a local S3
endpoint (moto in server mode, the blob store tests' fixture). Records are committed by the real
`RepoWriter`; time moves through an injected clock shared by the store and the collector.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from atcore.cid import CID
from atcore.datajson import BlobRef
from pds.blobs import BlobGarbageCollector, CollectionReport, store_upload
from pds.blobstore import BlobNotFound, BlobStore, BlobTooLarge, DiskBlobStore
from pds.db import schema
from pds.repo.blobs import BlobLocks
from pds.repo.errors import BlobNotFound as RepoBlobNotFound
from tests.pds.blobstore.conftest import (  # noqa: F401  (fixtures used by name)
    Clock,
    make_s3_store,
    new_bucket,
    s3_admin,
    s3_endpoint,
)
from tests.pds.blobstore.samples import gif_1x1, png_1x1
from tests.pds.repo_support import RepoEnv, make_env

COLLECTION = "com.example.photo"
HOUR = 3600.0
LIMIT = 1024 * 1024


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["disk", "s3"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[BlobStore]:
    if request.param == "disk":
        made: BlobStore = DiskBlobStore(tmp_path / "blobs", clock=clock)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        made = make_s3_store(endpoint, new_bucket(request.getfixturevalue("s3_admin")), clock)
    yield made
    await made.close()


@pytest.fixture
async def env(tmp_path: Path, store: BlobStore) -> AsyncIterator[RepoEnv]:
    async for value in make_env(tmp_path, store):
        yield value


@pytest.fixture
def collector(env: RepoEnv, store: BlobStore, clock: Clock) -> BlobGarbageCollector:
    return BlobGarbageCollector(env.db, store, locks=env.writer.blob_locks, clock=clock)


def random_bytes(size: int) -> bytes:
    return random.Random(size).randbytes(size)


async def chunked(content: bytes, chunk_size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(content), chunk_size):
        yield content[start : start + chunk_size]


async def upload(env: RepoEnv, store: BlobStore, did: str, content: bytes) -> BlobRef:
    return await store_upload(
        env.db,
        store,
        env.writer.blob_locks,
        did,
        chunked(content, 1000),
        max_size=LIMIT,
        declared_mime="*/*",
    )


async def blob_row(env: RepoEnv, did: str, cid: CID) -> Any:
    async with env.db.read() as conn:
        query = select(schema.blob).where(schema.blob.c.did == did, schema.blob.c.cid == str(cid))
        return (await conn.execute(query)).first()


async def temp_keys(store: BlobStore) -> set[str]:
    return set(await store.list_temp_older_than(timedelta(seconds=-HOUR)))


async def stored_bytes(store: BlobStore, did: str, cid: CID) -> bytes | None:
    try:
        reader = await store.get(did, cid)
    except BlobNotFound:
        return None
    async with reader:
        return await reader.read_all()


async def reference(env: RepoEnv, did: str, ref: BlobRef, rkey: str) -> None:
    record = {"image": ref.to_json(), "alt": rkey}
    await env.writer.apply_writes(did, [env.prep.create(did, COLLECTION, record, rkey=rkey)])


# -- uploads ----------------------------------------------------------------------------------
async def test_upload_is_a_temporary_blob_with_sniffed_type(env: RepoEnv, store: BlobStore) -> None:
    did = await env.new_account("alice")
    content = png_1x1()
    ref = await upload(env, store, did, content)
    assert ref == BlobRef(CID.for_raw(content), "image/png", len(content))
    row = await blob_row(env, did, ref.ref)
    assert row.temp_key in await temp_keys(store)
    assert (row.mime_type, row.size) == ("image/png", len(content))
    assert await stored_bytes(store, did, ref.ref) is None  # not served until referenced


async def test_oversized_upload_leaves_no_row_and_no_bytes(env: RepoEnv, store: BlobStore) -> None:
    did = await env.new_account("alice")
    with pytest.raises(BlobTooLarge):
        await store_upload(
            env.db,
            store,
            env.writer.blob_locks,
            did,
            chunked(random_bytes(5000), 1000),
            max_size=4096,
            declared_mime=None,
        )
    async with env.db.read() as conn:
        assert (await conn.execute(select(schema.blob))).first() is None
    assert await temp_keys(store) == set()


async def test_reupload_of_temporary_blob_keeps_one_copy(
    env: RepoEnv, store: BlobStore, clock: Clock
) -> None:
    did = await env.new_account("alice")
    first = await upload(env, store, did, gif_1x1())
    before = await blob_row(env, did, first.ref)
    await asyncio.sleep(0.01)
    again = await upload(env, store, did, gif_1x1())
    assert again == first
    after = await blob_row(env, did, first.ref)
    # The existing copy is kept (a commit may be claiming it); the new one is dropped.
    assert after.temp_key == before.temp_key
    assert await temp_keys(store) == {before.temp_key}
    assert after.created_at > before.created_at  # the collection clock restarted


async def test_reupload_replaces_a_lost_temporary_copy(env: RepoEnv, store: BlobStore) -> None:
    did = await env.new_account("alice")
    first = await upload(env, store, did, gif_1x1())
    lost = (await blob_row(env, did, first.ref)).temp_key
    await store.delete_temp(lost)
    await upload(env, store, did, gif_1x1())
    replacement = (await blob_row(env, did, first.ref)).temp_key
    assert replacement != lost
    assert await temp_keys(store) == {replacement}
    await reference(env, did, first, "one")
    assert await stored_bytes(store, did, first.ref) == gif_1x1()


async def test_reupload_of_permanent_blob_stays_permanent(env: RepoEnv, store: BlobStore) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    await reference(env, did, ref, "one")
    assert await upload(env, store, did, png_1x1()) == ref
    assert (await blob_row(env, did, ref.ref)).temp_key is None
    assert await temp_keys(store) == set()  # the redundant copy was dropped at once
    assert await stored_bytes(store, did, ref.ref) == png_1x1()


async def test_same_bytes_are_separate_blobs_per_account(env: RepoEnv, store: BlobStore) -> None:
    alice, bob = await env.new_account("alice"), await env.new_account("bob")
    ref = await upload(env, store, alice, png_1x1())
    await reference(env, alice, ref, "one")
    await upload(env, store, bob, png_1x1())
    assert (await blob_row(env, alice, ref.ref)).temp_key is None
    assert (await blob_row(env, bob, ref.ref)).temp_key is not None


# -- garbage collection -----------------------------------------------------------------------
async def test_unreferenced_upload_is_collected_after_the_age(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector, clock: Clock
) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    assert await collector.run_once() == CollectionReport()  # too young
    assert await blob_row(env, did, ref.ref) is not None
    clock.advance(HOUR + 1)
    assert await collector.run_once() == CollectionReport(expired_uploads=1)
    assert await blob_row(env, did, ref.ref) is None
    assert await temp_keys(store) == set()


async def test_max_age_override_collects_at_once(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector
) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    await asyncio.sleep(0.01)  # the cutoff is strict: "older than"
    report = await collector.run_once(max_age=timedelta(0))
    assert report.expired_uploads == 1
    assert await blob_row(env, did, ref.ref) is None


async def test_referenced_blob_survives_collection(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector, clock: Clock
) -> None:
    did = await env.new_account("alice")
    kept = await upload(env, store, did, png_1x1())
    dropped = await upload(env, store, did, gif_1x1())
    await reference(env, did, kept, "one")
    clock.advance(2 * HOUR)
    assert await collector.run_once() == CollectionReport(expired_uploads=1)
    assert await stored_bytes(store, did, kept.ref) == png_1x1()
    assert (await blob_row(env, did, kept.ref)).temp_key is None
    assert await blob_row(env, did, dropped.ref) is None


async def test_blob_of_deleted_record_is_removed_from_the_store(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector
) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    await reference(env, did, ref, "one")
    await env.writer.apply_writes(did, [env.prep.delete(did, COLLECTION, "one")])
    await env.writer.close()  # waits for the writer's post-commit blob deletions
    await collector.run_once()
    assert await blob_row(env, did, ref.ref) is None
    assert await stored_bytes(store, did, ref.ref) is None


async def test_blob_kept_while_another_record_references_it(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector, clock: Clock
) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    await reference(env, did, ref, "one")
    await reference(env, did, ref, "two")
    await env.writer.apply_writes(did, [env.prep.delete(did, COLLECTION, "one")])
    clock.advance(2 * HOUR)
    await collector.run_once()
    assert await stored_bytes(store, did, ref.ref) == png_1x1()


async def test_dereferenced_permanent_blob_left_behind_is_collected(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector
) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    await reference(env, did, ref, "one")
    # As if the referencing record's index rows vanished without the writer cleaning up.
    async with env.db.transaction() as conn:
        await conn.execute(schema.record_blob.delete())
    assert await collector.run_once() == CollectionReport(dereferenced_blobs=1)
    assert await blob_row(env, did, ref.ref) is None
    assert await stored_bytes(store, did, ref.ref) is None


async def moved_by_a_rolled_back_commit(env: RepoEnv, store: BlobStore, did: str) -> BlobRef:
    """An upload in the state a commit leaves when it moved the bytes and then rolled back:
    a temporary row, its bytes in permanent storage."""
    ref = await upload(env, store, did, png_1x1())
    row = await blob_row(env, did, ref.ref)
    await store.make_permanent(row.temp_key, did, ref.ref)
    return ref


async def test_upload_moved_by_a_rolled_back_commit_is_still_claimable(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector
) -> None:
    did = await env.new_account("alice")
    ref = await moved_by_a_rolled_back_commit(env, store, did)
    assert await collector.run_once() == CollectionReport()  # young: left alone
    await reference(env, did, ref, "retry")  # the retried commit finds the bytes in place
    assert (await blob_row(env, did, ref.ref)).temp_key is None
    assert await stored_bytes(store, did, ref.ref) == png_1x1()


async def test_expired_upload_moved_by_a_rolled_back_commit_goes_with_both_copies(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector, clock: Clock
) -> None:
    did = await env.new_account("alice")
    ref = await moved_by_a_rolled_back_commit(env, store, did)
    clock.advance(2 * HOUR)
    assert await collector.run_once() == CollectionReport(expired_uploads=1)
    assert await blob_row(env, did, ref.ref) is None
    assert await stored_bytes(store, did, ref.ref) is None
    assert await temp_keys(store) == set()


async def test_commits_racing_the_collector_never_acknowledge_missing_bytes(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector, clock: Clock
) -> None:
    """Expired uploads referenced while a pass runs: each commit either fails with
    `BlobNotFound` (the pass won) or leaves a permanent blob with its bytes."""
    did = await env.new_account("alice")
    for round_ in range(6):
        content = random_bytes(200 + round_)
        ref = await upload(env, store, did, content)
        clock.advance(2 * HOUR)
        await asyncio.sleep(0.01 * (round_ % 3))
        committed, _ = await asyncio.gather(
            reference(env, did, ref, f"r{round_}"), collector.run_once(), return_exceptions=True
        )
        if isinstance(committed, BaseException):
            assert isinstance(committed, RepoBlobNotFound), committed
            assert await stored_bytes(store, did, ref.ref) is None
        else:
            assert (await blob_row(env, did, ref.ref)).temp_key is None
            assert await stored_bytes(store, did, ref.ref) == content


async def test_commit_after_collection_fails_cleanly(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector, clock: Clock
) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    clock.advance(2 * HOUR)
    await collector.run_once()
    with pytest.raises(RepoBlobNotFound):
        await reference(env, did, ref, "too-late")
    assert await stored_bytes(store, did, ref.ref) is None


async def test_many_expired_uploads_in_batches(
    env: RepoEnv, store: BlobStore, clock: Clock
) -> None:
    did = await env.new_account("alice")
    collector = BlobGarbageCollector(
        env.db, store, locks=env.writer.blob_locks, clock=clock, batch_size=3
    )
    refs = [await upload(env, store, did, random_bytes(100 + i)) for i in range(8)]
    moved = await blob_row(env, did, refs[0].ref)
    await store.make_permanent(moved.temp_key, did, refs[0].ref)  # a rolled-back commit's copy
    clock.advance(2 * HOUR)
    assert await collector.run_once() == CollectionReport(expired_uploads=8)
    assert [await blob_row(env, did, ref.ref) for ref in refs] == [None] * 8
    assert await stored_bytes(store, did, refs[0].ref) is None


async def test_stray_temporary_files_are_collected(
    env: RepoEnv, store: BlobStore, collector: BlobGarbageCollector, clock: Clock
) -> None:
    did = await env.new_account("alice")
    stray = await store.put_temp(chunked(random_bytes(300)), max_size=LIMIT)
    ref = await upload(env, store, did, png_1x1())
    # Make the row young again, so only the stray file (which has no row) is old enough.
    clock.advance(2 * HOUR)
    async with env.db.transaction() as conn:
        await conn.execute(schema.blob.update().values(created_at=int((clock() + HOUR) * 1000)))
    report = await collector.run_once()
    assert report == CollectionReport(stray_temp_files=1)
    remaining = await temp_keys(store)
    assert stray.key not in remaining
    assert (await blob_row(env, did, ref.ref)).temp_key in remaining


async def test_collector_runs_periodically(env: RepoEnv, store: BlobStore, clock: Clock) -> None:
    did = await env.new_account("alice")
    ref = await upload(env, store, did, png_1x1())
    clock.advance(2 * HOUR)
    collector = BlobGarbageCollector(
        env.db, store, locks=env.writer.blob_locks, clock=clock, interval=timedelta(milliseconds=20)
    )
    task = asyncio.create_task(collector.run_forever())
    try:
        for _ in range(200):
            if await blob_row(env, did, ref.ref) is None:
                break
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
    assert await blob_row(env, did, ref.ref) is None
    assert await temp_keys(store) == set()


def test_collector_refuses_nonsense_settings(tmp_path: Path) -> None:
    from pds.db.engine import Database

    store = DiskBlobStore(tmp_path / "blobs")
    with pytest.raises(ValueError, match="interval"):
        BlobGarbageCollector(
            Database(tmp_path / "x.sqlite"), store, locks=BlobLocks(), interval=timedelta(0)
        )
