"""Records pin blobs: temp blobs become permanent before the commit, unpinned ones are removed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from atcore.cid import CID
from atcore.datajson import BlobRef
from pds.blobstore import DiskBlobStore, TempBlob
from pds.db import schema
from pds.repo.errors import BlobNotFound, InvalidWrite
from tests.pds.repo_support import RepoEnv, make_env

COLLECTION = "com.example.photo"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DiskBlobStore]:
    disk = DiskBlobStore(tmp_path / "blobs")
    yield disk
    await disk.close()


@pytest.fixture
async def env(tmp_path: Path, store: DiskBlobStore) -> AsyncIterator[RepoEnv]:
    async for value in make_env(tmp_path, blobstore=store):
        yield value


async def upload(env: RepoEnv, store: DiskBlobStore, did: str, data: bytes) -> TempBlob:
    """What uploadBlob does: a temp file plus a blob row holding its temp key."""

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    temp = await store.put_temp(chunks(), max_size=1 << 20)
    async with env.db.transaction() as conn:
        await conn.execute(
            schema.blob.insert().values(
                did=did,
                cid=str(temp.cid),
                mime_type="image/png",
                size=temp.size,
                temp_key=temp.key,
                created_at=0,
            )
        )
    return temp


def photo(temp: TempBlob, **overrides: Any) -> dict[str, Any]:
    ref = BlobRef(temp.cid, overrides.get("mime", "image/png"), overrides.get("size", temp.size))
    return {"image": ref.to_json(), "alt": "a photo"}


async def blob_row(env: RepoEnv, did: str, cid: CID) -> tuple[str | None] | None:
    async with env.db.read() as conn:
        row = (
            await conn.execute(
                select(schema.blob.c.temp_key).where(
                    schema.blob.c.did == did, schema.blob.c.cid == str(cid)
                )
            )
        ).first()
    return None if row is None else (row[0],)


async def test_referenced_blob_becomes_permanent_and_goes_with_its_last_record(
    env: RepoEnv, store: DiskBlobStore
) -> None:
    did = await env.new_account("photographer")
    temp = await upload(env, store, did, PNG)
    first = await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "one", photo(temp))])
    assert first.commit is not None
    assert await blob_row(env, did, temp.cid) == (None,)
    assert await store.exists(did, temp.cid)
    assert not await store.temp_exists(temp.key)
    await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "two", photo(temp))])
    await env.writer.apply_writes(did, [env.prep.delete(did, COLLECTION, "one")])
    assert await blob_row(env, did, temp.cid) == (None,)  # "two" still pins it
    await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "two", {"alt": "none"})])
    await env.writer.close()
    assert await blob_row(env, did, temp.cid) is None
    assert not await store.exists(did, temp.cid)


async def test_missing_or_mismatched_blob_refuses_the_write(
    env: RepoEnv, store: DiskBlobStore
) -> None:
    did = await env.new_account("careless")
    other = await env.new_account("owner")
    temp = await upload(env, store, other, PNG)  # uploaded to someone else's repo
    with pytest.raises(BlobNotFound, match="Could not find blob"):
        await env.writer.apply_writes(did, [env.prep.put(did, COLLECTION, "x", photo(temp))])
    mine = await upload(env, store, did, PNG)
    with pytest.raises(InvalidWrite) as wrong_size:
        await env.writer.apply_writes(
            did, [env.prep.put(did, COLLECTION, "x", photo(mine, size=3))]
        )
    assert wrong_size.value.error == "InvalidSize"
    with pytest.raises(InvalidWrite) as wrong_mime:
        await env.writer.apply_writes(
            did, [env.prep.put(did, COLLECTION, "x", photo(mine, mime="image/jpeg"))]
        )
    assert wrong_mime.value.error == "InvalidMimeType"
    assert await blob_row(env, did, mine.cid) == (mine.key,)
    assert await store.temp_exists(mine.key)
