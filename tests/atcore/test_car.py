"""CAR v1: round trips through every reader and writer, malformed archives, hostile lengths."""

from __future__ import annotations

import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from atcore import dagcbor
from atcore.car import (
    AsyncCarReader,
    CarError,
    CarReader,
    car_chunks,
    encode_car_header,
    iter_car_blocks,
    read_car,
    read_car_header,
    write_car,
)
from atcore.cid import CID, encode_varint
from tests.atcore.strategies import data_model_values


def _blocks(count: int) -> list[tuple[CID, bytes]]:
    out = []
    for index in range(count):
        cid, block = dagcbor.cid_of({"index": index, "pad": "x" * (index * 37 % 300)})
        out.append((cid, block))
    out.append((CID.for_raw(b"a blob"), b"a blob"))
    return out


BLOCKS = _blocks(40)
ROOT = BLOCKS[0][0]
CAR = write_car([ROOT], BLOCKS)


def _section(cid: CID, block: bytes) -> bytes:
    return encode_varint(len(cid.cid_bytes) + len(block)) + cid.cid_bytes + block


def _with_header(header: Any, body: bytes = b"") -> bytes:
    encoded = dagcbor.encode(header)
    return encode_varint(len(encoded)) + encoded + body


# -- round trips ------------------------------------------------------------------------------


def test_read_car_returns_roots_and_blocks() -> None:
    roots, blocks = read_car(CAR)
    assert roots == [ROOT]
    assert blocks == dict(BLOCKS)


def test_iter_car_blocks_keeps_file_order() -> None:
    assert list(iter_car_blocks(CAR)) == BLOCKS
    assert list(iter_car_blocks(memoryview(CAR))) == BLOCKS


def test_header_parsing_reports_first_section_offset() -> None:
    roots, offset = read_car_header(CAR)
    assert roots == [ROOT]
    assert CAR[offset:].startswith(_section(*BLOCKS[0]))
    assert CAR.startswith(encode_car_header([ROOT]))


@pytest.mark.parametrize("read_size", [1, 7, 64, 100_000])
def test_stream_reader_handles_any_read_size(read_size: int) -> None:
    reader = CarReader(io.BytesIO(CAR), read_size=read_size)
    assert reader.roots == [ROOT]
    assert list(reader) == BLOCKS


@pytest.mark.parametrize("chunk_size", [1, 13, 4096])
def test_car_chunks_concatenate_to_write_car(chunk_size: int) -> None:
    chunks = list(car_chunks([ROOT], BLOCKS, chunk_size=chunk_size))
    assert b"".join(chunks) == CAR
    assert all(chunk for chunk in chunks)


def test_car_chunks_are_bounded_by_chunk_size_plus_one_section() -> None:
    biggest = max(len(_section(cid, block)) for cid, block in BLOCKS)
    for chunk in car_chunks([ROOT], BLOCKS, chunk_size=500):
        assert len(chunk) < 500 + biggest


async def _chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunk_size", [1, 9, 100_000])
async def test_async_reader(chunk_size: int) -> None:
    reader = AsyncCarReader(_chunked(CAR, chunk_size))
    assert await reader.read_header() == [ROOT]
    assert [item async for item in reader] == BLOCKS


async def test_async_reader_reads_header_on_iteration() -> None:
    reader = AsyncCarReader(_chunked(CAR, 50))
    assert [item async for item in reader] == BLOCKS


async def test_async_reader_rejects_truncation() -> None:
    reader = AsyncCarReader(_chunked(CAR[:-3], 50))
    with pytest.raises(CarError):
        async for _item in reader:
            pass


def test_empty_roots_and_no_blocks() -> None:
    data = write_car([], [])
    assert read_car(data) == ([], {})
    assert list(CarReader(io.BytesIO(data))) == []


def test_duplicate_sections_collapse() -> None:
    cid, block = BLOCKS[1]
    data = write_car([ROOT], [(cid, block), (cid, block)])
    assert read_car(data)[1] == {cid: block}
    assert len(list(iter_car_blocks(data))) == 2


def test_non_blessed_cids_are_carried() -> None:
    v0 = CID.parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG")
    identity = CID.from_bytes(b"\x01\x55\x00\x03abc")
    data = write_car([v0], [(identity, b"abc")])
    assert read_car(data, verify=False) == ([v0], {identity: b"abc"})
    with pytest.raises(CarError):
        read_car(data)  # an identity multihash cannot be checked by sha-256 verification


# -- verification and malformed archives ------------------------------------------------------


def test_tampered_block_fails_verification() -> None:
    cid, block = BLOCKS[2]
    data = write_car([ROOT], [(cid, block[:-1] + b"\x00")])
    with pytest.raises(CarError, match="does not match"):
        read_car(data)
    assert read_car(data, verify=False)[1] == {cid: block[:-1] + b"\x00"}
    with pytest.raises(CarError):
        list(CarReader(io.BytesIO(data)))


def test_oversized_section_is_refused_before_reading_it() -> None:
    header = encode_car_header([ROOT])
    hostile = header + encode_varint(2**40)  # claims a terabyte, supplies nothing
    with pytest.raises(CarError, match="limit"):
        read_car(hostile)
    with pytest.raises(CarError):
        list(CarReader(io.BytesIO(hostile)))
    cid, block = BLOCKS[3]
    with pytest.raises(CarError, match="limit"):
        read_car(header + _section(cid, block), max_block_size=len(block))


VALID_HEADER = {"version": 1, "roots": [ROOT]}
MALFORMED = {
    "empty": b"",
    "header length only": encode_varint(10),
    "zero header length": b"\x00",
    "huge header length": encode_varint(2**30) + b"\xa0",
    "non-minimal header varint": b"\x80\x00",
    "over-long varint": b"\xff" * 10,
    "header not DAG-CBOR": encode_varint(3) + b"\xff\xff\xff",
    "header not a map": _with_header([1]),
    "version 2": _with_header({"version": 2, "roots": [ROOT]}),
    "version missing": _with_header({"roots": [ROOT]}),
    "version a string": _with_header({"version": "1", "roots": [ROOT]}),
    "version a bool": _with_header({"version": True, "roots": [ROOT]}),
    "roots missing": _with_header({"version": 1}),
    "roots not a list": _with_header({"version": 1, "roots": ROOT}),
    "root not a CID": _with_header({"version": 1, "roots": [str(ROOT)]}),
    "truncated section": CAR[:-1],
    "truncated section length": _with_header(VALID_HEADER, b"\x80"),
    "zero-length section": _with_header(VALID_HEADER, b"\x00"),
    "section with bad CID": _with_header(VALID_HEADER, b"\x05\x02\x71\x12\x20\x00"),
    "section shorter than its CID": _with_header(VALID_HEADER, b"\x04\x01\x71\x12\x20"),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=list(MALFORMED))
def test_malformed_archives_raise_car_error(data: bytes) -> None:
    with pytest.raises(CarError):
        read_car(data)
    with pytest.raises(CarError):
        list(CarReader(io.BytesIO(data), read_size=3))


# -- properties -------------------------------------------------------------------------------


@given(st.lists(data_model_values(max_leaves=8), max_size=8), st.integers(0, 3))
def test_car_round_trip(values: list[Any], root_count: int) -> None:
    blocks = [dagcbor.cid_of(value) for value in values]
    roots = [cid for cid, _block in blocks[:root_count]]
    data = write_car(roots, blocks)
    assert read_car(data) == (roots, dict(blocks))
    assert list(iter_car_blocks(data)) == blocks
    reader = CarReader(io.BytesIO(data), read_size=5)
    assert (reader.roots, list(reader)) == (roots, blocks)
    assert b"".join(car_chunks(roots, blocks, chunk_size=16)) == data


@given(st.binary(max_size=200), st.booleans())
def test_random_bytes_raise_only_car_error(data: bytes, after_valid_header: bool) -> None:
    if after_valid_header:  # otherwise almost every input dies in the header
        data = encode_car_header([ROOT]) + data
    with contextlib.suppress(CarError):
        read_car(data)
    with contextlib.suppress(CarError):
        list(CarReader(io.BytesIO(data), read_size=4))


@given(st.integers(0, len(CAR) - 1), st.integers(1, 255))
def test_corrupted_archive_raises_only_car_error(position: int, xor: int) -> None:
    data = bytearray(CAR)
    data[position] ^= xor
    try:
        roots, blocks = read_car(bytes(data))
    except CarError:
        return
    # A flip that still parses hit a root CID or a CID's codec byte (the hash still matches):
    # block contents are all intact and every block still hashes to its CID.
    assert set(blocks.values()) == {block for _cid, block in BLOCKS}
    assert all(cid.verifies(block) for cid, block in blocks.items())
    assert len(roots) == 1


def _section_boundaries() -> dict[int, int]:
    """Offsets where a section ends in CAR, mapped to how many blocks precede them."""
    offset = len(encode_car_header([ROOT]))
    boundaries = {offset: 0}
    for count, (cid, block) in enumerate(BLOCKS, start=1):
        offset += len(_section(cid, block))
        boundaries[offset] = count
    return boundaries


@given(st.integers(0, len(CAR)))
def test_truncation_is_detected_unless_on_a_section_boundary(cut: int) -> None:
    boundaries = _section_boundaries()
    if cut in boundaries:  # a prefix ending between sections is itself a complete CAR
        assert list(iter_car_blocks(CAR[:cut])) == BLOCKS[: boundaries[cut]]
        return
    with pytest.raises(CarError):
        read_car(CAR[:cut])
    with pytest.raises(CarError):
        list(CarReader(io.BytesIO(CAR[:cut]), read_size=11))


@given(st.lists(st.integers(min_value=0, max_value=20_000), min_size=1, max_size=8))
def test_whole_buffer_reader_agrees_with_streaming_reader_for_any_section_length(
    sizes: list[int],
) -> None:
    # Section lengths from one-byte to three-byte varints take different paths in `read_car`.
    blocks = [(CID.for_raw(bytes([i % 251]) * size), bytes([i % 251]) * size)
              for i, size in enumerate(sizes)]  # fmt: skip
    data = write_car([blocks[0][0]], blocks)
    roots, found = read_car(data)
    assert roots == [blocks[0][0]]
    assert found == dict(CarReader(io.BytesIO(data)))


def test_non_minimal_two_byte_section_length_is_refused() -> None:
    cid, block = BLOCKS[1]
    body = cid.cid_bytes + block
    assert len(body) < 0x80
    padded = bytes([0x80 | len(body), 0x00]) + body  # same value, one byte too many
    with pytest.raises(CarError, match="minimal"):
        read_car(encode_car_header([cid]) + padded)
