"""CAR v1 (Content Addressable aRchive) reading and writing, whole-buffer and streaming.

Layout: `varint(len(header)) header` where the header is DAG-CBOR `{"version": 1, "roots": [CID]}`,
then any number of sections `varint(len(cid) + len(block)) cid block`. atproto uses CAR files for
repository exports (`com.atproto.sync.getRepo`), firehose `#commit` diffs and block fetches.

Readers check, by default, that every block hashes to its CID (`verify=True`): a CAR usually comes
from an untrusted peer. Lengths are bounded (`max_block_size`) before anything is allocated, so a
hostile length prefix cannot make a streaming reader buffer gigabytes.

Errors: `CarError` (a `ValueError`) for every malformed, truncated or unverifiable archive.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import BinaryIO, Final

from atcore import dagcbor
from atcore.cid import CID, CidError, encode_varint

MAX_HEADER_SIZE: Final = 64 * 1024
# Records are capped at ~1 MiB and MST nodes are far smaller; 4 MiB leaves headroom for anything
# a conforming repo holds while refusing absurd section lengths outright.
DEFAULT_MAX_BLOCK_SIZE: Final = 4 * 1024 * 1024
_MAX_VARINT_BYTES: Final = 9
_READ_SIZE: Final = 64 * 1024
_BLESSED_PREFIXES: Final = (b"\x01\x71\x12\x20", b"\x01\x55\x12\x20")
_BLESSED_CID_LEN: Final = 36
DEFAULT_CHUNK_SIZE: Final = 64 * 1024


class CarError(ValueError):
    """A CAR archive is malformed, truncated, over a size limit, or a block fails verification."""


# -- shared parsing ---------------------------------------------------------------------------


def _read_varint(buf: bytes | bytearray | memoryview, pos: int) -> tuple[int, int] | None:
    """(value, next position) of the varint at `pos`, or None when `buf` ends inside it."""
    end = len(buf)
    if pos < end and buf[pos] < 0x80:  # fast path: one-byte varint
        return buf[pos], pos + 1
    value = 0
    for index in range(_MAX_VARINT_BYTES):
        if pos >= end:
            return None
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << (7 * index)
        if not byte & 0x80:
            if byte == 0 and index:
                raise CarError("varint is not minimally encoded")
            return value, pos
    raise CarError("varint longer than 9 bytes")


def _parse_header(header: bytes | bytearray | memoryview) -> list[CID]:
    try:
        value = dagcbor.decode(bytes(header))
    except dagcbor.DagCborError as exc:
        raise CarError(f"CAR header is not valid DAG-CBOR: {exc}") from exc
    if not isinstance(value, dict):
        raise CarError("CAR header is not a map")
    version = value.get("version")
    if type(version) is not int or version != 1:
        raise CarError(f"unsupported CAR version {version!r} (only CARv1 is supported)")
    roots = value.get("roots")
    if not isinstance(roots, list) or not all(isinstance(root, CID) for root in roots):
        raise CarError("CAR header 'roots' must be a list of CIDs")
    return roots


def _split_section(
    buf: bytes | memoryview, start: int, end: int, verify: bool
) -> tuple[CID, bytes]:
    """Split the section body `buf[start:end]` into (CID, block), verifying the hash if asked."""
    cid_end = start + _BLESSED_CID_LEN
    if cid_end <= end and buf[start : start + 4] in _BLESSED_PREFIXES:
        # Fast path, nearly every atproto block: a 36-byte CIDv1 with a sha-256 digest.
        cid = CID(bytes(buf[start:cid_end]))
        block = bytes(buf[cid_end:end])
        if verify and hashlib.sha256(block).digest() != cid.cid_bytes[4:]:
            raise CarError(f"block does not match its CID {cid}")
        return cid, block
    section = bytes(buf[start:end])
    try:
        cid, block_start = CID.read_from(section, 0)
    except CidError as exc:
        raise CarError(f"invalid CID in CAR section: {exc}") from exc
    block = section[block_start:]
    if verify:
        try:
            matches = cid.verifies(block)
        except CidError as exc:
            raise CarError(str(exc)) from exc
        if not matches:
            raise CarError(f"block does not match its CID {cid}")
    return cid, block


def _check_section_length(length: int, max_block_size: int) -> None:
    if length == 0:
        raise CarError("empty CAR section")
    if length > max_block_size:
        raise CarError(f"CAR section of {length} bytes exceeds the {max_block_size}-byte limit")


# -- whole-buffer reading ---------------------------------------------------------------------


def read_car_header(data: bytes | bytearray | memoryview) -> tuple[list[CID], int]:
    """Parse the header of an in-memory CAR; returns (roots, offset of the first section)."""
    parsed = _read_varint(data, 0)
    if parsed is None:
        raise CarError("truncated CAR header length")
    length, pos = parsed
    if length == 0 or length > MAX_HEADER_SIZE:
        raise CarError(f"implausible CAR header length {length}")
    if length > len(data) - pos:
        raise CarError("truncated CAR header")
    return _parse_header(memoryview(data)[pos : pos + length]), pos + length


def _iter_sections(
    data: bytes, pos: int, verify: bool, max_block_size: int
) -> Iterator[tuple[CID, bytes]]:
    end = len(data)
    while pos < end:
        parsed = _read_varint(data, pos)
        if parsed is None:
            raise CarError("truncated CAR section length")
        length, pos = parsed
        _check_section_length(length, max_block_size)
        if length > end - pos:
            raise CarError("truncated CAR section")
        yield _split_section(data, pos, pos + length, verify)
        pos += length


def iter_car_blocks(
    data: bytes | bytearray | memoryview,
    *,
    verify: bool = True,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
) -> Iterator[tuple[CID, bytes]]:
    """Yield (CID, block) for each section of an in-memory CAR, in file order."""
    _roots, pos = read_car_header(data)
    yield from _iter_sections(bytes(data), pos, verify, max_block_size)


def read_car(
    data: bytes | bytearray | memoryview,
    *,
    verify: bool = True,
    max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
) -> tuple[list[CID], dict[CID, bytes]]:
    """Parse a whole CAR into (roots, {CID: block}); duplicate sections collapse into one."""
    roots, pos = read_car_header(data)
    return roots, _read_sections(bytes(data), pos, verify, max_block_size)


def _read_sections(data: bytes, pos: int, verify: bool, max_block_size: int) -> dict[CID, bytes]:
    """`dict(_iter_sections(...))`, inlined for the common shape: this runs for every firehose
    commit a consumer verifies. A section whose length prefix is one or two bytes and whose CID
    is a blessed 36-byte CIDv1 is split here; anything else takes the general path."""
    blocks: dict[CID, bytes] = {}
    end = len(data)
    sha256 = hashlib.sha256
    while pos < end:
        first = data[pos]
        if first < 0x80:
            length, start = first, pos + 1
        elif pos + 1 < end and 0 < data[pos + 1] < 0x80:
            length, start = (first & 0x7F) | (data[pos + 1] << 7), pos + 2
        else:
            parsed = _read_varint(data, pos)
            if parsed is None:
                raise CarError("truncated CAR section length")
            length, start = parsed
        _check_section_length(length, max_block_size)
        stop = start + length
        if stop > end:
            raise CarError("truncated CAR section")
        cid_end = start + _BLESSED_CID_LEN
        if cid_end <= stop and data[start : start + 4] in _BLESSED_PREFIXES:
            cid_bytes = data[start:cid_end]
            block = data[cid_end:stop]
            if verify and sha256(block).digest() != cid_bytes[4:]:
                raise CarError(f"block does not match its CID {CID(cid_bytes)}")
            blocks[CID(cid_bytes)] = block
        else:
            cid, block = _split_section(data, start, stop, verify)
            blocks[cid] = block
        pos = stop
    return blocks


# -- incremental reading ----------------------------------------------------------------------


class _CarParser:
    """Sans-IO incremental parser: feed it bytes, take out the header and complete blocks."""

    def __init__(self, *, verify: bool, max_block_size: int) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._verify = verify
        self._max_block_size = max_block_size
        self.roots: list[CID] | None = None

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        if self._pos and self._pos * 2 >= len(self._buf):
            del self._buf[: self._pos]  # compact once the consumed prefix dominates
            self._pos = 0
        self._buf += chunk

    def _take_frame(self, limit: int) -> tuple[int, int] | None:
        """Bounds of the next complete length-prefixed frame in the buffer, if it has arrived."""
        parsed = _read_varint(self._buf, self._pos)
        if parsed is None:
            return None
        length, start = parsed
        if length == 0 or length > limit:
            raise CarError(f"implausible CAR length prefix {length} (limit {limit})")
        if length > len(self._buf) - start:
            return None
        self._pos = start + length
        return start, start + length

    def take_header(self) -> bool:
        """Parse the header if enough bytes have arrived; returns whether `roots` is set."""
        if self.roots is None:
            frame = self._take_frame(MAX_HEADER_SIZE)
            if frame is None:
                return False
            start, end = frame
            self.roots = _parse_header(bytes(self._buf[start:end]))
        return True

    def take_blocks(self) -> Iterator[tuple[CID, bytes]]:
        """Yield every complete section currently buffered (header must be taken first)."""
        while True:
            frame = self._take_frame(self._max_block_size)
            if frame is None:
                return
            with memoryview(self._buf) as view:  # released before the buffer is next resized
                item = _split_section(view, *frame, self._verify)
            yield item

    def finish(self) -> None:
        """Call at end of input: leftover bytes mean the archive was cut short."""
        if self.roots is None:
            raise CarError("CAR ended before its header was complete")
        if self._pos != len(self._buf):
            raise CarError("CAR ended in the middle of a section")


class CarReader:
    """Stream a CAR from a binary file object: `.roots` at once, then iterate (CID, block)."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        verify: bool = True,
        max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
        read_size: int = _READ_SIZE,
    ) -> None:
        self._stream = stream
        self._read_size = read_size
        self._parser = _CarParser(verify=verify, max_block_size=max_block_size)
        self._eof = False
        while not self._parser.take_header():
            if not self._fill():
                self._parser.finish()
        assert self._parser.roots is not None
        self.roots: list[CID] = self._parser.roots

    def _fill(self) -> bool:
        chunk = self._stream.read(self._read_size)
        if not chunk:
            self._eof = True
            return False
        self._parser.feed(chunk)
        return True

    def __iter__(self) -> Iterator[tuple[CID, bytes]]:
        while True:
            yield from self._parser.take_blocks()
            if self._eof or not self._fill():
                self._parser.finish()
                return


class AsyncCarReader:
    """Stream a CAR from async byte chunks (e.g. `response.content.iter_chunked(65536)`).

    `roots = await reader.read_header()`, then `async for cid, block in reader`.
    """

    def __init__(
        self,
        chunks: AsyncIterable[bytes],
        *,
        verify: bool = True,
        max_block_size: int = DEFAULT_MAX_BLOCK_SIZE,
    ) -> None:
        self._chunks = aiter(chunks)
        self._parser = _CarParser(verify=verify, max_block_size=max_block_size)
        self._eof = False

    async def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = await anext(self._chunks)
        except StopAsyncIteration:
            self._eof = True
            return False
        self._parser.feed(chunk)
        return True

    async def read_header(self) -> list[CID]:
        """Read (once) and return the root CIDs."""
        while not self._parser.take_header():
            if not await self._fill():
                self._parser.finish()
        assert self._parser.roots is not None
        return self._parser.roots

    async def __aiter__(self) -> AsyncIterator[tuple[CID, bytes]]:
        await self.read_header()
        while True:
            for item in self._parser.take_blocks():
                yield item
            if not await self._fill():
                self._parser.finish()
                return


# -- writing ----------------------------------------------------------------------------------


def encode_car_header(roots: Sequence[CID]) -> bytes:
    """The length-prefixed CARv1 header for `roots`."""
    header = dagcbor.encode({"version": 1, "roots": list(roots)})
    return encode_varint(len(header)) + header


def car_chunks(
    roots: Sequence[CID],
    blocks: Iterable[tuple[CID, bytes]],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Iterator[bytes]:
    """Encode a CAR lazily as chunks of roughly `chunk_size` bytes (for streamed responses)."""
    pending = bytearray(encode_car_header(roots))
    for cid, block in blocks:
        cid_bytes = cid.cid_bytes
        pending += encode_varint(len(cid_bytes) + len(block))
        pending += cid_bytes
        pending += block
        if len(pending) >= chunk_size:
            yield bytes(pending)
            pending.clear()
    if pending:
        yield bytes(pending)


def write_car(roots: Sequence[CID], blocks: Iterable[tuple[CID, bytes]]) -> bytes:
    """Encode a whole CAR in memory."""
    out = bytearray(encode_car_header(roots))
    for cid, block in blocks:
        cid_bytes = cid.cid_bytes
        out += encode_varint(len(cid_bytes) + len(block))
        out += cid_bytes
        out += block
    return bytes(out)
