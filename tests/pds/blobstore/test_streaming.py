from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pds.blobstore import BlobTooLarge
from pds.blobstore.streaming import UploadMeter, batches, new_temp_key


async def from_list(chunks: Sequence[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def collect(chunks: Sequence[bytes], meter: UploadMeter, batch_size: int) -> list[bytes]:
    return [batch async for batch in batches(from_list(chunks), meter, batch_size=batch_size)]


@given(
    chunks=st.lists(st.binary(max_size=300), max_size=40),
    batch_size=st.integers(min_value=1, max_value=1000),
)
def test_batches_regroup_without_changing_the_bytes(chunks: list[bytes], batch_size: int) -> None:
    meter = UploadMeter(max_size=1 << 20)
    out = asyncio.run(collect(chunks, meter, batch_size))
    assert b"".join(out) == b"".join(chunks)
    assert all(out), "no empty batch is ever yielded"
    assert all(len(batch) >= batch_size for batch in out[:-1])
    # A batch only grows past the target by (less than) the chunk that completed it.
    longest_chunk = max((len(chunk) for chunk in chunks), default=0)
    assert all(len(batch) < batch_size + longest_chunk for batch in out)
    assert meter.size == sum(map(len, chunks))


@given(content=st.binary(max_size=5000), cut=st.integers(min_value=0, max_value=5000))
def test_meter_hashes_batches_like_the_whole(content: bytes, cut: int) -> None:
    meter = UploadMeter(max_size=len(content))
    for piece in (content[:cut], content[cut:]):
        meter.admit(piece)
        meter.digest(piece)
    blob = meter.temp_blob(new_temp_key(), None)
    assert blob.cid.cid_bytes == b"\x01\x55\x12\x20" + hashlib.sha256(content).digest()
    assert blob.size == len(content)


def test_limit_is_enforced_when_the_chunk_arrives() -> None:
    meter = UploadMeter(max_size=10)
    consumed: list[bytes] = []

    async def source() -> AsyncIterator[bytes]:
        for _ in range(100):
            consumed.append(b"abcd")
            yield b"abcd"

    async def drain() -> None:
        async for _ in batches(source(), meter, batch_size=1 << 20):
            pass

    with pytest.raises(BlobTooLarge) as raised:
        asyncio.run(drain())
    assert raised.value.max_size == 10
    assert len(consumed) == 3  # 12 bytes: refused at the first chunk past the limit


def test_temp_keys_are_distinct_base32() -> None:
    keys = {new_temp_key() for _ in range(200)}
    assert len(keys) == 200
    assert all(re.fullmatch(r"[a-z2-7]{32}", key) for key in keys)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="max_size"):
        UploadMeter(max_size=-1)
    with pytest.raises(ValueError, match="batch_size"):
        asyncio.run(collect([b"x"], UploadMeter(max_size=1), 0))
