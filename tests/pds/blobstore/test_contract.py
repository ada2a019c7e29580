"""The `BlobStore` contract, run identically against every backend (see conftest.py)."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from atcore.cid import CID
from pds.blobstore import (
    BlobNotFound,
    BlobStore,
    BlobTooLarge,
    RangeNotSatisfiable,
    TempBlob,
)
from pds.blobstore.contract import READ_CHUNK_SIZE

from .conftest import Clock
from .samples import jpeg_jfif, png_1x1

ALICE = "did:plc:ewvi7nxzyoun6zhxrhs64oiz"
BOB = "did:web:bob.example.com%3A8443"
LIMIT = 64 * 1024 * 1024


def random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


async def chunked(content: bytes, chunk_size: int = 65536) -> AsyncIterator[bytes]:
    for offset in range(0, len(content), chunk_size):
        yield content[offset : offset + chunk_size]


def raw_cid_bytes(content: bytes) -> bytes:
    return b"\x01\x55\x12\x20" + hashlib.sha256(content).digest()


async def upload(store: BlobStore, content: bytes, declared: str | None = None) -> TempBlob:
    return await store.put_temp(chunked(content), max_size=LIMIT, declared_mime=declared)


async def store_permanently(store: BlobStore, content: bytes, did: str = ALICE) -> CID:
    blob = await upload(store, content)
    await store.make_permanent(blob.key, did, blob.cid)
    return blob.cid


async def read(store: BlobStore, cid: CID, did: str = ALICE) -> bytes:
    async with await store.get(did, cid) as reader:
        return await reader.read_all()


async def leftover_temp_keys(store: BlobStore, clock: Clock) -> list[str]:
    clock.advance(3600)
    try:
        return await store.list_temp_older_than(timedelta(0))
    finally:
        clock.advance(-3600)


# -- uploads -----------------------------------------------------------------------------------
async def test_put_temp_hashes_the_stream(store: BlobStore) -> None:
    content = random_bytes(3 * 1024 * 1024 + 17)
    blob = await upload(store, content)
    assert blob.cid.cid_bytes == raw_cid_bytes(content)
    assert blob.size == len(content)
    assert blob.mime_type == "application/octet-stream"
    assert await store.temp_exists(blob.key)
    await store.make_permanent(blob.key, ALICE, blob.cid)
    assert await read(store, blob.cid) == content
    assert await store.size(ALICE, blob.cid) == len(content)


async def test_empty_upload_is_a_valid_blob(store: BlobStore) -> None:
    blob = await upload(store, b"")
    assert blob.cid == CID.for_raw(b"")
    assert blob.size == 0
    await store.make_permanent(blob.key, ALICE, blob.cid)
    async with await store.get(ALICE, blob.cid) as reader:
        assert (reader.size, reader.length, reader.is_partial) == (0, 0, False)
        assert await reader.read_all() == b""


async def test_upload_exactly_at_the_limit_is_accepted(store: BlobStore) -> None:
    content = random_bytes(1000)
    blob = await store.put_temp(chunked(content, 100), max_size=1000)
    assert blob.size == 1000


async def test_over_limit_stops_reading_and_leaves_nothing(store: BlobStore, clock: Clock) -> None:
    consumed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal consumed
        while True:
            consumed += 1
            yield b"\x00" * 1000

    with pytest.raises(BlobTooLarge):
        await store.put_temp(endless(), max_size=2500)
    assert consumed == 3
    assert await leftover_temp_keys(store, clock) == []


async def test_failing_upload_stream_leaves_nothing(store: BlobStore, clock: Clock) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield random_bytes(200_000)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put_temp(broken(), max_size=LIMIT)
    assert await leftover_temp_keys(store, clock) == []


async def test_cancelled_upload_leaves_nothing(store: BlobStore, clock: Clock) -> None:
    started = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield random_bytes(100_000)
        started.set()
        await asyncio.Event().wait()  # the client stops sending
        yield b"never"

    task = asyncio.create_task(store.put_temp(stalled(), max_size=LIMIT))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await leftover_temp_keys(store, clock) == []


@pytest.mark.parametrize(
    ("content", "declared", "expected"),
    [
        pytest.param(png_1x1(), "*/*", "image/png", id="png-declared-anything"),
        pytest.param(jpeg_jfif(), "image/png", "image/jpeg", id="jpeg-declared-wrong"),
        pytest.param(b"plain words", "text/plain", "text/plain", id="text-declared"),
        pytest.param(b"plain words", "*/*", "application/octet-stream", id="text-undeclared"),
    ],
)
async def test_upload_mime_type_is_sniffed(
    store: BlobStore, content: bytes, declared: str, expected: str
) -> None:
    assert (await upload(store, content, declared)).mime_type == expected


async def test_sniffing_sees_headers_split_across_chunks(store: BlobStore) -> None:
    content = png_1x1() + random_bytes(10_000)
    blob = await store.put_temp(chunked(content, 3), max_size=LIMIT)
    assert blob.mime_type == "image/png"


# -- making blobs permanent --------------------------------------------------------------------
async def test_make_permanent_is_idempotent(store: BlobStore) -> None:
    content = random_bytes(5000)
    first, second = await upload(store, content), await upload(store, content)
    assert first.key != second.key
    assert first.cid == second.cid
    await store.make_permanent(first.key, ALICE, first.cid)
    await store.make_permanent(first.key, ALICE, first.cid)  # a retry after success
    await store.make_permanent(second.key, ALICE, second.cid)  # same blob uploaded twice
    assert not await store.temp_exists(first.key)
    assert not await store.temp_exists(second.key)
    assert await read(store, first.cid) == content


async def test_make_permanent_of_an_unknown_key_fails(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.make_permanent("a" * 32, ALICE, CID.for_raw(b"nothing"))


@pytest.mark.parametrize("key", ["../../etc/passwd", "", "A" * 32, "tmp/" + "a" * 32])
async def test_foreign_temp_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="temporary blob key"):
        await store.delete_temp(key)
    with pytest.raises(ValueError, match="temporary blob key"):
        await store.make_permanent(key, ALICE, CID.for_raw(b"x"))


@pytest.mark.parametrize("did", ["../escape", "did:plc:a/../../b", "plc:abc"])
async def test_malformed_dids_are_refused(store: BlobStore, did: str) -> None:
    with pytest.raises(ValueError, match="not a DID"):
        await store.exists(did, CID.for_raw(b"x"))


async def test_blobs_belong_to_one_did(store: BlobStore) -> None:
    cid = await store_permanently(store, b"alice's photo", ALICE)
    assert await store.exists(ALICE, cid)
    assert not await store.exists(BOB, cid)
    with pytest.raises(BlobNotFound):
        await store.get(BOB, cid)
    bob_cid = await store_permanently(store, b"bob's photo", BOB)
    assert await read(store, bob_cid, BOB) == b"bob's photo"


# -- reading -----------------------------------------------------------------------------------
SIZE = 600_000  # spans several read chunks


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        pytest.param(0, None, slice(0, SIZE), id="whole"),
        pytest.param(0, 100, slice(0, 100), id="first-bytes"),
        pytest.param(250_000, 520_000, slice(250_000, 520_000), id="middle"),
        pytest.param(-1000, None, slice(SIZE - 1000, SIZE), id="suffix"),
        pytest.param(590_000, None, slice(590_000, SIZE), id="open-ended"),
        pytest.param(SIZE - 1, SIZE + 500, slice(SIZE - 1, SIZE), id="end-past-blob-is-clipped"),
        pytest.param(-(SIZE + 5), None, slice(0, SIZE), id="suffix-longer-than-blob"),
    ],
)
async def test_range_reads(
    store: BlobStore, start: int, end: int | None, expected: slice[int, int, None]
) -> None:
    content = random_bytes(SIZE)
    cid = await store_permanently(store, content)
    async with await store.get(ALICE, cid, start=start, end=end) as reader:
        assert (reader.start, reader.end, reader.size) == (expected.start, expected.stop, SIZE)
        assert reader.is_partial == (expected != slice(0, SIZE))
        assert reader.content_range == f"bytes {expected.start}-{expected.stop - 1}/{SIZE}"
        chunks = [chunk async for chunk in reader]
    assert b"".join(chunks) == content[expected]
    assert all(0 < len(chunk) <= READ_CHUNK_SIZE for chunk in chunks)


@pytest.mark.parametrize(("start", "end"), [(SIZE, None), (SIZE + 10, SIZE + 20), (SIZE, SIZE + 1)])
async def test_range_past_the_end_is_not_satisfiable(
    store: BlobStore, start: int, end: int | None
) -> None:
    cid = await store_permanently(store, random_bytes(SIZE))
    with pytest.raises(RangeNotSatisfiable) as raised:
        await store.get(ALICE, cid, start=start, end=end)
    assert raised.value.size == SIZE


async def test_suffix_of_an_empty_blob_is_not_satisfiable(store: BlobStore) -> None:
    cid = await store_permanently(store, b"")
    with pytest.raises(RangeNotSatisfiable):
        await store.get(ALICE, cid, start=-10)


@pytest.mark.parametrize(("start", "end"), [(10, 10), (10, 5), (-5, 10)])
async def test_malformed_ranges_are_refused(store: BlobStore, start: int, end: int) -> None:
    cid = await store_permanently(store, b"0123456789abcdef")
    with pytest.raises(ValueError, match="range"):
        await store.get(ALICE, cid, start=start, end=end)


async def test_reader_can_stop_early(store: BlobStore) -> None:
    content = random_bytes(SIZE)
    cid = await store_permanently(store, content)
    async with await store.get(ALICE, cid) as reader:
        async for chunk in reader:
            assert chunk == content[: len(chunk)]
            break
    assert await read(store, cid) == content  # nothing was disturbed


async def test_missing_blobs(store: BlobStore) -> None:
    cid = CID.for_raw(b"never uploaded")
    assert not await store.exists(ALICE, cid)
    with pytest.raises(BlobNotFound):
        await store.get(ALICE, cid)
    with pytest.raises(BlobNotFound):
        await store.size(ALICE, cid)


# -- deleting ----------------------------------------------------------------------------------
async def test_delete(store: BlobStore) -> None:
    cid = await store_permanently(store, b"to be deleted")
    await store.delete(ALICE, cid)
    assert not await store.exists(ALICE, cid)
    with pytest.raises(BlobNotFound):
        await store.get(ALICE, cid)
    await store.delete(ALICE, cid)  # deleting again is fine


async def test_delete_many(store: BlobStore) -> None:
    cids = [await store_permanently(store, f"blob {n}".encode()) for n in range(3)]
    await store.delete_many(ALICE, [cids[0], cids[2], CID.for_raw(b"absent")])
    assert [await store.exists(ALICE, cid) for cid in cids] == [False, True, False]
    await store.delete_many(ALICE, [])


async def test_delete_temp(store: BlobStore) -> None:
    blob = await upload(store, b"abandoned")
    await store.delete_temp(blob.key)
    assert not await store.temp_exists(blob.key)
    await store.delete_temp(blob.key)
    with pytest.raises(BlobNotFound):
        await store.make_permanent(blob.key, ALICE, blob.cid)


async def test_temp_blobs_are_listed_once_old_enough(store: BlobStore, clock: Clock) -> None:
    first, second = await upload(store, b"one"), await upload(store, b"two")
    kept = await upload(store, b"kept")
    await store.make_permanent(kept.key, ALICE, kept.cid)
    assert await store.list_temp_older_than(timedelta(minutes=10)) == []
    clock.advance(30 * 60)
    assert sorted(await store.list_temp_older_than(timedelta(minutes=10))) == sorted(
        [first.key, second.key]
    )
    assert await store.list_temp_older_than(timedelta(hours=1)) == []


# -- takedowns ---------------------------------------------------------------------------------
async def test_quarantine_hides_and_unquarantine_restores(store: BlobStore) -> None:
    cid = await store_permanently(store, b"disputed")
    await store.quarantine(ALICE, cid)
    await store.quarantine(ALICE, cid)  # idempotent
    assert not await store.exists(ALICE, cid)
    with pytest.raises(BlobNotFound):
        await store.get(ALICE, cid)
    await store.unquarantine(ALICE, cid)
    await store.unquarantine(ALICE, cid)
    assert await read(store, cid) == b"disputed"


async def test_quarantine_of_a_missing_blob_fails(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await store.quarantine(ALICE, CID.for_raw(b"absent"))
