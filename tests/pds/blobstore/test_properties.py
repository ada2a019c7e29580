"""However an upload is split into chunks, every store derives the same CID and size as hashing
the content whole, and gives the content back byte for byte."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pds.blobstore import BlobStore, DiskBlobStore

from .conftest import BACKENDS, make_s3_store, new_bucket
from .test_contract import ALICE


@pytest.fixture(scope="module", params=BACKENDS)
def shared_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[BlobStore]:
    """One store for all examples (stores keep no event-loop state, so each example may run
    in its own loop). The disk store writes in tiny batches so batch boundaries get exercised."""
    store: BlobStore
    if request.param == "disk":
        store = DiskBlobStore(Path(tmp_path_factory.mktemp("blobs")), write_batch_size=64)
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        store = make_s3_store(endpoint, new_bucket(request.getfixturevalue("s3_admin")))
    yield store
    asyncio.run(store.close())


def split(content: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(cut, len(content)) for cut in cuts})
    bounds = [0, *points, len(content)]
    return [content[a:b] for a, b in pairwise(bounds)]


async def from_list(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def round_trip(store: BlobStore, chunks: list[bytes]) -> tuple[bytes, bytes, int]:
    blob = await store.put_temp(from_list(chunks), max_size=1 << 20)
    await store.make_permanent(blob.key, ALICE, blob.cid)
    async with await store.get(ALICE, blob.cid) as reader:
        stored = await reader.read_all()
    await store.delete(ALICE, blob.cid)
    return blob.cid.cid_bytes, stored, blob.size


@given(
    content=st.binary(max_size=3000),
    cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=30),
)
def test_chunking_never_changes_the_blob(
    shared_store: BlobStore, content: bytes, cuts: list[int]
) -> None:
    chunks = split(content, cuts)
    assert b"".join(chunks) == content
    cid_bytes, stored, size = asyncio.run(round_trip(shared_store, chunks))
    assert cid_bytes == b"\x01\x55\x12\x20" + hashlib.sha256(content).digest()
    assert size == len(content)
    assert stored == content
