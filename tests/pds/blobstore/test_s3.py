"""S3-specific behaviour, checked by looking into the bucket through a separate client."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

from pds.blobstore import BlobTooLarge, UploadTimedOut
from pds.blobstore.s3 import PART_SIZE, S3BlobStore

from .conftest import make_s3_store, new_bucket
from .test_contract import ALICE, chunked, random_bytes

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024


@pytest.fixture
async def s3_store(s3_endpoint: str, s3_admin: S3Client) -> AsyncIterator[S3BlobStore]:
    store = make_s3_store(s3_endpoint, new_bucket(s3_admin))
    yield store
    await store.close()


def object_keys(s3_admin: S3Client, bucket: str) -> list[str]:
    listing = s3_admin.list_objects_v2(Bucket=bucket)
    return sorted(entry["Key"] for entry in listing.get("Contents", []))


def open_multipart_uploads(s3_admin: S3Client, bucket: str) -> list[str]:
    return [
        upload["Key"]
        for upload in s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


async def test_large_upload_goes_through_multipart(
    s3_store: S3BlobStore, s3_admin: S3Client
) -> None:
    content = random_bytes(20 * MIB + 123)
    blob = await s3_store.put_temp(chunked(content, 256 * 1024), max_size=32 * MIB)
    assert blob.cid.cid_bytes == b"\x01\x55\x12\x20" + hashlib.sha256(content).digest()
    assert blob.size == len(content)
    # S3 marks an object assembled from N parts with an ETag ending in "-N": 8 + 8 + 4 MiB.
    head = s3_admin.head_object(Bucket=s3_store.bucket, Key=f"tmp/{blob.key}")
    assert head["ETag"].strip('"').endswith("-3")
    assert head["ContentLength"] == len(content)
    await s3_store.make_permanent(blob.key, ALICE, blob.cid)
    async with await s3_store.get(ALICE, blob.cid) as reader:
        digest = hashlib.sha256()
        async for chunk in reader:
            digest.update(chunk)
    assert digest.digest() == hashlib.sha256(content).digest()


async def test_small_upload_is_a_single_put(s3_store: S3BlobStore, s3_admin: S3Client) -> None:
    blob = await s3_store.put_temp(chunked(random_bytes(PART_SIZE - 1)), max_size=PART_SIZE)
    head = s3_admin.head_object(Bucket=s3_store.bucket, Key=f"tmp/{blob.key}")
    assert "-" not in head["ETag"]


async def test_over_limit_multipart_upload_is_aborted(
    s3_store: S3BlobStore, s3_admin: S3Client
) -> None:
    # Two parts are already in S3 when the limit is crossed at 17 MiB.
    with pytest.raises(BlobTooLarge):
        await s3_store.put_temp(chunked(random_bytes(20 * MIB), MIB), max_size=17 * MIB)
    assert open_multipart_uploads(s3_admin, s3_store.bucket) == []
    assert object_keys(s3_admin, s3_store.bucket) == []


async def test_slow_upload_times_out_and_is_removed(s3_endpoint: str, s3_admin: S3Client) -> None:
    bucket = new_bucket(s3_admin)
    store = make_s3_store(s3_endpoint, bucket, upload_timeout=timedelta(milliseconds=300))

    async def trickle() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b"x" * 1000
            await asyncio.sleep(0.05)

    try:
        with pytest.raises(UploadTimedOut):
            await store.put_temp(trickle(), max_size=MIB)
    finally:
        await store.close()
    assert object_keys(s3_admin, bucket) == []


async def test_key_layout_matches_the_reference_pds(
    s3_store: S3BlobStore, s3_admin: S3Client
) -> None:
    blob = await s3_store.put_temp(chunked(b"layout"), max_size=MIB)
    assert object_keys(s3_admin, s3_store.bucket) == [f"tmp/{blob.key}"]
    await s3_store.make_permanent(blob.key, ALICE, blob.cid)
    assert object_keys(s3_admin, s3_store.bucket) == [f"blocks/{ALICE}/{blob.cid}"]
    await s3_store.quarantine(ALICE, blob.cid)
    assert object_keys(s3_admin, s3_store.bucket) == [f"quarantine/{ALICE}/{blob.cid}"]
